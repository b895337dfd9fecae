"""Predictions of any hosted dataset: ``/v1/datasets/{dataset}/predict`` and ``.../predict/batch``.

Records are validated against the served model's own spec (:mod:`serving.spec_schemas`): a 422 names the
field (single record: FastAPI's format, ``loc`` = ``["body", field]``; batch: every invalid row and field,
nothing scored). Answers use the spec's ``response`` names::

    {"model_version": "3", "count": 1,
     "predictions": [{"<prediction>": 1, "<probability>": 0.834, "drift_alerts": "...",
                      "model_version": "3", "request_id": "..."}]}

Request ids (:mod:`serving.request_ids`): the ``X-Request-ID`` header answers the request's id; the one
record of ``/predict`` has that id, row ``i`` of a batch ``<id>-<i>``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from pydantic_core import to_json
from starlette.responses import Response

from serving import request_ids
from serving.batch_input import (
    MAX_LISTED_ERRORS,
    BatchInvalid,
    json_or_invalid,
    records_from_json,
    rows_from_csv,
    too_many_unknown_keys,
    unknown_keys,
)
from serving.datasets import DatasetServing, answering_of
from serving.model_holder import LoadedModel
from serving.schemas import BatchValidationError, Message
from serving.scoring import score
from serving.spec_schemas import RequestSchema, csv_kind, is_optional
from serving.state import (
    CSV_FIELD,
    StateDep,
    csv_upload,
    media_type,
    require_dataset,
    require_json,
    require_model,
)

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Message, "description": "The body cannot be parsed (not UTF-8, malformed multipart)"},
    404: {"model": Message, "description": "Unknown dataset: the detail names the hosted ones"},
    413: {"model": Message, "description": "Body larger than LIFEBOAT_MAX_BODY_BYTES"},
    415: {"model": Message, "description": "Unsupported Content-Type"},
    503: {"model": Message, "description": "The dataset has no model loaded on this worker (detail: why)"},
}


def _answer(model_version: str, results: list[dict[str, Any]], request_id: str) -> Response:
    body = {"model_version": model_version, "count": len(results), "predictions": results}
    return Response(to_json(body), media_type="application/json", headers={request_ids.HEADER: request_id})


def _record(schema: RequestSchema, body: bytes) -> dict[str, Any]:
    """One JSON record validated by the schema; a 422 in FastAPI's format (``loc`` names the field)."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": f"JSON decode error: {exc}"}]
        ) from exc
    if isinstance(payload, dict) and len(extra := unknown_keys(payload, schema.record_model.model_fields)) > (
        MAX_LISTED_ERRORS
    ):  # refused before validation would build one error object per unknown key
        raise RequestValidationError(too_many_unknown_keys(extra))
    try:
        return schema.validate(payload)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from exc


@router.post(
    "/{dataset}/predict",
    summary="Score one record of a dataset",
    responses={
        **_ERRORS,
        200: {
            "description": "`{model_version, count: 1, predictions: [one result]}`; the result's "
            "`request_id` is the request's id (`X-Request-ID`)",
            "headers": request_ids.RESPONSE_HEADERS,
        },
        422: {"description": "Invalid record: each error's `loc` names the field"},
    },
    openapi_extra=request_ids.openapi_extra(
        {
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
                "description": "One raw record: the spec's input columns (see GET /v2/models/{dataset})",
            }
        }
    ),
)
async def predict_record(dataset: str, request: Request, state: StateDep) -> Response:
    """Score one record with the dataset's champion; the answer has the batch shape (count 1)."""
    served = require_dataset(state, dataset)
    await require_json(request)
    loaded = require_model(served)
    record = _record(loaded.schema, await request.body())
    request_id = request_ids.request_id(request)
    result = await served.coalescer.score_one(loaded, record, request_id)
    return _answer(loaded.version, [result], request_id)


async def _records_reader(
    request: Request, schema: RequestSchema, max_rows: int, max_bytes: int
) -> Callable[[], list[dict[str, Any]]]:
    """Read the body (event loop) and return what validates it into records (CPU work, worker thread)."""
    kind = media_type(request)
    if kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json")):
        body = await request.body()
        return lambda: records_from_json(json_or_invalid(body), max_rows, schema.record_model)
    if kind in ("text/csv", "application/csv"):
        return partial(_records_from_csv, schema, await request.body(), max_rows)
    if kind == "multipart/form-data":
        return partial(_records_from_csv, schema, await csv_upload(request, max_bytes), max_rows)
    raise HTTPException(
        status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
        detail="Content-Type must be application/json, text/csv or multipart/form-data, "
        f"got {kind or 'none'!r}",
    )


def _records_from_csv(schema: RequestSchema, data: bytes, max_rows: int) -> list[dict[str, Any]]:
    return rows_from_csv(
        data,
        max_rows,
        kinds={c.name: csv_kind(c) for c in schema.columns},
        known=schema.column_names,
        required=[c.name for c in schema.columns if not is_optional(c)],
        validate=schema.validate,
        expected=f"the input columns of dataset {schema.dataset!r}",
    )


def _score_records(
    read: Callable[[], list[dict[str, Any]]], served: DatasetServing, loaded: LoadedModel, request_id: str
) -> tuple[Any, bytes]:
    try:
        records = read()
    except BatchInvalid as exc:  # its frames hold the parsed body: the answer needs only the problems
        raise exc.detached() from None
    ids = request_ids.row_ids(request_id, len(records))
    scored = score(loaded, records, served.metrics, ids, answering_of(loaded))
    body = {"model_version": loaded.version, "count": len(scored.results), "predictions": scored.results}
    return scored, to_json(body)


@router.post(
    "/{dataset}/predict/batch",
    summary="Score a batch of records of a dataset (JSON or CSV)",
    responses={
        **_ERRORS,
        200: {
            "description": "`{model_version, count, predictions: [...]}` in request order; row `i` "
            "(from 0) has `request_id` `<id>-<i>`, `<id>` being the request's (`X-Request-ID`)",
            "headers": request_ids.RESPONSE_HEADERS,
        },
        422: {
            "model": BatchValidationError,
            "description": "Some rows are invalid: every bad row index and field is listed, nothing scored",
        },
    },
    openapi_extra=request_ids.openapi_extra(
        {
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["records"],
                            "properties": {"records": {"type": "array", "items": {"type": "object"}}},
                        }
                    },
                    "text/csv": {"schema": {"type": "string"}},
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {CSV_FIELD: {"type": "string", "format": "binary"}},
                        }
                    },
                },
            }
        }
    ),
)
async def predict_records(dataset: str, request: Request, state: StateDep) -> Response:
    """Score up to `LIFEBOAT_MAX_BATCH_ROWS` records: JSON `{"records": [...]}`, a CSV as `text/csv`, or a
    CSV uploaded as the multipart file field `file`. All or nothing, like `/predict/batch`."""
    served = require_dataset(state, dataset)
    loaded = require_model(served)
    settings = state.settings
    request_id = request_ids.request_id(request)
    try:
        read = await _records_reader(request, loaded.schema, settings.max_batch_rows, settings.max_body_bytes)
        scored, body = await anyio.to_thread.run_sync(
            _score_records, read, served, loaded, request_id, limiter=state.batch_limiter
        )
    except BatchInvalid as exc:
        return JSONResponse(exc.body(), status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
    scored.log_to(served.prediction_log)
    return Response(body, media_type="application/json", headers={request_ids.HEADER: request_id})
