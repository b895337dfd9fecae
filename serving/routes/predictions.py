"""Predictions: one passenger, or a batch (JSON or CSV)."""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Body, Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic_core import to_json
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile
from starlette.responses import Response

from serving.batch_input import BatchInvalid, passengers_from_csv, passengers_from_json_body
from serving.schemas import (
    EXAMPLE_MINIMAL,
    EXAMPLE_PASSENGER,
    BatchOut,
    BatchValidationError,
    Message,
    PassengerIn,
    PredictionOut,
)
from serving.scoring import score, score_passengers
from serving.state import StateDep, media_type, require_json, require_model

router = APIRouter(tags=["predictions"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": Message, "description": "Body larger than LIFEBOAT_MAX_BODY_BYTES"},
    415: {"model": Message, "description": "Unsupported Content-Type"},
    503: {"model": Message, "description": "No model loaded on this worker yet (the detail says why)"},
}

_CSV_FIELD = "file"


def _json(content: Any) -> Response:
    """Plain results as compact JSON, serialised by pydantic-core in one call.

    The same bytes FastAPI writes for the ``response_model``, without validating every result object on the
    way out (:func:`serving.scoring.score_passengers` checks the probabilities itself).
    """
    return Response(to_json(content), media_type="application/json")


@router.post(
    "/predict",
    response_model=PredictionOut,
    summary="Score one passenger",
    dependencies=[Depends(require_json)],
    responses={**_ERRORS, 422: {"description": "Invalid passenger: each error's `loc` names the field"}},
)
async def predict(
    passenger: Annotated[
        PassengerIn,
        Body(
            openapi_examples={
                "first-class woman": {"summary": "All columns", "value": EXAMPLE_PASSENGER},
                "minimal": {"summary": "Only the required columns", "value": EXAMPLE_MINIMAL},
            }
        ),
    ],
    state: StateDep,
) -> Response:
    """The seed's contract: `survived` (0/1), `probability_survive` (3 decimals), `drift_alerts`
    (exactly "No drift detected" when nothing is off), plus `model_version`."""
    loaded = require_model(state)
    (result,) = score_passengers(loaded, [passenger.model_dump()], state.metrics, state.prediction_log)
    return _json(result)


_BATCH_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {  # BatchRequest, referring to the PassengerIn schema that /predict registers
                "type": "object",
                "required": ["passengers"],
                "additionalProperties": False,
                "properties": {
                    "passengers": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"$ref": "#/components/schemas/PassengerIn"},
                        "description": "Passengers to score, in order (at most LIFEBOAT_MAX_BATCH_ROWS).",
                    }
                },
            },
            "example": {"passengers": [EXAMPLE_PASSENGER, EXAMPLE_MINIMAL]},
        },
        "text/csv": {
            "schema": {"type": "string"},
            "example": "PassengerId,Pclass,Name,Sex,Age,SibSp,Parch,Ticket,Fare,Cabin,Embarked\n"
            '892,3,"Kelly, Mr. James",male,34.5,0,0,330911,7.8292,,Q\n',
        },
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": [_CSV_FIELD],
                "properties": {
                    _CSV_FIELD: {
                        "type": "string",
                        "format": "binary",
                        "description": "A passenger CSV (Kaggle test.csv columns)",
                    }
                },
            },
        },
    },
}


async def _read_passengers(request: Request, max_rows: int, max_bytes: int) -> list[dict[str, Any]]:
    kind = media_type(request)
    if kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json")):
        body = await request.body()
        return await anyio.to_thread.run_sync(passengers_from_json_body, body, max_rows)
    if kind in ("text/csv", "application/csv"):
        data = await request.body()
        return await anyio.to_thread.run_sync(passengers_from_csv, data, max_rows)
    if kind == "multipart/form-data":
        async with request.form(max_files=1, max_fields=10, max_part_size=max_bytes) as form:
            upload = form.get(_CSV_FIELD)
            if not isinstance(upload, UploadFile):
                raise HTTPException(
                    status.HTTP_422_UNPROCESSABLE_CONTENT,
                    detail=f"a multipart batch needs the CSV as a file field named {_CSV_FIELD!r}",
                )
            data = await upload.read()
        return await anyio.to_thread.run_sync(passengers_from_csv, data, max_rows)
    raise HTTPException(
        status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
        detail="Content-Type must be application/json, text/csv or multipart/form-data, "
        f"got {kind or 'none'!r}",
    )


@router.post(
    "/predict/batch",
    response_model=BatchOut,
    summary="Score a batch of passengers (JSON or CSV)",
    openapi_extra={"requestBody": _BATCH_BODY},
    responses={
        **_ERRORS,
        422: {
            "model": BatchValidationError,
            "description": "Some rows are invalid: every bad row index and field is listed, "
            "nothing was scored",
        },
    },
)
async def predict_batch(request: Request, state: StateDep) -> Any:
    """Score up to `LIFEBOAT_MAX_BATCH_ROWS` passengers; results are in request order.

    Accepted bodies: JSON `{"passengers": [...]}`, a CSV as `text/csv`, or a CSV uploaded as the multipart
    file field `file`. The batch is all or nothing: any invalid row gives a 422 listing every invalid row
    (index from 0) and field, and no row is scored.
    """
    settings = state.settings
    try:
        passengers = await _read_passengers(request, settings.max_batch_rows, settings.max_body_bytes)
    except BatchInvalid as exc:
        return JSONResponse(exc.body(), status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
    loaded = require_model(state)
    scored = await anyio.to_thread.run_sync(score, loaded, passengers, state.metrics)
    response = _json(
        {"model_version": loaded.version, "count": len(scored.results), "predictions": scored.results}
    )
    # Queuing a big batch on the prediction log takes milliseconds: done once the answer is sent.
    response.background = BackgroundTask(scored.log_to, state.prediction_log)
    return response
