"""The index of a dataset's monitoring reports (index.json beside the HTML reports), updated atomically under
a file lock. Each entry has a ``kind``: ``drift`` (:mod:`lifeboat.monitoring.drift`) or ``performance``
(:mod:`lifeboat.monitoring.performance`); entries written before kinds existed are drift reports."""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from lifeboat.monitoring.drift_models import DriftError, DriftSummary

INDEX_FILE = "index.json"


_LOCK_FILE = ".index.lock"


def write_text_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o644)  # readable by the Airflow UI and MLflow like any report file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def _index_lock(output_dir: Path) -> Iterator[None]:
    with open(output_dir / _LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _index_entry(summary: DriftSummary) -> dict[str, Any]:
    return {
        "kind": "drift",
        "name": summary.name,
        "status": summary.status,
        "dataset_drift": summary.dataset_drift,
        "share_drifted": summary.share_drifted,
        "drifted_columns": list(summary.drifted_columns),
        "reference_rows": summary.reference_rows,
        "current_rows": summary.current_rows,
        "current_source": summary.current_source,
        "created_at": summary.created_at,
        "html": Path(summary.html_path).name,
        "json": Path(summary.json_path).name,
    }


def read_index(output_dir: Path | str) -> list[dict[str, Any]]:
    """The reports listed in ``<output_dir>/index.json``, newest first (empty if there is none yet)."""
    path = Path(output_dir) / INDEX_FILE
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        reports = data["reports"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DriftError(f"unreadable drift report index {path}: {exc}") from exc
    if not isinstance(reports, list):
        raise DriftError(f"unreadable drift report index {path}: 'reports' is not a list")
    return reports


def update_index(output_dir: Path | str, summary: DriftSummary) -> Path:
    """Add (or replace, by name) the drift summary's entry in ``index.json``; keep it sorted newest first."""
    return add_index_entry(output_dir, _index_entry(summary))


def add_index_entry(output_dir: Path | str, entry: dict[str, Any]) -> Path:
    """Add (or replace, by name) one report's entry (``name``, ``kind``, ``created_at``, ``html``, ``json``
    and its figures) in ``index.json``; keep it sorted newest first."""
    output_dir = Path(output_dir)
    path = output_dir / INDEX_FILE
    with _index_lock(output_dir):
        reports = [r for r in read_index(output_dir) if r.get("name") != entry["name"]]
        reports.insert(0, entry)
        reports.sort(key=lambda r: datetime.fromisoformat(str(r["created_at"])), reverse=True)
        write_text_atomically(path, json.dumps({"version": 1, "reports": reports}, indent=2) + "\n")
    return path
