"""Ground truth for served predictions: labels that arrive later, joined to the prediction log by request id.

A label names a logged prediction by its ``request_id`` (:mod:`lifeboat.monitoring.log_table`) and gives
the true label value as the training data writes it (one of the two values of the spec's label column).
:func:`ingest_labels` stores the labels whose id is in the log in the ``labels`` table of the same SQLite
file (keyed by request id, with the label, its 0/1 target and the time it was received), so that a later
step can join predictions and labels. It counts what it did with each label:

* *matched*: the id is in the log and had no label yet: stored now;
* *unknown*: the id is not in the log (never logged, or trimmed since): counted, not stored;
* *duplicate*: the same label again for an id (stored earlier or earlier in the request): harmless.

One call is all or nothing: a *different* label for an id (already stored, or twice in one request) refuses
the whole call (:class:`FeedbackConflict`, naming the ids) and a value that is not a label refuses it too
(:class:`FeedbackInvalid`, naming the row and the value); nothing is stored then. The labels table is
bounded like the log: past ``keep_labels`` rows, the labels of predictions the log has trimmed are deleted.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lifeboat.dataset.columns import NUMBER_TYPES, category_key
from lifeboat.dataset.models import DatasetSpec
from lifeboat.monitoring.log_table import BUSY_TIMEOUT_MS, TABLE, timestamp

logger = logging.getLogger(__name__)

__all__ = [
    "LABELS_TABLE",
    "MAX_LISTED",
    "FeedbackConflict",
    "FeedbackError",
    "FeedbackInvalid",
    "FeedbackResult",
    "LabelIn",
    "LabelProblem",
    "LabelValues",
    "ingest_labels",
    "label_values",
    "read_labels",
]

#: The table of received labels, in the prediction log's file.
LABELS_TABLE = "labels"
#: How many problems or conflicting ids an error lists (the counts are always complete).
MAX_LISTED = 100
#: Longest request id a label may name (a client id is at most 128 characters; a batch row adds ``-<row>``).
MAX_REQUEST_ID_LENGTH = 160
#: Ids per ``IN (...)`` query: below every SQLite build's bound-parameter limit.
_IDS_PER_QUERY = 900
_BOOLEAN_TEXT = {"true": "1", "false": "0"}


class FeedbackError(ValueError):
    """Labels cannot be ingested (the base of the specific errors below)."""


@dataclass(frozen=True)
class LabelProblem:
    """One bad label: its row (0-based in the request), the file line for a CSV, the field and value."""

    row: int | None
    field: str | None
    value: str | None
    msg: str
    line: int | None = None

    def where(self) -> str:
        """Where the problem is, for messages: ``line 3`` (CSV), ``labels[2]`` (JSON) or ``the body``."""
        if self.line is not None:
            return f"line {self.line}"
        if self.row is not None:
            return f"labels[{self.row}]"
        return "the body"

    def __str__(self) -> str:
        field = f" {self.field}" if self.field else ""
        value = f" {self.value}" if self.value is not None else ""
        return f"{self.where()}{field}{value}: {self.msg}"


class FeedbackInvalid(FeedbackError):  # noqa: N818 (reads as the condition)
    """Some labels (or the whole input) are invalid; carries every problem found. Nothing was stored."""

    def __init__(self, summary: str, problems: Sequence[LabelProblem]) -> None:
        self.summary = summary
        self.problems = list(problems)
        listed = "; ".join(str(p) for p in self.problems[:5])
        more = f" (and {len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        super().__init__(f"{summary}: {listed}{more}" if listed else summary)


class FeedbackConflict(FeedbackError):  # noqa: N818 (reads as the condition)
    """Some ids got a label different from the one they already have: the request is refused whole."""

    def __init__(self, ids: Sequence[str]) -> None:
        self.ids = sorted(ids)
        listed = ", ".join(self.ids[:MAX_LISTED])
        more = f" (and {len(self.ids) - MAX_LISTED} more)" if len(self.ids) > MAX_LISTED else ""
        super().__init__(
            f"{len(self.ids)} request id(s) already have a different label; nothing was stored: "
            f"{listed}{more}"
        )


@dataclass(frozen=True)
class FeedbackResult:
    """What one ingestion did with each label: ``matched + unknown + duplicate == received``."""

    received: int
    matched: int
    unknown: int
    duplicate: int


@dataclass(frozen=True)
class LabelIn:
    """One label as received: the prediction's request id and the raw label value (JSON or CSV text)."""

    #: Text when valid; anything else is refused by :func:`ingest_labels` (naming the row).
    request_id: Any
    label: Any
    #: Where it came from, for error messages: row (0-based) and, for a CSV, the file line.
    row: int = 0
    line: int | None = None


@dataclass(frozen=True)
class LabelValues:
    """The accepted label values of a dataset, as category keys (``"0"``, ``"1"``, ``">50K"``...)."""

    column: str
    keys: tuple[str, ...]
    positive: str
    numeric: bool
    boolean: bool

    def key_of(self, value: Any) -> str | None:
        """The category key of a received value, or None when it is not one of the label's values.

        Accepts the values as the training CSV writes them: ``1`` and ``"1"`` (and ``1.0``) for an integer
        label, the text for a categorical one, ``true``/``false`` for a boolean one.
        """
        if value is None or isinstance(value, dict | list):
            return None
        if isinstance(value, float) and value != value:
            return None
        key: str
        if isinstance(value, str):
            text = value.strip()
            if self.boolean and text.lower() in _BOOLEAN_TEXT:
                key = _BOOLEAN_TEXT[text.lower()]
            elif self.numeric:
                try:
                    number = float(text)
                except ValueError:
                    return None
                if number != number or number in (float("inf"), float("-inf")):
                    return None
                key = category_key(number)
            else:
                key = text
        elif isinstance(value, bool | int | float):
            key = category_key(value)
        else:
            return None
        return key if key in self.keys else None


def label_values(spec: DatasetSpec) -> LabelValues:
    """The label values a dataset accepts: its label column's vocabulary (0/1 for a boolean without one).

    Raises :class:`FeedbackError` when the spec does not say which values the label takes.
    """
    column = spec.columns_by_name.get(spec.label.column)
    if column is None:
        raise FeedbackError(f"dataset {spec.name!r}: the label column {spec.label.column!r} is not a column")
    keys = column.vocabulary_keys
    if keys is None and column.type == "boolean":
        keys = ["0", "1"]
    if not keys:
        raise FeedbackError(
            f"dataset {spec.name!r}: the label column {column.name!r} declares no vocabulary; "
            "add its two values to the spec to accept labels"
        )
    return LabelValues(
        column=column.name,
        keys=tuple(keys),
        positive=category_key(spec.label.positive),
        numeric=column.type in NUMBER_TYPES,
        boolean=column.type == "boolean",
    )


def _shown(value: Any) -> str:
    """A received value for an error message (bounded)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check(labels: Sequence[LabelIn], values: LabelValues) -> list[tuple[str, str]]:
    """``(request_id, key)`` of every label, or :class:`FeedbackInvalid` listing every bad one."""
    checked: list[tuple[str, str]] = []
    problems: list[LabelProblem] = []
    for item in labels:
        rid = item.request_id
        if not isinstance(rid, str) or not rid.strip() or len(rid) > MAX_REQUEST_ID_LENGTH:
            problems.append(
                LabelProblem(
                    item.row,
                    "request_id",
                    _shown(rid),
                    f"a request id is text of 1-{MAX_REQUEST_ID_LENGTH} characters",
                    item.line,
                )
            )
            continue
        key = values.key_of(item.label)
        if key is None:
            problems.append(
                LabelProblem(
                    item.row,
                    "label",
                    _shown(item.label),
                    f"not a value of the label column {values.column!r}; expected one of "
                    + ", ".join(values.keys),
                    item.line,
                )
            )
            continue
        checked.append((rid.strip(), key))
    if problems:
        rows = len({p.row for p in problems})
        raise FeedbackInvalid(f"{rows} of {len(labels)} label(s) are invalid; nothing was stored", problems)
    return checked


def _chunks(items: Sequence[str], size: int = _IDS_PER_QUERY) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _select_in(connection: sqlite3.Connection, sql: str, ids: Sequence[str]) -> Iterator[tuple[Any, ...]]:
    """Run ``sql`` (whose ``{ids}`` is an ``IN`` list) over ``ids`` in chunks."""
    for chunk in _chunks(ids):
        yield from connection.execute(sql.format(ids=", ".join("?" * len(chunk))), chunk)


def _create_labels_table(connection: sqlite3.Connection) -> None:
    connection.execute(
        f"CREATE TABLE IF NOT EXISTS {LABELS_TABLE} (request_id TEXT PRIMARY KEY, label TEXT NOT NULL, "
        "target INTEGER NOT NULL, received_at TEXT NOT NULL) WITHOUT ROWID"
    )


def _has_table(connection: sqlite3.Connection, name: str) -> bool:
    found = connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
    return found.fetchone() is not None


def ingest_labels(
    path: Path | str,
    spec: DatasetSpec,
    labels: Sequence[LabelIn],
    *,
    max_labels: int | None = None,
    keep_labels: int | None = None,
    received_at: datetime | None = None,
) -> FeedbackResult:
    """Store the labels of logged predictions in the log file at ``path``; count matched, unknown, duplicate.

    All or nothing: :class:`FeedbackInvalid` when a label is not one of the spec's label values, an id is
    malformed, there are no labels or more than ``max_labels``; :class:`FeedbackConflict` when an id gets a
    label different from the one it has (stored, or earlier in ``labels``), naming every such id. Sending the
    same labels again changes nothing (they count as duplicates). A missing log file means every id is
    unknown (no file is created).

    ``keep_labels`` bounds the labels table as the log's ``max_rows`` bounds the predictions: when it holds
    more rows than that after the insert, the labels of predictions the log has trimmed since are deleted.
    """
    if not labels:
        raise FeedbackInvalid(
            "no labels were sent", [LabelProblem(None, "labels", None, "at least one label")]
        )
    if max_labels is not None and len(labels) > max_labels:
        raise FeedbackInvalid(
            f"{len(labels)} labels were sent; the maximum per request is {max_labels}",
            [LabelProblem(None, "labels", None, f"at most {max_labels} labels per request")],
        )
    checked = _check(labels, label_values(spec))
    wanted: dict[str, str] = {}
    conflicts: set[str] = set()
    for rid, key in checked:
        known = wanted.setdefault(rid, key)
        if known != key:
            conflicts.add(rid)
    batch = _Batch(
        wanted, conflicts, len(labels), len(checked) - len(wanted), category_key(spec.label.positive)
    )
    path = Path(path)
    if not path.is_file():
        if conflicts:
            raise FeedbackConflict(sorted(conflicts))
        return FeedbackResult(batch.received, 0, len(wanted), batch.repeats)
    at = timestamp(received_at or datetime.now(UTC))
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        connection.execute("BEGIN IMMEDIATE")  # the check and the insert see the same labels
        try:
            result = _ingest(connection, batch, at, keep_labels)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
    finally:
        connection.close()
    return result


@dataclass(frozen=True)
class _Batch:
    """One request's labels after the checks: one label key per id, the ids given two different labels."""

    wanted: Mapping[str, str]
    conflicts: set[str]
    received: int
    repeats: int
    positive: str


def _ingest(
    connection: sqlite3.Connection, batch: _Batch, at: str, keep_labels: int | None
) -> FeedbackResult:
    """The check and the insert, inside the caller's write transaction."""
    wanted = batch.wanted
    if not _has_table(connection, TABLE):
        if batch.conflicts:
            raise FeedbackConflict(sorted(batch.conflicts))
        return FeedbackResult(batch.received, 0, len(wanted), batch.repeats)
    _create_labels_table(connection)
    ids = list(wanted)
    select_labels = f"SELECT request_id, label FROM {LABELS_TABLE} WHERE request_id IN ({{ids}})"
    stored = dict(_select_in(connection, select_labels, ids))
    conflicts = batch.conflicts | {rid for rid, label in stored.items() if wanted[rid] != label}
    if conflicts:
        raise FeedbackConflict(sorted(conflicts))
    new = [rid for rid in ids if rid not in stored]
    select_logged = f"SELECT DISTINCT request_id FROM {TABLE} WHERE request_id IN ({{ids}})"
    logged = {row[0] for row in _select_in(connection, select_logged, new)}
    rows = [(rid, wanted[rid], int(wanted[rid] == batch.positive), at) for rid in new if rid in logged]
    connection.executemany(
        f"INSERT INTO {LABELS_TABLE} (request_id, label, target, received_at) VALUES (?, ?, ?, ?)", rows
    )
    if keep_labels is not None and rows:
        _trim_labels(connection, keep_labels)
    return FeedbackResult(batch.received, len(rows), len(new) - len(rows), batch.repeats + len(stored))


def _trim_labels(connection: sqlite3.Connection, keep: int) -> None:
    """Past ``keep`` labels, delete those whose prediction the log no longer holds (it trims its oldest)."""
    (count,) = connection.execute(f"SELECT COUNT(*) FROM {LABELS_TABLE}").fetchone()
    if count > keep:
        deleted = connection.execute(
            f"DELETE FROM {LABELS_TABLE} WHERE NOT EXISTS "
            f"(SELECT 1 FROM {TABLE} p WHERE p.request_id = {LABELS_TABLE}.request_id)"
        ).rowcount
        logger.info("labels: %d of %d deleted, their predictions are no longer logged", deleted, count)


def read_labels(path: Path | str) -> dict[str, tuple[str, int]]:
    """The stored labels of a log file: request id -> (label value, 0/1 target); empty when there are none."""
    path = Path(path)
    if not path.is_file():
        return {}
    connection = sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000
    )
    try:
        if not _has_table(connection, LABELS_TABLE):
            return {}
        rows: Iterable[tuple[str, str, int]] = connection.execute(
            f"SELECT request_id, label, target FROM {LABELS_TABLE}"
        )
        return {rid: (label, target) for rid, label, target in rows}
    finally:
        connection.close()
