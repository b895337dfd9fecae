"""Build the project's virtualenv from a hashed lock file, with one readable line per phase.

Runs before the virtualenv exists (``python3 -m lifeboat.stack.bootstrap env ...``, called by ``make venv``
and ``make venv-dev``), so it imports nothing outside the standard library. The installer's own output goes
to a log file; the screen gets the phases, their elapsed time and a count of packages, and on failure the
log's last lines and its path.

Phases: ``tools`` (uv, pinned by requirements-tools.lock, installed with pip into ``.lifeboat/tools``),
``virtualenv`` (``python -m venv``), ``environment`` (the lock, ``--require-hashes --no-deps``, compiled to
bytecode) and ``project`` (lifeboat itself, editable, its packages compiled to bytecode). ``lock`` regenerates
every lock file with ``uv pip compile``.

Why compile at install time: where ``PYTHONDONTWRITEBYTECODE`` is set (many CI machines and containers),
Python never caches what it compiles, so every process (each Airflow task, Spark driver, server worker,
``lifeboat`` command) compiled mlflow, airflow, scikit-learn... from source again: ``import mlflow`` took
5.6 s instead of 2.2 s. Python reads ``.pyc`` files whatever that variable says.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

INSTALLERS = ("uv", "pip")
#: The project's own top-level packages (compiled to bytecode in the ``project`` phase).
PROJECT_PACKAGES = ("lifeboat", "serving", "dags", "plugins", "jobs")
DEFAULT_TOOLS_DIR = Path(".lifeboat/tools")
DEFAULT_LOG = Path(".lifeboat/logs/install.log")
TOOLS_LOCK = Path("requirements-tools.lock")
TAIL_LINES = 20
# A progress line at most this often while pip collects packages (uv prints nothing until it is done).
PROGRESS_EVERY_S = 20.0

# What `make lock` writes: (lock file, its inputs). Constraints apply to every lock but the tools one.
LOCKS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("requirements.lock", ("requirements.txt",)),
    ("requirements-dev.lock", ("requirements.txt", "requirements-dev.txt")),
    ("requirements-serving.lock", ("requirements-serving.txt",)),
    ("requirements-tools.lock", ("requirements-tools.txt",)),
)
CONSTRAINTS = "constraints.txt"
LOCK_PYTHON = "3.11"

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
_UV_ADDED = re.compile(r"^\s*\+ ([A-Za-z0-9][A-Za-z0-9._-]*)==")
_UV_RESOLVED = re.compile(r"^Resolved (\d+) packages?")
_UV_AUDITED = re.compile(r"^Audited (\d+) packages?")
_PIP_COLLECTING = re.compile(r"^Collecting ([A-Za-z0-9][A-Za-z0-9._-]*)")
_PIP_SATISFIED = re.compile(r"^Requirement already satisfied: ([A-Za-z0-9][A-Za-z0-9._-]*)")
_PIP_IGNORED = re.compile(r"^Ignoring ([A-Za-z0-9][A-Za-z0-9._-]*): markers")
_PIP_INSTALLED = re.compile(r"^Successfully installed (.+)$")


class BootstrapError(RuntimeError):
    """A phase failed: carries the phase, the installer's exit code and the last lines of its log."""

    def __init__(self, phase: str, returncode: int, tail: list[str], log: Path) -> None:
        super().__init__(f"{phase} failed with exit code {returncode} (full log: {log})")
        self.phase = phase
        self.returncode = returncode
        self.tail = tail
        self.log = log


def lock_pins(lock: Path) -> dict[str, str]:
    """The ``name==version`` pins of a requirements or lock file, by normalized name."""
    pins: dict[str, str] = {}
    for line in lock.read_text().splitlines():
        match = _PIN.match(line)
        if match:
            pins[normalize(match.group(1))] = match.group(2)
    return pins


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares it (``Flask_Cors`` -> ``flask-cors``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class InstallProgress:
    """Packages counted from an installer's output lines (uv or pip), for a one-line summary."""

    total: int
    installed: set[str] = field(default_factory=set)
    present: set[str] = field(default_factory=set)
    skipped: set[str] = field(default_factory=set)
    collected: int = 0
    resolved: int | None = None
    audited: int = 0

    def feed(self, line: str) -> bool:
        """Count one output line; True when it shows progress while the installer runs (pip's Collecting)."""
        if match := _UV_ADDED.match(line):
            self.installed.add(normalize(match.group(1)))
        elif match := _UV_RESOLVED.match(line):
            self.resolved = int(match.group(1))
        elif match := _UV_AUDITED.match(line):
            self.audited = int(match.group(1))
        elif _PIP_COLLECTING.match(line):
            self.collected += 1
            return True
        elif match := _PIP_SATISFIED.match(line):
            self.present.add(normalize(match.group(1)))
        elif match := _PIP_IGNORED.match(line):
            self.skipped.add(normalize(match.group(1)))
        elif match := _PIP_INSTALLED.match(line):
            # pip names each one "name-version"; the version never contains "-".
            self.installed.update(normalize(word.rsplit("-", 1)[0]) for word in match.group(1).split())
        return False

    @property
    def wanted(self) -> int:
        """Packages that apply to this machine: what uv resolved, or the lock minus what pip skipped."""
        return self.resolved if self.resolved is not None else self.total - len(self.skipped)

    @property
    def done(self) -> int:
        """Packages in place: installed now, or already there (uv's audit of an up-to-date environment)."""
        if self.audited and not self.installed:
            return self.audited
        return len(self.installed | self.present)

    def summary(self) -> str:
        """``266/267 packages (266 installed, 0 already there)``."""
        already = self.audited if self.audited and not self.installed else len(self.present)
        counts = f"{len(self.installed)} installed, {already} already there"
        return f"{self.done}/{self.wanted} packages ({counts})"

    def running(self) -> str:
        """The count while the installer runs: pip names each package it collects (uv is silent)."""
        return f"{self.collected}/{self.wanted} packages collected"


class Bootstrap:
    """Runs the phases, writes every installer line to the log and one line per phase to ``out``."""

    def __init__(self, log: Path, out: TextIO = sys.stdout, started: float | None = None) -> None:
        """``started``: the ``time.monotonic()`` the elapsed times count from (default: now)."""
        self.log = log
        self.out = out
        self.started = time.monotonic() if started is None else started
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")

    def elapsed(self) -> float:
        """Seconds since the bootstrap started."""
        return time.monotonic() - self.started

    def say(self, phase: str, message: str) -> None:
        """One phase line: ``[ 16.7s] environment: 266/267 packages``."""
        print(f"[{self.elapsed():5.1f}s] {phase}: {message}", file=self.out, flush=True)

    def run(self, phase: str, command: Sequence[str], progress: InstallProgress | None = None) -> None:
        """Run one command with its output in the log; raise BootstrapError with the log's tail on failure."""
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        last_report = time.monotonic()
        with self.log.open("a") as log:
            log.write(f"$ {' '.join(command)}\n")
            log.flush()
            env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
            try:
                process = subprocess.Popen(
                    list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
                )
            except OSError as error:  # e.g. the installer's executable is missing
                log.write(f"{error}\n")
                raise BootstrapError(phase, 127, [str(error)], self.log) from error
            with process:
                assert process.stdout is not None
                for line in process.stdout:
                    log.write(line)
                    tail.append(line.rstrip("\n"))
                    moved = progress is not None and progress.feed(line)
                    if moved and progress is not None and time.monotonic() - last_report >= PROGRESS_EVERY_S:
                        self.say(phase, progress.running())
                        last_report = time.monotonic()
            log.write(f"# exit code {process.returncode}\n")
        if process.returncode != 0:
            raise BootstrapError(phase, process.returncode, list(tail), self.log)


@dataclass(frozen=True)
class Plan:
    """What to build: the virtualenv, the lock to install into it, with which installer and interpreter."""

    venv: Path
    lock: Path
    installer: str
    python: str
    tools_dir: Path
    tools_lock: Path
    project: Path


def required_uv(tools_lock: Path) -> str:
    """The uv version requirements-tools.lock pins."""
    version = lock_pins(tools_lock).get("uv")
    if version is None:
        raise ValueError(f"{tools_lock} pins no uv version")
    return version


def uv_path(tools_dir: Path) -> Path:
    """Where ``pip install --target`` puts uv's executable."""
    return tools_dir / "bin" / "uv"


def installed_uv(uv: Path) -> str | None:
    """The version of the uv at ``uv``, or None when it is missing or does not run."""
    if not uv.exists():
        return None
    try:
        result = subprocess.run([str(uv), "--version"], capture_output=True, text=True, timeout=60)
    except OSError:
        return None
    words = result.stdout.split()
    return words[1] if result.returncode == 0 and len(words) >= 2 else None


def ensure_uv(boot: Bootstrap, plan: Plan) -> Path:
    """uv at the pinned version in the tools folder, installed from the hashed tools lock when absent."""
    uv = uv_path(plan.tools_dir)
    wanted = required_uv(plan.tools_lock)
    if installed_uv(uv) == wanted:
        boot.say("tools", f"uv {wanted} (already in {plan.tools_dir})")
        return uv
    boot.run(
        "tools",
        [
            plan.python,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--upgrade",
            "--no-deps",
            "--require-hashes",
            "--target",
            str(plan.tools_dir),
            "-r",
            str(plan.tools_lock),
        ],
    )
    found = installed_uv(uv)
    if found != wanted:
        raise BootstrapError("tools", 1, [f"expected uv {wanted} at {uv}, found {found}"], boot.log)
    boot.say("tools", f"uv {wanted} installed in {plan.tools_dir}")
    return uv


def venv_python(venv: Path) -> Path:
    """The virtualenv's interpreter."""
    return venv / "bin" / "python"


def ensure_venv(boot: Bootstrap, plan: Plan) -> None:
    """The virtualenv, created with the standard library's venv (so pip is in it whatever the installer)."""
    python = venv_python(plan.venv)
    if python.exists():
        boot.say("virtualenv", f"{plan.venv} (already there)")
        return
    boot.run("virtualenv", [plan.python, "-m", "venv", str(plan.venv)])
    boot.say("virtualenv", f"{plan.venv} created")


def install_command(plan: Plan, uv: Path | None, *args: str) -> list[str]:
    """``uv pip install`` or ``pip install`` into the virtualenv, with ``args``."""
    if uv is not None:
        return [str(uv), "pip", "install", "--python", str(venv_python(plan.venv)), *args]
    return [str(plan.venv / "bin" / "pip"), "install", "--disable-pip-version-check", *args]


def compile_option(uv: Path | None) -> str:
    """The installer's option that writes ``.pyc`` files for what it installs (pip does it by default)."""
    return "--compile-bytecode" if uv is not None else "--compile"


def compile_project_command(plan: Plan) -> list[str]:
    """``python -m compileall`` over the project's own packages (those present in ``plan.project``)."""
    packages = [str(plan.project / name) for name in PROJECT_PACKAGES if (plan.project / name).is_dir()]
    return [str(venv_python(plan.venv)), "-m", "compileall", "-q", *packages]


def report_failure(error: BootstrapError, out: TextIO) -> int:
    """Print the failed phase, the last lines of its log and the log's path; the exit code to return."""
    print(f"error: {error.phase} failed (exit code {error.returncode}); last lines of {error.log}:", file=out)
    for line in error.tail:
        print(f"    {line}", file=out)
    print(f"full log: {error.log}", file=out, flush=True)
    return error.returncode or 1


def install(plan: Plan, out: TextIO = sys.stdout, log: Path = DEFAULT_LOG) -> int:
    """Every phase of ``make venv``; 0 on success, the failing command's exit code otherwise."""
    boot = Bootstrap(log, out)
    print(
        f"building {plan.venv} from {plan.lock} with {plan.installer} (full log: {log})", file=out, flush=True
    )
    try:
        uv = ensure_uv(boot, plan) if plan.installer == "uv" else None
        ensure_venv(boot, plan)
        progress = InstallProgress(total=len(lock_pins(plan.lock)))
        boot.run(
            "environment",
            install_command(
                plan, uv, "--require-hashes", "--no-deps", compile_option(uv), "-r", str(plan.lock)
            ),
            progress,
        )
        boot.say("environment", progress.summary())
        # No build isolation: setuptools comes from the lock, so the project installs offline.
        boot.run(
            "project",
            install_command(plan, uv, "--no-deps", "--no-build-isolation", "-e", str(plan.project)),
        )
        boot.run("project", compile_project_command(plan))
        boot.say("project", f"lifeboat installed (editable) into {plan.venv}")
    except BootstrapError as error:
        return report_failure(error, out)
    return 0


def lock_commands(uv: Path) -> list[list[str]]:
    """``uv pip compile`` of every lock file (run from the project root): universal, hashed, Python 3.11+."""
    commands = []
    for lock, inputs in LOCKS:
        constraints = [] if lock == str(TOOLS_LOCK) else ["-c", CONSTRAINTS]
        commands.append(
            [
                str(uv),
                "pip",
                "compile",
                *inputs,
                *constraints,
                "--universal",
                "--generate-hashes",
                "--python-version",
                LOCK_PYTHON,
                "--no-header",
                "--quiet",
                "-o",
                lock,
            ]
        )
    return commands


def relock(plan: Plan, out: TextIO = sys.stdout, log: Path = DEFAULT_LOG) -> int:
    """``make lock``: regenerate every lock file (uv from the tools folder)."""
    boot = Bootstrap(log, out)
    try:
        uv = ensure_uv(boot, plan)
        for command in lock_commands(uv):
            boot.run("lock", command)
            boot.say("lock", f"{command[-1]}: {len(lock_pins(Path(command[-1])))} packages")
    except BootstrapError as error:
        return report_failure(error, out)
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line: ``env`` (build the virtualenv) or ``lock`` (regenerate the locks)."""
    parser = argparse.ArgumentParser(prog="python3 -m lifeboat.stack.bootstrap", description=__doc__)
    parser.add_argument("command", choices=("env", "lock"))
    parser.add_argument("--venv", type=Path, default=Path(".venv"))
    parser.add_argument("--lock", type=Path, default=Path("requirements.lock"), help="the lock to install")
    parser.add_argument("--installer", choices=INSTALLERS, default=os.environ.get("INSTALLER") or "uv")
    parser.add_argument("--python", default=sys.executable, help="the interpreter of the virtualenv")
    parser.add_argument("--tools-dir", type=Path, default=DEFAULT_TOOLS_DIR)
    parser.add_argument("--tools-lock", type=Path, default=TOOLS_LOCK)
    parser.add_argument("--log", type=Path, default=DEFAULT_LOG)
    parser.add_argument("--project", type=Path, default=Path("."))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python3 -m lifeboat.stack.bootstrap``."""
    args = parse_args(argv)
    plan = Plan(
        venv=args.venv,
        lock=args.lock,
        installer=args.installer,
        python=args.python,
        tools_dir=args.tools_dir,
        tools_lock=args.tools_lock,
        project=args.project,
    )
    if args.command == "lock":
        return relock(plan, log=args.log)
    return install(plan, log=args.log)


if __name__ == "__main__":
    sys.exit(main())
