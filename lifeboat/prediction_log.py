"""The prediction log: every scored passenger, kept in a bounded SQLite file for drift monitoring.

The prediction server appends one row per scored passenger (the raw columns of
:data:`lifeboat.schema.COLUMNS`, the probability, the 0/1 prediction, the model version and the UTC time).
The drift report reads the most recent rows back as a window with :func:`read_window`.

Logging must never slow down or fail a prediction, so :class:`PredictionLog` only puts rows on a bounded
in-memory queue; one background thread writes them in batches. When the queue is full, rows are dropped and
counted; when the file cannot be written (a path that cannot be created, a locked or corrupt database), the
rows are counted as failed, the error is logged (at most once a minute) and the server goes on.

Several server processes may write the same file: it uses WAL journaling and a busy timeout, and each writer
trims the oldest rows in the same transaction as its insert so the file keeps at most ``max_rows`` rows.
"""

from __future__ import annotations

import logging
import math
import queue
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from lifeboat.schema import COLUMNS, ID_COLUMN, ColumnSpec

logger = logging.getLogger(__name__)

TABLE = "predictions"
#: Columns written besides the raw passenger columns.
META_COLUMNS: tuple[str, ...] = ("logged_at", "model_version", "probability", "prediction")
RAW_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS)
#: Columns of the frame returned by :func:`read_window`: the raw schema columns, then the metadata.
WINDOW_COLUMNS: tuple[str, ...] = RAW_COLUMNS + META_COLUMNS

BUSY_TIMEOUT_MS = 5000
#: How often (seconds) the same write failure is logged again.
ERROR_LOG_INTERVAL = 60.0
#: After a failed write, wait this long before opening the file again.
RETRY_AFTER_SECONDS = 5.0
#: Most rows written in one transaction.
WRITE_BATCH_ROWS = 5000

_SQL_TYPES = {"int": "INTEGER", "float": "REAL", "str": "TEXT"}


def _nullable(spec: ColumnSpec) -> bool:
    """Whether a logged value of this column may be missing (the id is optional in requests)."""
    return not spec.required or spec.name == ID_COLUMN


def _pandas_dtype(spec: ColumnSpec) -> str:
    if spec.kind == "int":
        return "Int64" if _nullable(spec) else "int64"
    if spec.kind == "float":
        return "float64"
    return "object"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _timestamp(moment: datetime) -> str:
    """Fixed-width ISO-8601 UTC text, so that string order is time order in SQLite."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def _create_statements() -> list[str]:
    raw = ", ".join(f"{_quoted(c.name)} {_SQL_TYPES[c.kind]}" for c in COLUMNS)
    return [
        f"CREATE TABLE IF NOT EXISTS {TABLE} (id INTEGER PRIMARY KEY, logged_at TEXT NOT NULL, "
        f"model_version TEXT NOT NULL, probability REAL NOT NULL, prediction INTEGER NOT NULL, {raw})",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_logged_at ON {TABLE} (logged_at)",
    ]


_INSERT = (
    f"INSERT INTO {TABLE} (logged_at, model_version, probability, prediction, "
    + ", ".join(_quoted(c) for c in RAW_COLUMNS)
    + ") VALUES ("
    + ", ".join("?" for _ in range(len(META_COLUMNS) + len(RAW_COLUMNS)))
    + ")"
)
_TRIM = f"DELETE FROM {TABLE} WHERE id <= (SELECT MAX(id) FROM {TABLE}) - ?"


def _cell(value: Any) -> Any:
    """A raw value as SQLite stores it (NaN and pandas NA become NULL)."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


@dataclass(frozen=True)
class PredictionLogStats:
    """Counters of one :class:`PredictionLog` since it was created."""

    written: int
    dropped: int
    failed: int
    pending: int


class PredictionLog:
    """Append scored passengers to a SQLite file from a background thread (never blocks the caller)."""

    def __init__(self, path: Path | str, max_rows: int, max_pending_rows: int = 10_000) -> None:
        if max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        self.path = Path(path)
        self.max_rows = max_rows
        self.max_pending_rows = max_pending_rows
        self._queue: queue.SimpleQueue[list[tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pending = 0
        self._written = 0
        self._dropped = 0
        self._failed = 0
        self._thread: threading.Thread | None = None
        self._connection: sqlite3.Connection | None = None
        self._retry_at = 0.0
        self._last_error_logged: dict[str, float] = {}

    # -- caller side (request handlers) ---------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="prediction-log-writer", daemon=True)
            self._thread.start()

    def append(
        self,
        passengers: Sequence[Mapping[str, Any]],
        probabilities: Sequence[float],
        predictions: Sequence[int],
        model_version: str,
        logged_at: datetime | None = None,
    ) -> bool:
        """Queue scored passengers for writing; False (and counted as dropped) when the queue is full."""
        at = _timestamp(logged_at or datetime.now(UTC))
        rows = [
            (at, model_version, float(p), int(y), *(_cell(passenger.get(c)) for c in RAW_COLUMNS))
            for passenger, p, y in zip(passengers, probabilities, predictions, strict=True)
        ]
        if not rows:
            return True
        with self._lock:
            if self._pending + len(rows) > self.max_pending_rows:
                self._dropped += len(rows)
                return False
            self._pending += len(rows)
        self._queue.put(rows)
        return True

    def stats(self) -> PredictionLogStats:
        """Rows written, dropped (queue full), failed (write errors) and still queued."""
        with self._lock:
            return PredictionLogStats(self._written, self._dropped, self._failed, self._pending)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued row is written or has failed; False if ``timeout`` ran out first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stats().pending == 0:
                return True
            time.sleep(0.01)
        return self.stats().pending == 0

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (waiting at most ``timeout`` seconds), then stop the writer thread."""
        thread = self._thread
        if thread is None:
            return
        self._queue.put(None)
        thread.join(timeout)
        if thread.is_alive():
            logger.warning(
                "prediction log writer did not finish within %.1f s; %d row(s) lost",
                timeout,
                self.stats().pending,
            )
        self._thread = None

    # -- writer thread -----------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            stop = False
            while not stop:
                first = self._queue.get()
                if first is None:
                    break
                batch = list(first)
                while len(batch) < WRITE_BATCH_ROWS:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stop = True
                        break
                    batch.extend(more)
                self._write(batch)
        finally:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def _write(self, batch: list[tuple[Any, ...]]) -> None:
        written = 0
        try:
            if time.monotonic() < self._retry_at:
                raise sqlite3.OperationalError("waiting before retrying after an earlier failure")
            connection = self._connect()
            with connection:  # one transaction: insert, then trim the oldest rows
                connection.executemany(_INSERT, batch)
                connection.execute(_TRIM, (self.max_rows,))
            written = len(batch)
        except (sqlite3.Error, OSError) as exc:
            self._report_failure(exc)
            if self._connection is not None:
                self._connection.close()
                self._connection = None
            self._retry_at = time.monotonic() + RETRY_AFTER_SECONDS
        finally:
            with self._lock:
                self._pending -= len(batch)
                self._written += written
                self._failed += len(batch) - written

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
            try:
                connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                connection.execute("PRAGMA journal_mode = WAL")
                connection.execute("PRAGMA synchronous = NORMAL")
                with connection:
                    for statement in _create_statements():
                        connection.execute(statement)
            except sqlite3.Error:
                connection.close()
                raise
            self._connection = connection
        return self._connection

    def _report_failure(self, exc: BaseException) -> None:
        key = f"{type(exc).__name__}: {exc}"
        now = time.monotonic()
        last = self._last_error_logged.get(key)
        if last is None or now - last >= ERROR_LOG_INTERVAL:
            self._last_error_logged[key] = now
            logger.error(
                "cannot write the prediction log %s (rows are dropped, predictions go on): %s", self.path, key
            )


def read_window(
    path: Path | str, last_n: int | None = None, since: datetime | str | None = None
) -> pd.DataFrame:
    """The logged passengers as a frame, oldest first: raw schema columns plus :data:`META_COLUMNS`.

    ``last_n`` keeps only the newest rows; ``since`` keeps rows logged at or after that time (a datetime,
    naive meaning UTC, or an ISO-8601 string). A missing file gives an empty frame with the same columns.
    Integer columns of the schema come back as ``int64`` (``Int64`` when the API allows them to be missing),
    numeric ones as ``float64``, text as ``object``, ``logged_at`` as UTC datetimes.
    """
    if last_n is not None and last_n < 0:
        raise ValueError("last_n must be zero or positive")
    path = Path(path)
    frame: pd.DataFrame
    if not path.is_file():
        frame = pd.DataFrame({c: [] for c in WINDOW_COLUMNS})
    else:
        where = ""
        params: list[Any] = []
        if since is not None:
            moment = datetime.fromisoformat(since) if isinstance(since, str) else since
            where = "WHERE logged_at >= ?"
            params.append(_timestamp(moment))
        select = ", ".join(_quoted(c) for c in WINDOW_COLUMNS)
        sql = f"SELECT id, {select} FROM {TABLE} {where} ORDER BY id DESC"
        if last_n is not None:
            sql += " LIMIT ?"
            params.append(last_n)
        connection = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000
        )
        try:
            connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            rows = connection.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise
            rows = []
        finally:
            connection.close()
        rows.reverse()
        frame = pd.DataFrame([r[1:] for r in rows], columns=list(WINDOW_COLUMNS))
    for spec in COLUMNS:
        frame[spec.name] = frame[spec.name].astype(_pandas_dtype(spec))
    frame["logged_at"] = pd.to_datetime(frame["logged_at"], utc=True, format="ISO8601")
    frame["model_version"] = frame["model_version"].astype("object")
    frame["probability"] = frame["probability"].astype("float64")
    frame["prediction"] = frame["prediction"].astype("int64")
    return frame.reset_index(drop=True)
