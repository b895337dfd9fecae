"""CSV validation against a dataset spec: types, ranges, vocabularies, required values, consistent labels.

The messages are those of :mod:`lifeboat.dataset.schema` (the same :class:`DataValidationError`, rows
counted from 1 after the header), so Titanic's files fail the same way whichever of the two checks them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from lifeboat.dataset.models import Column, DatasetSpec, category_key
from lifeboat.dataset.schema import (
    MAX_REPORTED_PROBLEMS,
    DataValidationError,
    Problem,
    ValidationSummary,
    iter_csv_chunks,
)

logger = logging.getLogger(__name__)

_BOOLEANS = {"1": 1.0, "0": 0.0, "true": 1.0, "false": 0.0}


class _Report:
    """Problems of one column, capped, with their full count."""

    def __init__(self, column: Column, values: pd.Series, first_row: int) -> None:
        self.column, self.values, self.first_row = column, values, first_row
        self.problems: list[Problem] = []
        self.count = 0

    def __call__(self, mask: pd.Series | np.ndarray, message: str | Callable[[object], str]) -> None:
        hits = np.flatnonzero(np.asarray(mask))
        self.count += len(hits)
        for i in hits[: MAX_REPORTED_PROBLEMS - len(self.problems)]:
            raw = self.values.iloc[i]
            text = message(raw) if callable(message) else message
            self.problems.append(Problem(self.first_row + int(i), self.column.name, text))


def _allowed(column: Column) -> str:
    return ", ".join(map(str, column.vocabulary or ()))


def check_column(column: Column, values: pd.Series, first_row: int) -> tuple[pd.Series, list[Problem], int]:
    """Check one column of raw strings; return it parsed, its problems (capped) and their count."""
    report = _Report(column, values, first_row)
    stripped = values.str.strip()
    empty = stripped.isna() | (stripped == "")
    if not column.nullable:
        report(empty, "a value is required but the cell is empty")
    if column.type in ("text", "categorical"):
        if column.vocabulary is not None:
            bad = ~empty & ~stripped.isin([str(v) for v in column.vocabulary])
            report(bad, lambda raw: f"unknown value {raw!r}; allowed: {_allowed(column)}")
        if column.max_length is not None:
            report(
                ~empty & (stripped.str.len() > column.max_length),
                f"longer than {column.max_length} characters",
            )
        return stripped.where(~empty, None), report.problems, report.count
    if column.type == "boolean":
        numbers = stripped.str.lower().map(_BOOLEANS)
        report(~empty & numbers.isna(), lambda raw: f"expected a boolean (true/false/1/0), got {raw!r}")
        return numbers, report.problems, report.count
    numbers = pd.to_numeric(stripped.where(~empty), errors="coerce")
    report(~empty & numbers.isna(), lambda raw: f"expected a number, got {raw!r}")
    finite = numbers.notna()
    not_finite = finite & ~np.isfinite(numbers.fillna(0).to_numpy())
    report(not_finite, lambda raw: f"expected a finite number, got {raw!r}")
    ok = finite & ~not_finite
    if column.type == "integer":
        report(ok & (numbers.fillna(0) % 1 != 0), lambda raw: f"expected a whole number, got {raw!r}")
    if column.vocabulary is not None:
        bad = ok & ~numbers.isin([float(v) for v in column.vocabulary])
        report(bad, lambda raw: f"impossible value {raw!r}; allowed: {_allowed(column)}")
    if column.range is not None and column.range.min is not None:
        lo = column.range.min
        report(ok & (numbers < lo), lambda raw: f"value {raw!r} is below the minimum {lo:g}")
    if column.range is not None and column.range.max is not None:
        hi = column.range.max
        report(ok & (numbers > hi), lambda raw: f"value {raw!r} is above the maximum {hi:g}")
    return numbers.where(ok), report.problems, report.count


class _Labels:
    """One id never carries two different labels; counts duplicates and positives."""

    def __init__(self, spec: DatasetSpec) -> None:
        self.id_column = spec.id_column
        self.positive = category_key(spec.label.positive)
        self.by_id: dict[str, tuple[str, int]] = {}
        self.duplicates = 0
        self.positives = 0
        self.problems: list[Problem] = []
        self.count = 0

    def add(self, ids: pd.Series | None, labels: pd.Series, first: int) -> None:
        keys = [None if _absent(v) else category_key(v) for v in labels.tolist()]
        self.positives += sum(k == self.positive for k in keys)
        if ids is None:
            return
        for i, (pid, label) in enumerate(zip(ids.tolist(), keys, strict=True)):
            if _absent(pid) or label is None:
                continue
            key = category_key(pid)
            if key not in self.by_id:
                self.by_id[key] = (label, first + i)
                continue
            self.duplicates += 1
            known, row = self.by_id[key]
            if known != label:
                self.count += 1
                if len(self.problems) < MAX_REPORTED_PROBLEMS:
                    message = (
                        f"{self.id_column} {key} appears again with label {label}, "
                        f"but row {row} gives label {known}"
                    )
                    self.problems.append(Problem(first + i, self.id_column, message))


def _absent(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def validate_csv(
    spec: DatasetSpec, path: Path | str, require_label: bool = True, chunk_rows: int = 200_000
) -> ValidationSummary:
    """Validate a CSV against the spec's columns; raise :class:`DataValidationError` on any problem.

    Checks: the file exists and has data rows; every non-nullable column is present; each cell has the
    right type and lies in its range or vocabulary; the label has one of its values (when
    ``require_label``); one id never carries two different labels. The file is read in chunks.
    """
    path = Path(path)
    if not path.is_file():
        raise DataValidationError(path, [Problem(None, None, "file not found")])
    if path.stat().st_size == 0:
        raise DataValidationError(path, [Problem(None, None, "file is empty (no header, no rows)")])
    # the label is checked last, as the schema does (so problems are listed in the same order)
    columns = [c for c in spec.columns if c.role != "label"]
    columns += [c for c in spec.columns if c.role == "label" and require_label]
    problems: list[Problem] = []
    total = rows = 0
    missing: dict[str, int] = {}
    labels = _Labels(spec)
    try:
        for chunk in iter_csv_chunks(path, chunk_rows):
            if rows == 0:
                absent = [c.name for c in columns if not c.nullable and c.name not in chunk.columns]
                if absent:
                    raise DataValidationError(
                        path, [Problem(None, c, "required column is missing from the header") for c in absent]
                    )
            first = rows + 1
            parsed: dict[str, pd.Series] = {}
            for column in columns:
                if column.name not in chunk.columns:
                    missing[column.name] = missing.get(column.name, 0) + len(chunk)
                    continue
                values, found, count = check_column(column, chunk[column.name], first)
                parsed[column.name] = values
                total += count
                problems.extend(found[: MAX_REPORTED_PROBLEMS - len(problems)])
                missing[column.name] = missing.get(column.name, 0) + int(values.isna().sum())
            if require_label and spec.label.column in parsed:
                ids = parsed.get(spec.id_column) if spec.id_column is not None else None
                labels.add(ids, parsed[spec.label.column], first)
            rows += len(chunk)
    except pd.errors.EmptyDataError as exc:
        raise DataValidationError(path, [Problem(None, None, "file is empty (no header, no rows)")]) from exc
    except pd.errors.ParserError as exc:
        raise DataValidationError(path, [Problem(None, None, f"not a readable CSV: {exc}")]) from exc
    except UnicodeDecodeError as exc:
        raise DataValidationError(path, [Problem(None, None, f"not UTF-8 text: {exc}")]) from exc
    if rows == 0:
        raise DataValidationError(path, [Problem(None, None, "file has a header but no data rows")])
    total += labels.count
    problems.extend(labels.problems[: MAX_REPORTED_PROBLEMS - len(problems)])
    if problems:
        raise DataValidationError(path, problems, total)
    logger.info(
        "validated %s against %s: %d rows, %d duplicate ids", path, spec.name, rows, labels.duplicates
    )
    return ValidationSummary(
        path=str(path),
        rows=rows,
        labelled=require_label,
        missing=missing,
        duplicate_rows=labels.duplicates,
        positive_rate=(labels.positives / rows) if require_label else None,
    )
