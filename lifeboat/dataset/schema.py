"""THE passenger schema: raw columns, types, ranges and vocabularies, and CSV validation.

This module is the single source of truth for what a raw passenger row may contain. Training data
validation (:func:`validate_csv`), the Spark jobs' read schema and the serving API's input models are all
derived from :data:`COLUMNS`.

Row numbers in messages count data rows from 1 (the first row after the header is row 1).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

ColumnKind = Literal["int", "float", "str"]

ID_COLUMN = "PassengerId"
LABEL_COLUMN = "Survived"


@dataclass(frozen=True)
class ColumnSpec:
    """One raw column: its type, whether it must be present and non-empty, and its allowed values."""

    name: str
    kind: ColumnKind
    required: bool
    description: str
    minimum: float | None = None
    maximum: float | None = None
    allowed: tuple[str, ...] | tuple[int, ...] | None = None
    max_length: int | None = None


#: Raw passenger columns in the Kaggle order (label excluded). ``required`` means the column must exist
#: and every row must have a value; optional columns may be missing or empty (they are imputed).
COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec(ID_COLUMN, "int", True, "Unique passenger id", minimum=1, maximum=2**53),
    ColumnSpec("Pclass", "int", True, "Ticket class (1 = first, 3 = third)", allowed=(1, 2, 3)),
    ColumnSpec("Name", "str", False, "Full name with title, e.g. 'Braund, Mr. Owen Harris'", max_length=200),
    ColumnSpec("Sex", "str", True, "male or female", allowed=("male", "female")),
    ColumnSpec("Age", "float", False, "Age in years (fractions for infants)", minimum=0, maximum=120),
    ColumnSpec("SibSp", "int", True, "Siblings and spouses aboard", minimum=0, maximum=20),
    ColumnSpec("Parch", "int", True, "Parents and children aboard", minimum=0, maximum=20),
    ColumnSpec("Ticket", "str", False, "Ticket number", max_length=64),
    ColumnSpec("Fare", "float", False, "Passenger fare in pounds", minimum=0, maximum=1000),
    ColumnSpec("Cabin", "str", False, "Cabin number(s)", max_length=64),
    ColumnSpec(
        "Embarked",
        "str",
        False,
        "Port: C = Cherbourg, Q = Queenstown, S = Southampton",
        allowed=("C", "Q", "S"),
    ),
)
LABEL = ColumnSpec(LABEL_COLUMN, "int", True, "1 = survived, 0 = died", allowed=(0, 1))

COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
BY_NAME: dict[str, ColumnSpec] = {c.name: c for c in (*COLUMNS, LABEL)}

#: How many problems one validation error lists before it stops counting.
MAX_REPORTED_PROBLEMS = 20


@dataclass(frozen=True)
class Problem:
    """One invalid cell (or row) of a CSV file."""

    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class DataValidationError(ValueError):
    """A data file breaks the passenger schema; names the file, and the rows and columns at fault."""

    def __init__(self, path: Path | str, problems: list[Problem], total: int | None = None) -> None:
        self.path = str(path)
        self.problems = problems
        self.total = total if total is not None else len(problems)
        lines = [f"{self.path}: {p}" for p in problems[:MAX_REPORTED_PROBLEMS]]
        more = self.total - len(lines)
        if more > 0:
            lines.append(f"... and {more} more problem(s)")
        super().__init__(f"invalid data in {self.path} ({self.total} problem(s)):\n  " + "\n  ".join(lines))


@dataclass
class ValidationSummary:
    """What validation found in a valid file."""

    path: str
    rows: int
    labelled: bool
    missing: dict[str, int] = field(default_factory=dict)
    duplicate_rows: int = 0
    positive_rate: float | None = None

    def as_dict(self) -> dict[str, object]:
        """Plain JSON-serialisable form (for XCom and summaries)."""
        return {
            "path": self.path,
            "rows": self.rows,
            "labelled": self.labelled,
            "missing": dict(self.missing),
            "duplicate_rows": self.duplicate_rows,
            "positive_rate": self.positive_rate,
        }


def _check_column(
    spec: ColumnSpec, values: pd.Series, first_row: int
) -> tuple[pd.Series, list[Problem], int]:
    """Check one column of strings; return it parsed, its problems (capped) and their count."""
    problems: list[Problem] = []
    count = 0
    stripped = values.str.strip()
    empty = stripped.isna() | (stripped == "")

    def report(mask: pd.Series, message_of: object) -> None:
        nonlocal count
        hits = np.flatnonzero(mask.to_numpy())
        count += len(hits)
        for i in hits[: MAX_REPORTED_PROBLEMS - len(problems)]:
            raw = values.iloc[i]
            msg = message_of(raw) if callable(message_of) else str(message_of)
            problems.append(Problem(first_row + int(i), spec.name, msg))

    if spec.required:
        report(empty, "a value is required but the cell is empty")

    if spec.kind == "str":
        parsed = stripped.where(~empty, None)
        if spec.allowed is not None:
            bad = ~empty & ~stripped.isin([str(a) for a in spec.allowed])
            report(
                bad, lambda raw: f"unknown value {raw!r}; allowed: {', '.join(map(str, spec.allowed or ()))}"
            )
        if spec.max_length is not None:
            report(
                ~empty & (stripped.str.len() > spec.max_length), f"longer than {spec.max_length} characters"
            )
        return parsed, problems, count

    numbers = pd.to_numeric(stripped.where(~empty), errors="coerce")
    not_number = ~empty & numbers.isna()
    report(not_number, lambda raw: f"expected a number, got {raw!r}")
    finite = numbers.notna()
    not_finite = finite & ~np.isfinite(numbers.fillna(0).to_numpy())
    report(pd.Series(not_finite, index=values.index), lambda raw: f"expected a finite number, got {raw!r}")
    ok = finite & ~not_finite
    if spec.kind == "int":
        fractional = ok & (numbers.fillna(0) % 1 != 0)
        report(fractional, lambda raw: f"expected a whole number, got {raw!r}")
    if spec.allowed is not None:
        bad = ok & ~numbers.isin([float(a) for a in spec.allowed])
        report(
            bad, lambda raw: f"impossible value {raw!r}; allowed: {', '.join(map(str, spec.allowed or ()))}"
        )
    if spec.minimum is not None:
        report(
            ok & (numbers < spec.minimum), lambda raw: f"value {raw!r} is below the minimum {spec.minimum:g}"
        )
    if spec.maximum is not None:
        report(
            ok & (numbers > spec.maximum), lambda raw: f"value {raw!r} is above the maximum {spec.maximum:g}"
        )
    return numbers.where(ok), problems, count


def iter_csv_chunks(path: Path, chunk_rows: int = 200_000) -> Iterator[pd.DataFrame]:
    """Yield a CSV as string-typed chunks (nothing is converted, so validation sees the raw cells)."""
    yield from pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], chunksize=chunk_rows)


def validate_csv(
    path: Path | str, require_label: bool = True, chunk_rows: int = 200_000
) -> ValidationSummary:
    """Validate a passenger CSV against :data:`COLUMNS`; raise :class:`DataValidationError` on any problem.

    Checks: the file exists and has data rows; every required column is present; each cell has the right
    type and lies in its range or vocabulary; the label is 0 or 1 (when ``require_label``); one PassengerId
    never carries two different labels. Rows repeated exactly are allowed and counted (they are de-duplicated
    by preprocessing). The file is read in chunks, so memory stays bounded for large files.
    """
    path = Path(path)
    if not path.is_file():
        raise DataValidationError(path, [Problem(None, None, "file not found")])
    if path.stat().st_size == 0:
        raise DataValidationError(path, [Problem(None, None, "file is empty (no header, no rows)")])
    specs = list(COLUMNS) + ([LABEL] if require_label else [])
    problems: list[Problem] = []
    total = 0
    rows = 0
    missing: dict[str, int] = {}
    labels_by_id: dict[int, int] = {}
    first_row_by_id: dict[int, int] = {}
    duplicate_rows = 0
    positives = 0
    try:
        chunks = iter_csv_chunks(path, chunk_rows)
        for chunk in chunks:
            if rows == 0:
                absent = [s.name for s in specs if s.required and s.name not in chunk.columns]
                if absent:
                    raise DataValidationError(
                        path, [Problem(None, c, "required column is missing from the header") for c in absent]
                    )
            first = rows + 1
            parsed: dict[str, pd.Series] = {}
            for spec in specs:
                if spec.name not in chunk.columns:
                    missing[spec.name] = missing.get(spec.name, 0) + len(chunk)
                    continue
                values, found, count = _check_column(spec, chunk[spec.name], first)
                parsed[spec.name] = values
                total += count
                problems.extend(found[: MAX_REPORTED_PROBLEMS - len(problems)])
                missing[spec.name] = missing.get(spec.name, 0) + int(values.isna().sum())
            if require_label and ID_COLUMN in parsed and LABEL_COLUMN in parsed:
                ids = parsed[ID_COLUMN].to_numpy()
                labels = parsed[LABEL_COLUMN].to_numpy()
                positives += int(np.nansum(labels == 1))
                for i, (pid, label) in enumerate(zip(ids, labels, strict=True)):
                    if math.isnan(pid) or math.isnan(label):
                        continue
                    key = int(pid)
                    if key in labels_by_id:
                        duplicate_rows += 1
                        if labels_by_id[key] != int(label):
                            total += 1
                            if len(problems) < MAX_REPORTED_PROBLEMS:
                                problems.append(
                                    Problem(
                                        first + i,
                                        ID_COLUMN,
                                        f"PassengerId {key} appears again with label {int(label)}, but row "
                                        f"{first_row_by_id[key]} gives label {labels_by_id[key]}",
                                    )
                                )
                    else:
                        labels_by_id[key] = int(label)
                        first_row_by_id[key] = first + i
            rows += len(chunk)
    except pd.errors.EmptyDataError as exc:
        raise DataValidationError(path, [Problem(None, None, "file is empty (no header, no rows)")]) from exc
    except pd.errors.ParserError as exc:
        raise DataValidationError(path, [Problem(None, None, f"not a readable CSV: {exc}")]) from exc
    except UnicodeDecodeError as exc:
        raise DataValidationError(path, [Problem(None, None, f"not UTF-8 text: {exc}")]) from exc
    if rows == 0:
        raise DataValidationError(path, [Problem(None, None, "file has a header but no data rows")])
    if problems:
        raise DataValidationError(path, problems, total)
    summary = ValidationSummary(
        path=str(path),
        rows=rows,
        labelled=require_label,
        missing=missing,
        duplicate_rows=duplicate_rows,
        positive_rate=(positives / rows) if require_label else None,
    )
    logger.info("validated %s: %d rows, %d duplicate ids", path, rows, duplicate_rows)
    return summary
