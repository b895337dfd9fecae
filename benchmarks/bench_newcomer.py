"""Benchmark of a newcomer's first minutes: a fresh clone, cold caches, ``make venv`` with uv and with pip.

Run: ``make bench-newcomer`` (``python3 benchmarks/bench_newcomer.py``; standard library only, so it runs
before any virtualenv exists). ``--repeats N`` rounds per installer (the median is reported),
``--installers uv,pip``, ``--target venv-dev`` for the test environment, ``--run`` to follow the last uv
round with the full ``make run`` on other ports (then ``make stop``). Prints a markdown table and writes
``bench-results/newcomer.json``.

Every round clones the repository's HEAD (``git clone``, so uncommitted changes are not measured) into a new
temporary folder and points ``UV_CACHE_DIR``, ``PIP_CACHE_DIR`` and ``XDG_CACHE_HOME`` into it: nothing is
cached from an earlier round or from the developer's machine. The phase times come from the bootstrap's own
lines (``[ 16.7s] environment: ...``); the load averages before and after each round are recorded with it,
because on a shared 2-core machine the other load moves these figures more than anything else.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PHASE_LINE = re.compile(r"^\[\s*(\d+\.\d)s\] ([a-z]+): (.*)$")
PHASES = ("tools", "virtualenv", "environment", "project")
# Ports of `make run` in the clone, away from the defaults (8080/5000/8000) a developer's stack may use.
RUN_PORTS = {
    "LIFEBOAT_AIRFLOW_PORT": "18080",
    "LIFEBOAT_MLFLOW_PORT": "15000",
    "LIFEBOAT_SERVING_PORT": "18000",
}


@dataclass
class Round:
    """One cold environment build: its phases (seconds each), total wall time and the machine's load."""

    installer: str
    target: str
    seconds: float
    phases: dict[str, float]
    summary: str
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    run_seconds: float | None = None


def phase_durations(output: str) -> tuple[dict[str, float], str]:
    """Seconds in each phase, from the bootstrap's ``[ 16.7s] phase: ...`` lines; and the package count."""
    ends: dict[str, float] = {}
    summary = ""
    for line in output.splitlines():
        match = PHASE_LINE.match(line.strip())
        if match:
            ends[match.group(2)] = float(match.group(1))
            if match.group(2) == "environment":
                summary = match.group(3)
    durations: dict[str, float] = {}
    previous = 0.0
    for phase in PHASES:
        if phase in ends:
            durations[phase] = round(ends[phase] - previous, 1)
            previous = ends[phase]
    return durations, summary


def cold_env(folder: Path, installer: str) -> dict[str, str]:
    """The environment of one round: caches inside its temporary folder, the installer chosen."""
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env.update(
        UV_CACHE_DIR=str(folder / "cache" / "uv"),
        PIP_CACHE_DIR=str(folder / "cache" / "pip"),
        XDG_CACHE_HOME=str(folder / "cache"),
        INSTALLER=installer,
    )
    return env


def one_round(installer: str, target: str, run: bool, keep: bool) -> Round:
    """Clone, build the environment with cold caches, optionally ``make run``; the folder is removed after."""
    folder = Path(tempfile.mkdtemp(prefix=f"lifeboat-newcomer-{installer}-"))
    clone = folder / "lifeboat"
    try:
        subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True, timeout=300)
        env = cold_env(folder, installer)
        load_before = os.getloadavg()
        started = time.monotonic()
        result = subprocess.run(
            ["make", "--no-print-directory", target],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=3600,
        )
        seconds = round(time.monotonic() - started, 1)
        load_after = os.getloadavg()
        if result.returncode != 0:
            raise RuntimeError(f"make {target} with {installer} failed:\n{result.stdout}\n{result.stderr}")
        phases, summary = phase_durations(result.stdout)
        outcome = Round(installer, target, seconds, phases, summary, load_before, load_after)
        if run:
            outcome.run_seconds = make_run(clone, env)
        return outcome
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def make_run(clone: Path, env: dict[str, str]) -> float:
    """Seconds of the full ``make run`` in the clone (first retraining run included), then ``make stop``."""
    env = {**env, **RUN_PORTS}
    started = time.monotonic()
    try:
        subprocess.run(["make", "--no-print-directory", "run"], cwd=clone, env=env, check=True, timeout=3600)
        return round(time.monotonic() - started, 1)
    finally:
        subprocess.run(["make", "--no-print-directory", "stop"], cwd=clone, env=env, timeout=600, check=False)


def table(rounds: list[Round]) -> str:
    """Markdown: the median of each phase and of the total, by installer, with the load of every round."""
    lines = [
        "| installer | rounds | tools | virtualenv | environment | project | total (median) | all totals"
        " | load (1 min) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for installer in dict.fromkeys(r.installer for r in rounds):
        mine = [r for r in rounds if r.installer == installer]
        cells = []
        for phase in PHASES:
            values = [r.phases[phase] for r in mine if phase in r.phases]
            cells.append(f"{statistics.median(values):.1f} s" if values else "—")
        totals = ", ".join(f"{r.seconds:.0f}" for r in mine)
        loads = ", ".join(f"{r.load_before[0]:.1f}→{r.load_after[0]:.1f}" for r in mine)
        median = statistics.median(r.seconds for r in mine)
        lines.append(
            f"| {installer} | {len(mine)} | {' | '.join(cells)} | **{median:.1f} s** | {totals} s | {loads} |"
        )
    return "\n".join(lines)


def write_json(output: Path, target: str, rounds: list[Round]) -> None:
    """The rounds so far, with the machine and the time."""
    output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version},
        "target": target,
        "rounds": [asdict(r) for r in rounds],
    }
    output.write_text(json.dumps(report, indent=2))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--installers", default="uv,pip", help="comma-separated, in order (default: uv,pip)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds per installer (default 3)")
    parser.add_argument("--target", choices=("venv", "venv-dev"), default="venv")
    parser.add_argument("--run", action="store_true", help="after the last uv round, the full make run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary clones (to look at the logs)")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "bench-results" / "newcomer.json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the rounds, print the table, write the JSON."""
    args = parse_args(argv)
    installers = [name.strip() for name in args.installers.split(",") if name.strip()]
    rounds: list[Round] = []
    for installer in installers:
        for n in range(args.repeats):
            run = args.run and installer == "uv" and n == args.repeats - 1
            outcome = one_round(installer, args.target, run, args.keep)
            rounds.append(outcome)
            print(
                f"{installer} round {n + 1}/{args.repeats}: {outcome.seconds:.1f} s {outcome.phases} "
                f"({outcome.summary}; load {outcome.load_before[0]:.2f} -> {outcome.load_after[0]:.2f})"
                + (f"; make run {outcome.run_seconds:.0f} s" if outcome.run_seconds is not None else ""),
                flush=True,
            )
            write_json(
                args.output, args.target, rounds
            )  # after every round: a run cut short keeps its rounds
    print(table(rounds))
    print(f"JSON: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
