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
from collections.abc import Callable, Collection, Mapping, Sequence
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

    def __init__(
        self,
        summary: str,
        problems: Sequence[BatchProblem],
        error_count: int | None = None,
        invalid_rows: Sequence[int] | None = None,
    ) -> None:
        super().__init__(summary)
        self.summary = summary
        self.problems = list(problems)
        #: Every problem found, when more were found than listed (collection stops at the listed maximum).
        self.error_count = len(self.problems) if error_count is None else error_count
        self.invalid_rows = (
            sorted(set(invalid_rows))
            if invalid_rows is not None
            else sorted({p.row for p in self.problems if p.row is not None})
        )

    def detached(self) -> BatchInvalid:
        """This error without its traceback and the errors it was raised from.

        Their frames hold the parsed body (tens of MB for a hostile one), and a worker thread or an event
        loop may keep the last exception alive for a while: the answer needs only the problems.
        """
        self.__traceback__ = None
        self.__context__ = None
        self.__cause__ = None
        return self

    def body(self) -> dict[str, Any]:
        """The 422 response body."""
        return {
            "detail": self.summary,
            "invalid_rows": self.invalid_rows,
            "error_count": self.error_count,
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
        _refuse_many_unknown_keys(payload, key, rows, model.model_fields[key].annotation, noun)
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


def unknown_keys(record: Mapping[str, Any], allowed: Collection[str]) -> list[str]:
    """The keys of ``record`` that are not ``allowed`` (cheap for the usual record: no extra key)."""
    if len(record) <= len(allowed) and all(k in allowed for k in record):
        return []
    return [k for k in record if k not in allowed]


def too_many_unknown_keys(extra: Sequence[str]) -> list[dict[str, Any]]:
    """FastAPI-style errors for a record with more unknown keys than are listed: the first ones, then a
    line counting the rest (:data:`MAX_LISTED_ERRORS` entries in all)."""
    shown = MAX_LISTED_ERRORS - 1
    listed: list[dict[str, Any]] = [
        {"type": "extra_forbidden", "loc": ("body", key), "msg": "Extra inputs are not permitted"}
        for key in extra[:shown]
    ]
    listed.append(
        {
            "type": "too_many_errors",
            "loc": ("body",),
            "msg": f"{len(extra)} unknown keys in all; {len(extra) - shown} more are not listed",
        }
    )
    return listed


def _row_fields(annotation: Any) -> Collection[str]:
    """The field names of the row model of a batch model's ``list[Row]`` field."""
    (row_model,) = getattr(annotation, "__args__", (None,))
    fields: Collection[str] = getattr(row_model, "model_fields", {}).keys()
    return fields


def _refuse_many_unknown_keys(
    payload: Mapping[str, Any], key: str, rows: list[Any], annotation: Any, noun: str
) -> None:
    """More unknown keys than errors are listed: refuse with the first ones listed, before validation would
    build one error object per key (a 2 MB row of unknown keys would be some 150,000 of them)."""
    allowed = _row_fields(annotation)
    found: list[tuple[int | None, str]] = [(None, k) for k in unknown_keys(payload, (key,))]
    total = len(found)
    invalid: list[int] = []
    for index, row in enumerate(rows):
        if isinstance(row, dict) and (extra := unknown_keys(row, allowed)):
            total += len(extra)
            invalid.append(index)
            found += [(index, k) for k in extra[: max(MAX_LISTED_ERRORS - len(found), 0)]]
    if total <= MAX_LISTED_ERRORS:
        return  # validation lists them all, as it always has
    problems = [
        BatchProblem(row, field, "Extra inputs are not permitted", "extra_forbidden", ("body", field))
        if row is None
        else BatchProblem(
            row, field, "Extra inputs are not permitted", "extra_forbidden", ("body", key, row, field)
        )
        for row, field in found[:MAX_LISTED_ERRORS]
    ]
    raise BatchInvalid(
        f"the batch has {total} unknown keys ({len(invalid)} {noun}(s) have some); nothing was scored",
        problems,
        total,
        invalid_rows=invalid,
    )


def passengers_from_json_body(body: bytes, max_rows: int) -> list[dict[str, Any]]:
    """Parse and validate a JSON batch body: the result of ``passengers_from_json(json_or_invalid(body))``.

    A valid batch is parsed and validated in one pass (:func:`serving.schemas.batch_rows_adapter`, no model
    object per row). Anything that pass refuses, and a batch with too many rows, goes through the
    reference path (:func:`json_or_invalid`, then :func:`passengers_from_json`), so an invalid batch gets
    exactly the same 422 as ever; both paths accept the same batches and return the same dicts.
    """
    if body.count(b":") > max_rows * len(COLUMN_NAMES) + 1:  # more keys than a valid batch can have
        # pydantic's one-pass parse would build one error per unknown key (tens of MB for a 2 MB body of
        # them); the reference path refuses such a body with a bounded list.
        return passengers_from_json(json_or_invalid(body), max_rows)
    try:
        batch: dict[str, Any] = batch_rows_adapter().validate_json(body)
    except ValidationError:
        return passengers_from_json(json_or_invalid(body), max_rows)
    rows: list[dict[str, Any]] = batch["passengers"]
    if len(rows) > max_rows:
        del batch, rows  # freed before the body is parsed again: one copy in memory at a time
        return passengers_from_json(json_or_invalid(body), max_rows)
    return [{**_ALL_MISSING, **row} for row in rows]


def passenger_from_json_body(body: bytes) -> dict[str, Any] | None:
    """One valid JSON passenger, parsed and validated in one pass: a plain dict with every column.

    None when that pass refuses the body: the caller then validates it the reference way
    (``PassengerIn``, which names what is wrong). For an accepted body the dict equals
    ``PassengerIn.model_validate(json.loads(body)).model_dump()``.
    """
    if body.count(b":") > 4 * len(COLUMN_NAMES):  # far more keys than columns: the caller's validation
        return None
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


#: Header cells beyond the known columns that are still named one by one; a wider header is refused whole.
HEADER_SLACK = 16


def _check_header_width(text: str, known: int, expected: str) -> None:
    """Refuse a header line with far more cells than there are columns, before the CSV reader splits it: a
    2 MB line of commas would otherwise become a million cells and as many errors."""
    first_line = text[: text.find("\n")] if "\n" in text else text
    cells = first_line.count(",") + 1  # an upper bound: a quoted name may hold commas
    if cells > known + HEADER_SLACK:
        raise BatchInvalid(
            f"the CSV header has {cells} columns; expected {expected} ({known} columns); nothing was scored",
            [
                BatchProblem(
                    None,
                    None,
                    f"the header has {cells} cells, more than the {known} known columns + {HEADER_SLACK}",
                    "csv_header_too_wide",
                    ("body", "header"),
                )
            ],
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
    _check_header_width(text, len(known), expected)
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
    unknown = [h for h in header if h not in known_set]
    problems = [
        BatchProblem(
            None, h, f"unknown column {h!r}; expected {expected}", "extra_forbidden", ("body", "header", h)
        )
        for h in unknown[:MAX_LISTED_ERRORS]
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
        raise BatchInvalid(
            "the CSV header is invalid; nothing was scored",
            problems,
            len(problems) + len(unknown) - min(len(unknown), MAX_LISTED_ERRORS),
        )
    _check_size(len(lines), max_rows, noun)
    validated: list[dict[str, Any]] = []
    count = 0  # every problem found; only the first MAX_LISTED_ERRORS become objects
    invalid: list[int] = []
    for index, line in enumerate(lines):
        if len(line) != len(header):
            count += 1
            invalid.append(index)
            if len(problems) < MAX_LISTED_ERRORS:
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
            count += exc.error_count()
            invalid.append(index)
            room = MAX_LISTED_ERRORS - len(problems)
            for error in exc.errors(include_url=False)[: max(room, 0)]:
                loc = tuple(error["loc"])
                field = str(loc[0]) if loc else None
                problems.append(
                    BatchProblem(index, field, error["msg"], error["type"], ("body", index, *loc))
                )
    if invalid:
        summary = f"{len(invalid)} of {len(lines)} {noun}(s) are invalid; nothing was scored"
        raise BatchInvalid(summary, problems, count, invalid_rows=invalid)
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
