"""The processes of the embedded stack: where their state lives, starting them detached with a recorded pid,
stopping exactly those, and waiting until they answer."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from lifeboat.settings import Settings

logger = logging.getLogger(__name__)


class StackError(RuntimeError):
    """A process of the stack did not start, answer or stop; the message says which and why."""


@dataclass(frozen=True)
class StackPaths:
    """Where the stack keeps its state."""

    root: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> StackPaths:
        """The paths under ``settings.state_dir`` (made absolute)."""
        return cls(Path(settings.state_dir).resolve())

    @property
    def airflow_home(self) -> Path:
        return self.root / "airflow"

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def secrets_file(self) -> Path:
        return self.root / "secrets.json"

    def pid_file(self, name: str) -> Path:
        return self.pids / f"{name}.json"

    def log_file(self, name: str) -> Path:
        return self.logs / f"{name}.log"


@dataclass(frozen=True)
class Service:
    """One process of the stack: how to start it and how to tell that it answers."""

    name: str
    command: list[str]
    env: dict[str, str]
    health_url: str
    url: str
    start_timeout: float
    cwd: Path = field(default_factory=Path.cwd)


@dataclass(frozen=True)
class ProcessRecord:
    """What a pid file holds: the pid, its start time (to detect reuse) and the command."""

    pid: int
    create_time: float
    command: list[str]


def _create_time(pid: int) -> float | None:
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def read_record(paths: StackPaths, name: str) -> ProcessRecord | None:
    """The pid file of ``name`` (None when there is none or it is unreadable)."""
    path = paths.pid_file(name)
    try:
        data = json.loads(path.read_text())
        return ProcessRecord(int(data["pid"]), float(data["create_time"]), list(data["command"]))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        logger.warning("ignoring unreadable pid file %s: %s", path, exc)
        return None


def running_pid(paths: StackPaths, name: str) -> int | None:
    """The pid of ``name`` if the process its pid file names still runs (same pid AND start time)."""
    record = read_record(paths, name)
    if record is None:
        return None
    started = _create_time(record.pid)
    if started is None or abs(started - record.create_time) > 1.0:
        return None
    import psutil

    try:
        if psutil.Process(record.pid).status() == psutil.STATUS_ZOMBIE:
            return None
    except psutil.NoSuchProcess:
        return None
    return record.pid


def start(service: Service, paths: StackPaths) -> int:
    """Start ``service`` in its own session, output appended to its log; record its pid."""
    paths.pids.mkdir(parents=True, exist_ok=True)
    paths.logs.mkdir(parents=True, exist_ok=True)
    log = paths.log_file(service.name).open("ab")
    try:
        process = subprocess.Popen(
            service.command,
            cwd=service.cwd,
            env=service.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        raise StackError(f"cannot start {service.name} ({service.command[0]}): {exc}") from exc
    finally:
        log.close()
    created = _create_time(process.pid) or time.time()
    record = {"pid": process.pid, "create_time": created, "command": service.command}
    paths.pid_file(service.name).write_text(json.dumps(record))
    logger.info("started %s (pid %d), log %s", service.name, process.pid, paths.log_file(service.name))
    return process.pid


def stop(paths: StackPaths, name: str, timeout: float = 30.0) -> bool:
    """Stop ``name`` and its process group (SIGTERM, then SIGKILL after ``timeout``); True if it ran."""
    pid = running_pid(paths, name)
    if pid is None:
        paths.pid_file(name).unlink(missing_ok=True)
        return False
    import psutil

    try:
        group = os.getpgid(pid)
    except ProcessLookupError:
        paths.pid_file(name).unlink(missing_ok=True)
        return False
    members = _group_members(group)
    # Descendants that moved to a process group of their own (Airflow runs each task in one, with its
    # spark-submit and Spark JVM): found before anything is signalled, while they are still children.
    outside = [p for p in _descendants(members) if p.pid not in {m.pid for m in members}]
    _signal_group(group, signal.SIGTERM)
    _signal_each(outside, signal.SIGTERM)
    _, alive = psutil.wait_procs([*members, *outside], timeout=timeout)
    if alive:
        logger.warning("%s did not stop within %g s: killing %d process(es)", name, timeout, len(alive))
        _signal_group(group, signal.SIGKILL)
        _signal_each(alive, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=10)
    paths.pid_file(name).unlink(missing_ok=True)
    logger.info("stopped %s (pid %d)", name, pid)
    return True


def _group_members(group: int) -> list[Any]:
    import psutil

    members = []
    for process in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(process.pid) == group:
                members.append(process)
        except (ProcessLookupError, PermissionError):
            continue
    return members


def _descendants(processes: list[Any]) -> list[Any]:
    """Every process below ``processes`` (psutil objects: a pid reused later is never signalled)."""
    import psutil

    found: dict[int, Any] = {}
    for process in processes:
        with contextlib.suppress(psutil.Error):
            found.update({child.pid: child for child in process.children(recursive=True)})
    return list(found.values())


def _signal_each(processes: list[Any], sig: signal.Signals) -> None:
    import psutil

    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.send_signal(sig)


def _signal_group(group: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, sig)


def log_tail(paths: StackPaths, name: str, lines: int = 30) -> str:
    """The last lines of a service's log (for error messages)."""
    path = paths.log_file(name)
    if not path.is_file():
        return "(no log)"
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 20_000))
        text = handle.read().decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def answers(url: str, timeout: float = 3.0) -> bool:
    """Whether ``url`` answers 200."""
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until_healthy(service: Service, paths: StackPaths) -> None:
    """Wait for the service's health URL; fail with its log tail when it dies or times out."""
    deadline = time.monotonic() + service.start_timeout
    while not answers(service.health_url):
        if running_pid(paths, service.name) is None:
            raise StackError(
                f"{service.name} exited during start-up; last lines of {paths.log_file(service.name)}:\n"
                + log_tail(paths, service.name)
            )
        if time.monotonic() > deadline:
            raise StackError(
                f"{service.name} did not answer {service.health_url} within {service.start_timeout:g} s; "
                f"last lines of {paths.log_file(service.name)}:\n" + log_tail(paths, service.name)
            )
        time.sleep(1.0)


def ensure_running(service: Service, paths: StackPaths, say: Callable[[str], None]) -> str:
    """Start ``service`` unless it already runs; wait until it answers. Returns what was done."""
    pid = running_pid(paths, service.name)
    if pid is not None:
        say(f"{service.name}: already running (pid {pid})")
        action = "reused"
    else:
        if answers(service.health_url):
            raise StackError(
                f"something else answers {service.health_url}: the port of {service.name} is taken by a "
                "process this stack did not start (stop it, or choose another port in the settings)"
            )
        pid = start(service, paths)
        say(f"{service.name}: starting (pid {pid}, log {paths.log_file(service.name)})")
        action = "started"
    wait_until_healthy(service, paths)
    say(f"{service.name}: ready at {service.url}")
    return action
