"""The workers of one server agree on a model version through a shared folder.

With ``uvicorn --workers N`` a reload request reaches one process. That process loads the champion, then
*publishes* the version as the fleet's target (``target.json``); every worker checks the target about twice a
second, loads it, and reports what it serves in its own heartbeat file (``workers/<id>.json``). The reload
answer waits (bounded) until every live worker reports the new version, so it never claims success for a
version other workers lack. Polling the registry alias remains the fallback that makes workers converge even
when this folder is unavailable.

The folder must be shared by the workers (it is, on one host: ``<state_dir>/serving``); files are replaced
atomically (write to a temporary name, then ``os.replace``), so readers never see half a file.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

TARGET_FILE = "target.json"
WORKERS_DIR = "workers"
#: A worker whose heartbeat is older than this is considered gone.
STALE_AFTER_SECONDS = 5.0


def new_worker_id() -> str:
    """A unique name for this worker: host, process id, random suffix (several apps may share a process)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Target:
    """The version every worker should serve, and who asked for it when."""

    version: str
    seq: int
    by: str


@dataclass(frozen=True)
class WorkerStatus:
    """What one worker reported last."""

    worker: str
    pid: int
    version: str | None
    error: str | None
    heartbeat: float


def _write_atomically(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class FleetBoard:
    """The shared folder through which the workers of one server converge on one version."""

    def __init__(self, directory: Path, worker_id: str, stale_after: float = STALE_AFTER_SECONDS) -> None:
        self.directory = directory
        self.worker_id = worker_id
        self.stale_after = stale_after
        self._own_file = directory / WORKERS_DIR / f"{worker_id}.json"

    def publish_target(self, version: str) -> Target:
        """Ask every worker to serve ``version`` (raises OSError when the folder is not writable)."""
        target = Target(version=version, seq=time.time_ns(), by=self.worker_id)
        _write_atomically(self.directory / TARGET_FILE, asdict(target))
        return target

    def target(self) -> Target | None:
        """The last published target, or None."""
        data = _read(self.directory / TARGET_FILE)
        if data is None:
            return None
        try:
            return Target(version=str(data["version"]), seq=int(data["seq"]), by=str(data["by"]))
        except (KeyError, TypeError, ValueError):
            return None

    def heartbeat(self, version: str | None, error: str | None) -> None:
        """Report what this worker serves (raises OSError when the folder is not writable)."""
        _write_atomically(
            self._own_file,
            {
                "worker": self.worker_id,
                "pid": os.getpid(),
                "version": version,
                "error": error,
                "heartbeat": time.time(),
            },
        )

    def leave(self) -> None:
        """Remove this worker's heartbeat (on shutdown)."""
        self._own_file.unlink(missing_ok=True)

    def live_workers(self) -> list[WorkerStatus]:
        """Workers whose heartbeat is recent, oldest id first."""
        now = time.time()
        found: list[WorkerStatus] = []
        try:
            files = sorted((self.directory / WORKERS_DIR).glob("*.json"))
        except OSError:
            return found
        for path in files:
            data = _read(path)
            if data is None:
                continue
            try:
                status = WorkerStatus(
                    worker=str(data["worker"]),
                    pid=int(data["pid"]),
                    version=None if data["version"] is None else str(data["version"]),
                    error=data.get("error"),
                    heartbeat=float(data["heartbeat"]),
                )
            except (KeyError, TypeError, ValueError):
                continue
            if now - status.heartbeat <= self.stale_after:
                found.append(status)
            elif now - status.heartbeat > 10 * self.stale_after:
                path.unlink(missing_ok=True)  # a worker that died long ago: tidy up
        return found
