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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

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


def _check_size(count: int, max_rows: int, noun: str = "passenger") -> None:
    if count == 0:
        raise BatchInvalid(
            f"the batch has no {noun}s",
            [BatchProblem(None, None, f"at least one {noun} is required", "too_short", ("body",))],
        )
    if count > max_rows:
        raise BatchInvalid(
            f"the batch has {count} {noun}s; the maximum is {max_rows}",
            [BatchProblem(None, None, f"at most {max_rows} {noun}s per batch", "too_long", ("body",))],
        )


def _summary(problems: list[BatchProblem], total: int, noun: str = "passenger") -> str:
    rows = {p.row for p in problems if p.row is not None}
    return f"{len(rows)} of {total} {noun}(s) are invalid; nothing was scored"


def passengers_from_json(payload: Any, max_rows: int) -> list[dict[str, Any]]:
    """Validate ``{"passengers": [...]}``; return plain dicts (all columns, None where missing)."""
    batch = _validate_json_batch(payload, max_rows, "passengers", BatchRequest, "passenger")
    return [p.model_dump() for p in batch.passengers]


def records_from_json(payload: Any, max_rows: int, record_model: type[BaseModel]) -> list[dict[str, Any]]:
    """Validate ``{"records": [...]}`` against a dataset's record model; return plain dicts (all columns)."""
    batch_model = _records_batch_model(record_model)
    batch = _validate_json_batch(payload, max_rows, "records", batch_model, "record")
    return [r.model_dump() for r in batch.records]


_BATCH_MODELS: dict[type[BaseModel], type[BaseModel]] = {}


def _records_batch_model(record_model: type[BaseModel]) -> type[BaseModel]:
    batch = _BATCH_MODELS.get(record_model)
    if batch is None:
        batch = create_model(
            f"{record_model.__name__}Batch",
            __config__=ConfigDict(extra="forbid", strict=True),
            records=(list[record_model], Field(..., min_length=1)),  # type: ignore[valid-type]
        )
        if len(_BATCH_MODELS) > 64:  # one per served model version: bounded all the same
            _BATCH_MODELS.clear()
        _BATCH_MODELS[record_model] = batch
    return batch


def _validate_json_batch(payload: Any, max_rows: int, key: str, model: type[BaseModel], noun: str) -> Any:
    if not isinstance(payload, dict):
        raise BatchInvalid(
            f'the body must be a JSON object {{"{key}": [...]}}',
            [
                BatchProblem(
                    None, None, f'expected a JSON object with the key "{key}"', "model_type", ("body",)
                )
            ],
        )
    rows = payload.get(key)
    if isinstance(rows, list):
        _check_size(len(rows), max_rows, noun)
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            loc = tuple(error["loc"])
            if loc[:1] == (key,) and len(loc) >= 2 and isinstance(loc[1], int):
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
            summary = _summary(problems, total, noun)
        raise BatchInvalid(summary, problems) from exc


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


def _convert(kind: str, raw: str) -> Any:
    """A CSV cell as the JSON value it stands for (``kind``: str, int, float or bool); unconvertible text is
    kept for validation to report."""
    if kind == "str":
        return raw
    if kind == "bool":
        return _BOOLEANS.get(raw.lower(), raw)
    try:
        if kind == "int" and _INT.fullmatch(raw):
            return int(raw)
        number = float(raw)
    except ValueError:
        return raw
    if not math.isfinite(number):
        return raw
    if kind == "int":
        return int(number) if number.is_integer() else raw
    return number


_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}


def passengers_from_csv(data: bytes, max_rows: int) -> list[dict[str, Any]]:
    """Parse and validate a passenger CSV (header + rows); return plain dicts in file order."""
    return rows_from_csv(
        data,
        max_rows,
        kinds={name: spec.kind for name, spec in BY_NAME.items()},
        known=[c.name for c in COLUMNS],
        required=[c.name for c in COLUMNS if not api_optional(c)],
        validate=lambda row: PassengerIn.model_validate(row).model_dump(),
        expected="the columns of Kaggle's test.csv",
        noun="passenger",
    )


def rows_from_csv(
    data: bytes,
    max_rows: int,
    kinds: Mapping[str, str],
    known: Sequence[str],
    required: Sequence[str],
    validate: Callable[[dict[str, Any]], dict[str, Any]],
    expected: str,
    noun: str = "record",
) -> list[dict[str, Any]]:
    """Parse a CSV (header + rows), convert each cell by its column's kind and ``validate`` each row (it
    raises pydantic's ``ValidationError``); return the validated rows in file order, or raise
    :class:`BatchInvalid` listing every problem."""
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
    known_set = set(known)
    problems = [
        BatchProblem(
            None, h, f"unknown column {h!r}; expected {expected}", "extra_forbidden", ("body", "header", h)
        )
        for h in header
        if h not in known_set
    ]
    problems += [
        BatchProblem(
            None, name, "required column is missing from the header", "missing", ("body", "header", name)
        )
        for name in required
        if name not in header
    ]
    if len(set(header)) != len(header):
        problems.append(
            BatchProblem(None, None, "a column appears twice in the header", "csv_header", ("body", "header"))
        )
    if problems:
        raise BatchInvalid("the CSV header is invalid; nothing was scored", problems)
    _check_size(len(lines), max_rows, noun)
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
            h: _convert(kinds.get(h, "str"), cell.strip())
            for h, cell in zip(header, line, strict=True)
            if cell.strip() != ""
        }
        try:
            validated.append(validate(row))
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                loc = tuple(error["loc"])
                field = str(loc[0]) if loc else None
                problems.append(
                    BatchProblem(index, field, error["msg"], error["type"], ("body", index, *loc))
                )
    if problems:
        raise BatchInvalid(_summary(problems, len(lines), noun), problems)
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
