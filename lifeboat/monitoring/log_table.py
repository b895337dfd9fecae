"""The prediction log's table: one row per scored record, the dataset's raw columns beside the metadata.

The columns come from the dataset spec (:func:`log_columns`): every raw column but the label, typed as the
spec types it. A log written under an older spec keeps its rows: a column the spec gained is added to the
table (older rows hold NULL there), a column it dropped stays and is no longer filled. The same goes for the
metadata: a log written before ``request_id`` existed gains the column (and its index) when a writer opens
it; its older rows hold NULL there. :func:`read_window` reads the newest rows back as a typed frame (a file
no writer has migrated yet reads as if the missing columns were NULL).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import repeat
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from lifeboat.dataset.models import DatasetSpec

TABLE = "predictions"
#: Columns written besides the dataset's raw columns. ``request_id`` is the row's id (see
#: :mod:`serving.request_ids`), indexed so that late labels can be joined to their predictions.
META_COLUMNS: tuple[str, ...] = ("logged_at", "model_version", "probability", "prediction", "request_id")
#: Metadata columns added after the first layout: (name, SQL type) added to older tables, each indexed.
_ADDED_META: tuple[tuple[str, str], ...] = (("request_id", "TEXT"),)
BUSY_TIMEOUT_MS = 5000

Kind = Literal["int", "float", "str", "bool"]
_SQL_TYPES: dict[str, str] = {"int": "INTEGER", "float": "REAL", "str": "TEXT", "bool": "INTEGER"}
_KIND_OF_SQL: dict[str, Kind] = {"INTEGER": "int", "REAL": "float", "TEXT": "str"}
#: Value types SQLite stores as they are (a NaN float is stored as NULL). Anything else, numpy scalars
#: first of all (which SQLite would store as BLOBs), is converted by :func:`cell`.
_PLAIN_TYPES = frozenset({int, float, str, bool, type(None)})

#: One queued request: records, probabilities, predictions, model version, time of the request, and the
#: rows' request ids (None: the rows have none, NULL in the table).
Item = tuple[Sequence[Mapping[str, Any]], Sequence[float], Sequence[int], str, datetime, Sequence[str] | None]


@dataclass(frozen=True)
class LogColumn:
    """One raw column of the log: its name, how it is stored, whether it may be missing."""

    name: str
    kind: Kind
    nullable: bool = True

    @property
    def pandas_dtype(self) -> str:
        if self.kind == "int":
            return "Int64" if self.nullable else "int64"
        if self.kind == "bool":
            return "boolean"
        return "float64" if self.kind == "float" else "object"


def log_columns(spec: DatasetSpec) -> tuple[LogColumn, ...]:
    """The logged columns of a dataset: its raw columns but the label (the id may be missing in requests)."""
    kinds: dict[str, Kind] = {"integer": "int", "numeric": "float", "boolean": "bool"}
    return tuple(
        LogColumn(c.name, kinds.get(c.type, "str"), c.nullable or c.role == "id")
        for c in spec.columns
        if c.role != "label"
    )


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def timestamp(moment: datetime) -> str:
    """Fixed-width ISO-8601 UTC text, so that string order is time order in SQLite."""
    if moment.tzinfo is not UTC:
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds")


def cell(value: Any) -> Any:
    """A raw value as SQLite stores it (NaN and pandas NA become NULL)."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def statement_sizes(rows: int, largest: int) -> list[int]:
    """Rows per INSERT for ``rows`` rows: ``largest`` (a power of two) while it fits, then the binary digits
    of the rest, so that a handful of distinct statements (all in the connection's cache) cover any count."""
    sizes = [largest] * (rows // largest)
    rest = rows % largest
    while rest:
        size = 1 << (rest.bit_length() - 1)
        sizes.append(size)
        rest -= size
    return sizes


@dataclass(frozen=True)
class LogTable:
    """The SQL of one log layout: create, migrate, insert many rows per statement, trim."""

    columns: tuple[LogColumn, ...]
    _inserts: dict[int, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def raw_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def row_width(self) -> int:
        """Values per table row: the metadata, then the raw columns."""
        return len(META_COLUMNS) + len(self.columns)

    @property
    def trim(self) -> str:
        return f"DELETE FROM {TABLE} WHERE id <= (SELECT MAX(id) FROM {TABLE}) - ?"

    def insert_rows(self, count: int) -> str:
        """An INSERT of ``count`` rows in one statement (rows get increasing ids in the order given)."""
        statement = self._inserts.get(count)
        if statement is None:
            placeholders = "(" + ", ".join("?" for _ in range(self.row_width)) + ")"
            names = ", ".join(quoted(c) for c in (*META_COLUMNS, *self.raw_names))
            statement = f"INSERT INTO {TABLE} ({names}) VALUES " + ", ".join([placeholders] * count)
            self._inserts[count] = statement
        return statement

    def create(self, connection: sqlite3.Connection) -> None:
        """Create the table, or add the columns an older layout lacks (in the caller's transaction)."""
        raw = ", ".join(f"{quoted(c.name)} {_SQL_TYPES[c.kind]}" for c in self.columns)
        connection.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (id INTEGER PRIMARY KEY, logged_at TEXT NOT NULL, "
            f"model_version TEXT NOT NULL, probability REAL NOT NULL, prediction INTEGER NOT NULL, "
            f"request_id TEXT" + (f", {raw})" if raw else ")")
        )
        connection.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_logged_at ON {TABLE} (logged_at)")
        present = {row[1] for row in connection.execute(f"PRAGMA table_info({TABLE})")}
        for name, sql_type in _ADDED_META:
            if name not in present:
                connection.execute(f"ALTER TABLE {TABLE} ADD COLUMN {quoted(name)} {sql_type}")
            connection.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_{name} ON {TABLE} ({quoted(name)})")
        for column in self.columns:
            if column.name not in present:
                connection.execute(
                    f"ALTER TABLE {TABLE} ADD COLUMN {quoted(column.name)} {_SQL_TYPES[column.kind]}"
                )

    def values_of(self, group: Iterable[Item]) -> list[Any]:
        """The values of the table rows of queued requests, row after row (:attr:`row_width` per row).

        One flat list, as the multi-row INSERT binds them; values are converted only when they need it.
        """
        names = self.raw_names
        values: list[Any] = [
            value
            for records, probabilities, predictions, version, logged_at, ids in group
            for at in (timestamp(logged_at),)
            for record, p, y, rid in zip(
                records,
                probabilities,
                predictions,
                repeat(None, len(records)) if ids is None else ids,
                strict=True,
            )
            for value in (at, version, p, y, rid, *map(record.get, names))
        ]
        if not _PLAIN_TYPES.issuperset(map(type, values)):
            width = self.row_width
            values = [
                value
                for start in range(0, len(values), width)
                for row in (values[start : start + width],)
                for value in (row[0], row[1], float(row[2]), int(row[3]), *map(cell, row[4:]))
            ]
        return values

    def insert(self, connection: sqlite3.Connection, values: list[Any], largest: int) -> None:
        """Insert the rows of ``values`` (:meth:`values_of`) in order, at most ``largest`` per statement."""
        start = 0
        for size in statement_sizes(len(values) // self.row_width, largest):
            end = start + size * self.row_width
            connection.execute(self.insert_rows(size), values[start:end])
            start = end


#: The metadata as columns, for :func:`_select` (their kinds are not used there).
_META = tuple(LogColumn(name, "str") for name in META_COLUMNS)


def _table_columns(connection: sqlite3.Connection) -> tuple[LogColumn, ...]:
    """The raw columns of an existing table, typed by their declared SQL type."""
    rows = connection.execute(f"PRAGMA table_info({TABLE})").fetchall()
    return tuple(
        LogColumn(name, _KIND_OF_SQL.get(str(sql_type).upper(), "str"))
        for _, name, sql_type, *_ in rows
        if name != "id" and name not in META_COLUMNS
    )


def _present_meta(connection: sqlite3.Connection) -> set[str]:
    """The metadata columns the table has (an unmigrated older log lacks the later ones)."""
    return {row[1] for row in connection.execute(f"PRAGMA table_info({TABLE})")} & set(META_COLUMNS)


def read_window(
    path: Path | str,
    last_n: int | None = None,
    since: datetime | str | None = None,
    columns: Sequence[LogColumn] | None = None,
) -> pd.DataFrame:
    """The logged records as a frame, oldest first: the raw columns, then :data:`META_COLUMNS`.

    ``columns`` (default: the table's own columns, typed by their SQL type) says which raw columns to read
    and how to type them; one the table lacks comes back all missing. ``last_n`` keeps only the newest rows;
    ``since`` keeps rows logged at or after that time (a datetime, naive meaning UTC, or an ISO-8601 string).
    A missing file gives an empty frame. Integer columns come back as ``int64`` (``Int64`` when they may be
    missing), numeric ones as ``float64``, text as ``object``, ``logged_at`` as UTC datetimes.
    """
    if last_n is not None and last_n < 0:
        raise ValueError("last_n must be zero or positive")
    path = Path(path)
    rows: list[Any] = []
    wanted: tuple[LogColumn, ...] = tuple(columns) if columns is not None else ()
    if path.is_file():
        connection = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000
        )
        try:
            connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            present = _table_columns(connection)
            if columns is None:
                wanted = present
            names_present = {c.name for c in present} | _present_meta(connection)
            rows = _select(connection, wanted, names_present, last_n, since)
        finally:
            connection.close()
    names = [*(c.name for c in wanted), *META_COLUMNS]
    frame = pd.DataFrame(rows, columns=names) if rows else pd.DataFrame({c: [] for c in names})
    return typed(frame, wanted).reset_index(drop=True)


def typed(frame: pd.DataFrame, columns: Sequence[LogColumn]) -> pd.DataFrame:
    """``frame`` with the raw ``columns`` typed as the log types them and the metadata columns typed."""
    for column in columns:
        dtype = column.pandas_dtype
        if dtype == "int64" and frame[column.name].isna().any():  # rows logged before the column existed
            dtype = "Int64"
        frame[column.name] = frame[column.name].astype(dtype)
    frame["logged_at"] = pd.to_datetime(frame["logged_at"], utc=True, format="ISO8601")
    frame["model_version"] = frame["model_version"].astype("object")
    frame["probability"] = frame["probability"].astype("float64")
    frame["prediction"] = frame["prediction"].astype("int64")
    frame["request_id"] = frame["request_id"].astype("object")
    return frame


def _select(
    connection: sqlite3.Connection,
    wanted: Sequence[LogColumn],
    present: set[str],
    last_n: int | None,
    since: datetime | str | None,
) -> list[Any]:
    """The newest rows (oldest first) of ``wanted`` columns, then the metadata (NULL for what the table
    lacks: raw columns the spec gained, metadata added after the table was written)."""
    where = ""
    params: list[Any] = []
    if since is not None:
        moment = datetime.fromisoformat(since) if isinstance(since, str) else since
        where = "WHERE logged_at >= ?"
        params.append(timestamp(moment))
    select = ", ".join([*(quoted(c.name) if c.name in present else "NULL" for c in (*wanted, *_META))])
    sql = f"SELECT id, {select} FROM {TABLE} {where} ORDER BY id DESC"
    if last_n is not None:
        sql += " LIMIT ?"
        params.append(last_n)
    try:
        found = connection.execute(sql, params).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        return []
    found.reverse()
    return [r[1:] for r in found]
