"""The prediction log: every scored record, kept in a bounded SQLite file per dataset for drift monitoring.

The prediction server appends one row per scored record (the dataset's raw columns, see
:func:`lifeboat.monitoring.log_table.log_columns`, then the probability, the 0/1 prediction, the model
version, the UTC time and the row's request id, indexed so that late labels can be joined to it). The drift
report reads the most recent rows back as a window with :func:`read_window`.

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
from itertools import chain
from pathlib import Path
from typing import Any

from lifeboat.monitoring.log_table import (
    BUSY_TIMEOUT_MS,
    META_COLUMNS,
    Item,
    LogColumn,
    LogTable,
    log_columns,
    read_window,
)

__all__ = [
    "META_COLUMNS",
    "LogColumn",
    "PredictionLog",
    "PredictionLogStats",
    "log_columns",
    "read_window",
]

logger = logging.getLogger(__name__)

#: How often (seconds) the same write failure is logged again.
ERROR_LOG_INTERVAL = 60.0
#: After a failed write, wait this long before opening the file again.
RETRY_AFTER_SECONDS = 5.0
#: Group commit: the writer commits at most this often (seconds) while rows keep arriving...
COMMIT_INTERVAL_SECONDS = 0.02
#: ... or sooner once this many rows are waiting; also the most rows written in one transaction.
COMMIT_ROWS = 5000
#: Most rows per INSERT statement. Every statement hands the GIL over while SQLite works and must take it
#: back, which costs the request threads a switch each time: one statement per row made inserting a
#: 1000-row batch 1000 switches, 512 rows per statement makes it a handful. Capped by the SQLite build's
#: bound-parameter limit (999 on old builds).
ROWS_PER_STATEMENT = 512

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
    """Append scored records to a SQLite file from a background thread (never blocks the caller).

    ``columns`` are the dataset's raw columns (:func:`log_columns` of its spec). ``commit_interval``
    (seconds) and ``commit_rows`` tune the group commit (see the module docstring); ``max_pending_rows``
    bounds the queue (and the memory it holds).
    """

    def __init__(
        self,
        path: Path | str,
        max_rows: int,
        max_pending_rows: int = 10_000,
        commit_interval: float = COMMIT_INTERVAL_SECONDS,
        commit_rows: int = COMMIT_ROWS,
        *,
        columns: Sequence[LogColumn],
    ) -> None:
        if max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        if commit_interval < 0:
            raise ValueError("commit_interval must be zero or positive")
        if commit_rows < 1:
            raise ValueError("commit_rows must be at least 1")
        self.path = Path(path)
        self.table = LogTable(tuple(columns))
        self.max_rows = max_rows
        self.max_pending_rows = max_pending_rows
        self.commit_interval = commit_interval
        self.commit_rows = commit_rows
        self._queue: queue.SimpleQueue[Item | None] = queue.SimpleQueue()
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
        request_ids: Sequence[str] | None = None,
    ) -> bool:
        """Queue scored passengers for writing; False (and counted as dropped) when the queue is full.

        ``request_ids`` are the rows' ids (one per passenger; None logs the rows without one).

        The objects are queued as they are and read later by the writer thread: the caller hands them over
        and must not change them afterwards. Values are stored as SQLite stores Python's ``int``, ``float``,
        ``str`` and ``None``; NaN, pandas NA and numpy scalars are converted. After :meth:`close`, rows are
        dropped (and counted).
        """
        count = len(passengers)
        if (
            len(probabilities) != count
            or len(predictions) != count
            or (request_ids is not None and len(request_ids) != count)
        ):
            raise ValueError(
                f"{count} passenger(s) but {len(probabilities)} probabilities, {len(predictions)} predictions"
                + ("" if request_ids is None else f" and {len(request_ids)} request ids")
            )
        if not count:
            return True
        item = (
            passengers,
            probabilities,
            predictions,
            model_version,
            logged_at or datetime.now(UTC),
            request_ids,
        )
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

    def _take(self, first: Item) -> tuple[list[Item], bool]:
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

    def _write(self, group: list[Item]) -> None:
        """One transaction for the whole group (insert, then trim); count every row as written or failed."""
        count = sum(len(item[0]) for item in group)
        written = 0
        try:
            try:
                values = self.table.values_of(group)
            except Exception:  # whatever a caller handed over: convert request by request (see _each)
                values = list(chain.from_iterable(self._each(group)))
            if time.monotonic() < self._retry_at:
                raise sqlite3.OperationalError("waiting before retrying after an earlier failure")
            connection = self._connect()
            try:
                self._commit(connection, values)
                written = len(values) // self.table.row_width
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

    def _each(self, group: Iterable[Item]) -> list[list[Any]]:
        """The values of each request; a request whose objects cannot be read gets none (its rows fail)."""
        converted = []
        for item in group:
            try:
                converted.append(self.table.values_of((item,)))
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
                written += len(request_values) // self.table.row_width
        return written

    def _commit(self, connection: sqlite3.Connection, values: list[Any]) -> None:
        if not values:
            return
        with connection:  # one transaction: insert, then trim the oldest rows
            self.table.insert(connection, values, self._rows_per_statement)
            connection.execute(self.table.trim, (self.max_rows,))
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
                    self.table.create(connection)
            except sqlite3.Error:
                connection.close()
                raise
            limit = connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // self.table.row_width
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
