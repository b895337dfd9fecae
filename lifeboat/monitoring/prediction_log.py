"""The prediction log: every scored passenger, kept in a bounded SQLite file for drift monitoring.

The prediction server appends one row per scored passenger (the raw columns of
:data:`lifeboat.dataset.schema.COLUMNS`, the probability, the 0/1 prediction, the model version and the UTC
time).
The drift report reads the most recent rows back as a window with :func:`read_window`.

Logging must never slow down or fail a prediction. :meth:`PredictionLog.append` therefore does almost
nothing on the request's thread: it counts the rows and puts the request's own objects (passengers,
probabilities, predictions) on a bounded in-memory queue, one item per request or batch. One background
thread does the rest: it turns the items into rows and writes the rows of many requests in one transaction
(group commit: at most one commit every ``commit_interval`` seconds, sooner once ``commit_rows`` rows are
waiting), inserting many rows per statement. Under load that costs a few microseconds per row instead of a
transaction, a thread wake-up and a per-value conversion per request; when the log is idle, a row is
written as soon as it arrives. When the queue is full, rows are dropped and counted; when the file cannot be
written (a path that cannot be created, a locked or corrupt database), the rows are counted as failed, the
error is logged (at most once a minute) and the server goes on. :meth:`PredictionLog.close` writes what is
still queued before it returns.

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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from itertools import chain
from pathlib import Path
from typing import Any

import pandas as pd

from lifeboat.dataset.schema import COLUMNS, ID_COLUMN, ColumnSpec

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
#: Group commit: the writer commits at most this often (seconds) while rows keep arriving...
COMMIT_INTERVAL_SECONDS = 0.02
#: ... or sooner once this many rows are waiting; also the most rows written in one transaction.
COMMIT_ROWS = 5000
#: Values per table row: the metadata, then the raw columns.
ROW_WIDTH = len(META_COLUMNS) + len(RAW_COLUMNS)
#: Most rows per INSERT statement. Every statement hands the GIL over while SQLite works and must take it
#: back, which costs the request threads a switch each time: one statement per row made inserting a
#: 1000-row batch 1000 switches, 512 rows per statement makes it a handful. Capped by the SQLite build's
#: bound-parameter limit (999 on old builds).
ROWS_PER_STATEMENT = 512

_SQL_TYPES = {"int": "INTEGER", "float": "REAL", "str": "TEXT"}
#: Value types SQLite stores as they are (a NaN float is stored as NULL). Anything else, numpy scalars
#: first of all (which SQLite would store as BLOBs), is converted by :func:`_cell`.
_PLAIN_TYPES = frozenset({int, float, str, bool, type(None)})
#: A value that cannot be stored fails the rows of its own request, not those it was grouped with.
_VALUE_ERRORS = (
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    sqlite3.IntegrityError,
    sqlite3.DataError,
    OverflowError,
    ValueError,
    TypeError,
)

#: One queued request: passengers, probabilities, predictions, model version, time of the request.
_Item = tuple[Sequence[Mapping[str, Any]], Sequence[float], Sequence[int], str, datetime]


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
    if moment.tzinfo is not UTC:
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds")


def _create_statements() -> list[str]:
    raw = ", ".join(f"{_quoted(c.name)} {_SQL_TYPES[c.kind]}" for c in COLUMNS)
    return [
        f"CREATE TABLE IF NOT EXISTS {TABLE} (id INTEGER PRIMARY KEY, logged_at TEXT NOT NULL, "
        f"model_version TEXT NOT NULL, probability REAL NOT NULL, prediction INTEGER NOT NULL, {raw})",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_logged_at ON {TABLE} (logged_at)",
    ]


_PLACEHOLDERS = "(" + ", ".join("?" for _ in range(ROW_WIDTH)) + ")"
_INSERT = (
    f"INSERT INTO {TABLE} (logged_at, model_version, probability, prediction, "
    + ", ".join(_quoted(c) for c in RAW_COLUMNS)
    + ") VALUES "
    + _PLACEHOLDERS
)
_TRIM = f"DELETE FROM {TABLE} WHERE id <= (SELECT MAX(id) FROM {TABLE}) - ?"


@cache
def _insert_rows(count: int) -> str:
    """An INSERT of ``count`` rows in one statement (rows get increasing ids in the order given)."""
    return _INSERT + "".join(", " + _PLACEHOLDERS for _ in range(count - 1))


def _cell(value: Any) -> Any:
    """A raw value as SQLite stores it (NaN and pandas NA become NULL)."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def _values_of(group: Iterable[_Item]) -> list[Any]:
    """The values of the table rows of queued requests, row after row (:data:`ROW_WIDTH` per row).

    One flat list, as the multi-row INSERT binds them; values are converted only when they need it.
    """
    values: list[Any] = [
        value
        for passengers, probabilities, predictions, version, logged_at in group
        for at in (_timestamp(logged_at),)
        for passenger, p, y in zip(passengers, probabilities, predictions, strict=True)
        for value in (at, version, p, y, *map(passenger.get, RAW_COLUMNS))
    ]
    if not _PLAIN_TYPES.issuperset(map(type, values)):
        values = [
            value
            for start in range(0, len(values), ROW_WIDTH)
            for row in (values[start : start + ROW_WIDTH],)
            for value in (row[0], row[1], float(row[2]), int(row[3]), *map(_cell, row[4:]))
        ]
    return values


def _statement_sizes(rows: int, largest: int) -> list[int]:
    """Rows per INSERT for ``rows`` rows: ``largest`` (a power of two) while it fits, then the binary digits
    of the rest, so that a handful of distinct statements (all in the connection's cache) cover any count."""
    sizes = [largest] * (rows // largest)
    rest = rows % largest
    while rest:
        size = 1 << (rest.bit_length() - 1)
        sizes.append(size)
        rest -= size
    return sizes


def _insert(connection: sqlite3.Connection, values: list[Any], largest: int) -> None:
    """Insert the rows of ``values`` (see :func:`_values_of`) in order, at most ``largest`` per statement."""
    start = 0
    for size in _statement_sizes(len(values) // ROW_WIDTH, largest):
        end = start + size * ROW_WIDTH
        connection.execute(_insert_rows(size), values[start:end])
        start = end


@dataclass(frozen=True)
class PredictionLogStats:
    """Counters of one :class:`PredictionLog` since it was created."""

    written: int
    dropped: int
    failed: int
    pending: int
    #: Transactions committed: with group commit, far fewer than the requests whose rows they hold.
    transactions: int = 0


class PredictionLog:
    """Append scored passengers to a SQLite file from a background thread (never blocks the caller).

    ``commit_interval`` (seconds) and ``commit_rows`` tune the group commit (see the module docstring);
    ``max_pending_rows`` bounds the queue (and the memory it holds).
    """

    def __init__(
        self,
        path: Path | str,
        max_rows: int,
        max_pending_rows: int = 10_000,
        commit_interval: float = COMMIT_INTERVAL_SECONDS,
        commit_rows: int = COMMIT_ROWS,
    ) -> None:
        if max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        if commit_interval < 0:
            raise ValueError("commit_interval must be zero or positive")
        if commit_rows < 1:
            raise ValueError("commit_rows must be at least 1")
        self.path = Path(path)
        self.max_rows = max_rows
        self.max_pending_rows = max_pending_rows
        self.commit_interval = commit_interval
        self.commit_rows = commit_rows
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        #: Set to end the writer's wait for more rows early: a backlog, a flush, a close.
        self._wake = threading.Event()
        self._pending = 0
        self._written = 0
        self._dropped = 0
        self._failed = 0
        self._transactions = 0
        self._flushing = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._connection: sqlite3.Connection | None = None
        self._rows_per_statement = 1
        self._last_commit = -math.inf
        self._retry_at = 0.0
        self._last_error_logged: dict[str, float] = {}

    # -- caller side (request handlers) ---------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread (idempotent; a closed log stays closed)."""
        if self._thread is None and not self._closed:
            self._start_writer()

    def _start_writer(self) -> None:
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
        """Queue scored passengers for writing; False (and counted as dropped) when the queue is full.

        The objects are queued as they are and read later by the writer thread: the caller hands them over
        and must not change them afterwards. Values are stored as SQLite stores Python's ``int``, ``float``,
        ``str`` and ``None``; NaN, pandas NA and numpy scalars are converted. After :meth:`close`, rows are
        dropped (and counted).
        """
        count = len(passengers)
        if len(probabilities) != count or len(predictions) != count:
            raise ValueError(
                f"{count} passenger(s) but {len(probabilities)} probabilities and "
                f"{len(predictions)} predictions"
            )
        if not count:
            return True
        item = (passengers, probabilities, predictions, model_version, logged_at or datetime.now(UTC))
        with self._lock:
            if self._closed or self._pending + count > self.max_pending_rows:
                self._dropped += count
                return False
            self._pending += count
            self._queue.put(item)
            backlog = self._pending >= self.commit_rows
        if backlog:
            self._wake.set()
        return True

    def stats(self) -> PredictionLogStats:
        """Rows written, dropped (queue full), failed (write errors), still queued; transactions committed."""
        with self._lock:
            return PredictionLogStats(
                self._written, self._dropped, self._failed, self._pending, self._transactions
            )

    def flush(self, timeout: float = 5.0) -> bool:
        """Write what is queued now and wait until every queued row is written or has failed.

        False if ``timeout`` ran out first (or if the writer is not running and rows are queued).
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            self._flushing += 1
        try:
            self._wake.set()
            while time.monotonic() < deadline:
                if self.stats().pending == 0:
                    return True
                time.sleep(0.005)
            return self.stats().pending == 0
        finally:
            with self._lock:
                self._flushing -= 1

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (waiting at most ``timeout`` seconds), then stop the writer thread.

        Rows appended from then on are dropped. Rows queued before the writer was ever started are
        written too.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pending = self._pending
            self._queue.put(None)
        if self._thread is None and pending:
            self._start_writer()
        thread = self._thread
        if thread is None:
            return
        self._wake.set()
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
                self._wait_for_more()
                group, stop = self._take(first)
                try:
                    self._write(group)
                except Exception:  # a bug must not stop the writer: the group's rows are counted as failed
                    logger.exception("the prediction log writer failed on %d request(s)", len(group))
                self._last_commit = time.monotonic()
        finally:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def _wait_for_more(self) -> None:
        """Group commit: wait until ``commit_interval`` after the last commit (unless told to hurry)."""
        self._wake.clear()
        wait = self._last_commit + self.commit_interval - time.monotonic()
        if wait > 0 and self._pending < self.commit_rows and not (self._closed or self._flushing):
            self._wake.wait(wait)

    def _take(self, first: _Item) -> tuple[list[_Item], bool]:
        """``first`` and the items queued after it, up to ``commit_rows`` rows; whether close was asked."""
        group = [first]
        rows = len(first[0])
        while rows < self.commit_rows:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return group, False
            if item is None:
                return group, True
            group.append(item)
            rows += len(item[0])
        return group, False

    def _write(self, group: list[_Item]) -> None:
        """One transaction for the whole group (insert, then trim); count every row as written or failed."""
        count = sum(len(item[0]) for item in group)
        written = 0
        try:
            try:
                values = _values_of(group)
            except Exception:  # whatever a caller handed over: convert request by request (see _each)
                values = list(chain.from_iterable(self._each(group)))
            if time.monotonic() < self._retry_at:
                raise sqlite3.OperationalError("waiting before retrying after an earlier failure")
            connection = self._connect()
            try:
                self._commit(connection, values)
                written = len(values) // ROW_WIDTH
            except _VALUE_ERRORS:  # a value SQLite refuses: only its own request's rows fail
                if len(group) == 1:
                    raise
                written = self._commit_each(connection, self._each(group))
        except (sqlite3.Error, OSError, *_VALUE_ERRORS) as exc:
            self._report_failure(exc)
            if not isinstance(exc, _VALUE_ERRORS):  # the file itself: reopen it later
                if self._connection is not None:
                    self._connection.close()
                    self._connection = None
                self._retry_at = time.monotonic() + RETRY_AFTER_SECONDS
        finally:
            with self._lock:
                self._pending -= count
                self._written += written
                self._failed += count - written

    def _each(self, group: Iterable[_Item]) -> list[list[Any]]:
        """The values of each request; a request whose objects cannot be read gets none (its rows fail)."""
        converted = []
        for item in group:
            try:
                converted.append(_values_of((item,)))
            except Exception as exc:  # anything a caller handed over: it must not stop the writer thread
                self._report_failure(exc)
                converted.append([])
        return converted

    def _commit_each(self, connection: sqlite3.Connection, values: list[list[Any]]) -> int:
        """One transaction per request; the rows written. Errors of the file itself are raised."""
        written = 0
        for request_values in values:
            try:
                self._commit(connection, request_values)
            except _VALUE_ERRORS as exc:
                self._report_failure(exc)
            else:
                written += len(request_values) // ROW_WIDTH
        return written

    def _commit(self, connection: sqlite3.Connection, values: list[Any]) -> None:
        if not values:
            return
        with connection:  # one transaction: insert, then trim the oldest rows
            _insert(connection, values, self._rows_per_statement)
            connection.execute(_TRIM, (self.max_rows,))
        with self._lock:
            self._transactions += 1

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
            limit = connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // ROW_WIDTH
            self._rows_per_statement = 1 << (min(ROWS_PER_STATEMENT, max(limit, 1)).bit_length() - 1)
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
