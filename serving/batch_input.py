"""Turn a batch request (JSON or CSV) into validated passengers, or into per-row errors.

Policy: a batch is all or nothing. If any row is invalid the answer is 422 listing every bad row index and
field (up to :data:`MAX_LISTED_ERRORS`), and nothing is scored — a 200 always means every row was scored, in
order, and clients never have to merge partial results.

CSV: a header row with the raw column names (Kaggle's test.csv as is); empty cells are missing values. Cells
are converted by the schema's column kinds before the same strict validation as JSON, so ``abc`` in Age is
reported as "Input should be a valid number" for that row and field, and ``nan``/``inf`` are refused.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from lifeboat.dataset.schema import BY_NAME, COLUMN_NAMES, COLUMNS
from serving.schemas import (
    BatchRequest,
    PassengerIn,
    api_optional,
    batch_rows_adapter,
    passenger_row_adapter,
)

MAX_LISTED_ERRORS = 100
_INT = re.compile(r"[+-]?\d+")
#: Every column missing: a validated row is laid over it, so that each passenger dict has all the columns.
_ALL_MISSING: dict[str, Any] = dict.fromkeys(COLUMN_NAMES)


@dataclass(frozen=True)
class BatchProblem:
    """One invalid field (or a whole-request problem when ``row`` and ``field`` are None)."""

    row: int | None
    field: str | None
    msg: str
    type: str
    loc: tuple[str | int, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON form (see ``serving.schemas.RowError``)."""
        return {
            "row": self.row,
            "field": self.field,
            "msg": self.msg,
            "type": self.type,
            "loc": list(self.loc),
        }


class BatchInvalid(ValueError):  # noqa: N818 (reads as the condition)
    """The batch cannot be scored; carries every problem found."""

    def __init__(self, summary: str, problems: Sequence[BatchProblem]) -> None:
        super().__init__(summary)
        self.summary = summary
        self.problems = list(problems)

    def body(self) -> dict[str, Any]:
        """The 422 response body."""
        rows = sorted({p.row for p in self.problems if p.row is not None})
        return {
            "detail": self.summary,
            "invalid_rows": rows,
            "error_count": len(self.problems),
            "errors": [p.as_dict() for p in self.problems[:MAX_LISTED_ERRORS]],
        }


def _check_size(count: int, max_rows: int) -> None:
    if count == 0:
        raise BatchInvalid(
            "the batch has no passengers",
            [BatchProblem(None, None, "at least one passenger is required", "too_short", ("body",))],
        )
    if count > max_rows:
        raise BatchInvalid(
            f"the batch has {count} passengers; the maximum is {max_rows}",
            [BatchProblem(None, None, f"at most {max_rows} passengers per batch", "too_long", ("body",))],
        )


def _summary(problems: list[BatchProblem], total: int) -> str:
    rows = {p.row for p in problems if p.row is not None}
    return f"{len(rows)} of {total} passenger(s) are invalid; nothing was scored"


def passengers_from_json(payload: Any, max_rows: int) -> list[dict[str, Any]]:
    """Validate ``{"passengers": [...]}``; return plain dicts (all columns, None where missing)."""
    if not isinstance(payload, dict):
        raise BatchInvalid(
            'the body must be a JSON object {"passengers": [...]}',
            [
                BatchProblem(
                    None, None, 'expected a JSON object with the key "passengers"', "model_type", ("body",)
                )
            ],
        )
    rows = payload.get("passengers")
    if isinstance(rows, list):
        _check_size(len(rows), max_rows)
    try:
        batch = BatchRequest.model_validate(payload)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            loc = tuple(error["loc"])
            if loc[:1] == ("passengers",) and len(loc) >= 2 and isinstance(loc[1], int):
                field = str(loc[2]) if len(loc) > 2 else None
                problems.append(BatchProblem(loc[1], field, error["msg"], error["type"], ("body", *loc)))
            else:
                problems.append(
                    BatchProblem(
                        None, str(loc[0]) if loc else None, error["msg"], error["type"], ("body", *loc)
                    )
                )
        total = len(rows) if isinstance(rows, list) else 0
        if any(p.row is None for p in problems):
            fields = ", ".join(sorted({p.field for p in problems if p.row is None and p.field}))
            summary = f"the batch is malformed ({fields}); nothing was scored"
        else:
            summary = _summary(problems, total)
        raise BatchInvalid(summary, problems) from exc
    return [p.model_dump() for p in batch.passengers]


def passengers_from_json_body(body: bytes, max_rows: int) -> list[dict[str, Any]]:
    """Parse and validate a JSON batch body: the result of ``passengers_from_json(json_or_invalid(body))``.

    A valid batch is parsed and validated in one pass (:func:`serving.schemas.batch_rows_adapter`, no model
    object per row). Anything that pass refuses, and a batch with too many rows, goes through the
    reference path (:func:`json_or_invalid`, then :func:`passengers_from_json`), so an invalid batch gets
    exactly the same 422 as ever; both paths accept the same batches and return the same dicts.
    """
    try:
        rows: list[dict[str, Any]] = batch_rows_adapter().validate_json(body)["passengers"]
    except ValidationError:
        return passengers_from_json(json_or_invalid(body), max_rows)
    if len(rows) > max_rows:
        return passengers_from_json(json_or_invalid(body), max_rows)
    return [{**_ALL_MISSING, **row} for row in rows]


def passenger_from_json_body(body: bytes) -> dict[str, Any] | None:
    """One valid JSON passenger, parsed and validated in one pass: a plain dict with every column.

    None when that pass refuses the body: the caller then validates it the reference way
    (``PassengerIn``, which names what is wrong). For an accepted body the dict equals
    ``PassengerIn.model_validate(json.loads(body)).model_dump()``.
    """
    try:
        row: dict[str, Any] = passenger_row_adapter().validate_json(body)
    except ValueError:  # pydantic's ValidationError among others: whatever it refuses, the caller judges
        return None
    return {**_ALL_MISSING, **row}


def _convert(column: str, raw: str) -> Any:
    """A CSV cell as the JSON value it stands for; unconvertible text is kept for validation to report."""
    spec = BY_NAME[column]
    if spec.kind == "str":
        return raw
    try:
        if spec.kind == "int" and _INT.fullmatch(raw):
            return int(raw)
        number = float(raw)
    except ValueError:
        return raw
    if not math.isfinite(number):
        return raw
    if spec.kind == "int":
        return int(number) if number.is_integer() else raw
    return number


def passengers_from_csv(data: bytes, max_rows: int) -> list[dict[str, Any]]:
    """Parse and validate a passenger CSV (header + rows); return plain dicts in file order."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BatchInvalid(
            "the CSV is not UTF-8 text", [BatchProblem(None, None, str(exc), "csv_encoding", ("body",))]
        ) from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
        lines = [line for line in reader if any(cell.strip() for cell in line)]
    except StopIteration:
        raise BatchInvalid(
            "the CSV is empty", [BatchProblem(None, None, "a header row is required", "csv_empty", ("body",))]
        ) from None
    except csv.Error as exc:
        raise BatchInvalid(
            "the CSV cannot be parsed", [BatchProblem(None, None, str(exc), "csv_syntax", ("body",))]
        ) from exc
    known = {c.name for c in COLUMNS}
    problems = [
        BatchProblem(
            None,
            h,
            f"unknown column {h!r}; expected the columns of Kaggle's test.csv",
            "extra_forbidden",
            ("body", "header", h),
        )
        for h in header
        if h not in known
    ]
    problems += [
        BatchProblem(
            None, c.name, "required column is missing from the header", "missing", ("body", "header", c.name)
        )
        for c in COLUMNS
        if not api_optional(c) and c.name not in header
    ]
    if len(set(header)) != len(header):
        problems.append(
            BatchProblem(None, None, "a column appears twice in the header", "csv_header", ("body", "header"))
        )
    if problems:
        raise BatchInvalid("the CSV header is invalid; nothing was scored", problems)
    _check_size(len(lines), max_rows)
    validated: list[dict[str, Any]] = []
    for index, line in enumerate(lines):
        if len(line) != len(header):
            problems.append(
                BatchProblem(
                    index,
                    None,
                    f"the row has {len(line)} cells, the header {len(header)}",
                    "csv_row_length",
                    ("body", index),
                )
            )
            continue
        row = {
            h: _convert(h, cell.strip()) for h, cell in zip(header, line, strict=True) if cell.strip() != ""
        }
        try:
            validated.append(PassengerIn.model_validate(row).model_dump())
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                loc = tuple(error["loc"])
                field = str(loc[0]) if loc else None
                problems.append(
                    BatchProblem(index, field, error["msg"], error["type"], ("body", index, *loc))
                )
    if problems:
        raise BatchInvalid(_summary(problems, len(lines)), problems)
    return validated


def json_or_invalid(body: bytes) -> Any:
    """Parse a JSON body; a syntax error is a 422 naming the position."""
    if not body.strip():
        raise BatchInvalid(
            "the request body is empty",
            [BatchProblem(None, None, "a JSON body is required", "missing", ("body",))],
        )
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise BatchInvalid(
            "the body is not valid JSON", [BatchProblem(None, None, str(exc), "json_invalid", ("body",))]
        ) from exc
