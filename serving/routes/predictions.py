"""Predictions: one passenger, or a batch (JSON or CSV)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from functools import partial
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Body, Depends, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic_core import to_json
from starlette.responses import Response

from serving import request_ids
from serving.batch_input import (
    MAX_LISTED_ERRORS,
    BatchInvalid,
    passenger_from_json_body,
    passengers_from_csv,
    passengers_from_json_body,
    too_many_unknown_keys,
    unknown_keys,
)
from serving.schemas import (
    EXAMPLE_MINIMAL,
    EXAMPLE_PASSENGER,
    BatchOut,
    BatchValidationError,
    Message,
    PassengerIn,
    PredictionOut,
)
from serving.scoring import Scored, score
from serving.state import (
    CSV_FIELD,
    ServingState,
    StateDep,
    csv_upload,
    media_type,
    require_json,
    require_model,
)

router = APIRouter(tags=["predictions"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": Message,
        "description": "The body cannot be parsed (not UTF-8, JSON nested too deeply, malformed multipart)",
    },
    413: {"model": Message, "description": "Body larger than LIFEBOAT_MAX_BODY_BYTES"},
    415: {"model": Message, "description": "Unsupported Content-Type"},
    503: {"model": Message, "description": "No model loaded on this worker yet (the detail says why)"},
}

_CSV_FIELD = CSV_FIELD


def _json(content: Any, request_id: str) -> Response:
    """Plain results as compact JSON, serialised by pydantic-core in one call, with the request's id header.

    The same bytes FastAPI writes for the ``response_model``, without validating every result object on the
    way out (:func:`serving.scoring.score` checks the probabilities itself).
    """
    return Response(to_json(content), media_type="application/json", headers={request_ids.HEADER: request_id})


async def _predict_one(state: ServingState, passenger: dict[str, Any], request: Request) -> Response:
    """Score one validated passenger (503 without a model), together with the requests of its turn."""
    loaded = require_model(state)
    request_id = request_ids.request_id(request)
    return _json(await state.coalescer.score_one(loaded, passenger, request_id), request_id)


class _FastPassengerRoute(APIRoute):
    """``/predict`` with a fast lane for the common request: a valid passenger sent as ``application/json``.

    Such a body is parsed and validated in one pass (:func:`serving.batch_input.passenger_from_json_body`)
    and scored at once, without FastAPI's JSON decoding, body model and dependency solving (about a third
    of the server's time for one row). Everything else (another Content-Type, a body that pass refuses)
    goes through the route as declared, so errors (415, 422 naming the field) and the OpenAPI description
    are exactly FastAPI's. Both lanes accept the same passengers and answer the same bytes.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler of this route, behind the fast lane."""
        declared = super().get_route_handler()

        async def handler(request: Request) -> Response:
            if request.headers.get("content-type") == "application/json":
                passenger = passenger_from_json_body(await request.body())
                if passenger is not None:
                    return await _predict_one(request.app.state.serving, passenger, request)
            return await declared(request)  # the body read above is cached on the request

        return handler


async def bounded_keys(request: Request) -> None:
    """A passenger with more unknown keys than errors are listed is refused before FastAPI validates it:
    validation would build one error object per key. (FastAPI has parsed the JSON body already; this reads
    its cached copy.)"""
    if (await request.body()).count(b":") <= MAX_LISTED_ERRORS:  # fewer keys than that: nothing to do
        return
    try:
        payload = await request.json()
    except ValueError:  # not JSON: FastAPI's own validation answers it
        return
    if isinstance(payload, dict) and len(extra := unknown_keys(payload, PassengerIn.model_fields)) > (
        MAX_LISTED_ERRORS
    ):
        raise RequestValidationError(too_many_unknown_keys(extra))


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
    request: Request,
) -> Response:
    """The seed's contract: `survived` (0/1), `probability_survive` (3 decimals), `drift_alerts`
    (exactly "No drift detected" when nothing is off), plus `model_version` and `request_id` (also in the
    `X-Request-ID` header: the client's own when valid, else generated)."""
    return await _predict_one(state, passenger.model_dump(), request)


router.add_api_route(
    "/predict",
    predict,
    methods=["POST"],
    response_model=PredictionOut,
    summary="Score one passenger",
    dependencies=[Depends(require_json), Depends(bounded_keys)],
    responses={
        **_ERRORS,
        200: {"headers": request_ids.RESPONSE_HEADERS},
        422: {"description": "Invalid passenger: each error's `loc` names the field"},
    },
    openapi_extra=request_ids.openapi_extra(),
    route_class_override=_FastPassengerRoute,
)


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


async def _batch_reader(
    request: Request, max_rows: int, max_bytes: int
) -> Callable[[], list[dict[str, Any]]]:
    """Read the body (on the event loop) and return what turns it into validated passengers (CPU work)."""
    kind = media_type(request)
    if kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json")):
        return partial(passengers_from_json_body, await request.body(), max_rows)
    if kind in ("text/csv", "application/csv"):
        return partial(passengers_from_csv, await request.body(), max_rows)
    if kind == "multipart/form-data":
        return partial(passengers_from_csv, await csv_upload(request, max_bytes), max_rows)
    raise HTTPException(
        status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
        detail="Content-Type must be application/json, text/csv or multipart/form-data, "
        f"got {kind or 'none'!r}",
    )


def _score_batch(
    read: Callable[[], list[dict[str, Any]]], state: ServingState, request_id: str
) -> tuple[Scored, bytes]:
    """Validate (422), take the model (503), score and serialise: one trip to a worker thread per batch."""
    try:
        passengers = read()
    except BatchInvalid as exc:
        raise exc.detached() from None
    loaded = require_model(state)
    ids = request_ids.row_ids(request_id, len(passengers))
    scored = score(loaded, passengers, state.default.metrics, ids)
    answer = {"model_version": loaded.version, "count": len(scored.results), "predictions": scored.results}
    return scored, to_json(answer)


@router.post(
    "/predict/batch",
    response_model=BatchOut,
    summary="Score a batch of passengers (JSON or CSV)",
    openapi_extra=request_ids.openapi_extra({"requestBody": _BATCH_BODY}),
    responses={
        **_ERRORS,
        200: {"headers": request_ids.RESPONSE_HEADERS},
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
    (index from 0) and field, and no row is scored. The `X-Request-ID` header answers the request's id
    (the client's own when valid, else generated); row `i` (from 0) gets `request_id` `<id>-<i>`.
    """
    settings = state.settings
    request_id = request_ids.request_id(request)
    try:
        read = await _batch_reader(request, settings.max_batch_rows, settings.max_body_bytes)
        scored, answer = await anyio.to_thread.run_sync(
            _score_batch, read, state, request_id, limiter=state.batch_limiter
        )
    except BatchInvalid as exc:
        return JSONResponse(exc.body(), status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
    scored.log_to(state.prediction_log)  # microseconds whatever the size: the log's thread does the work
    return Response(answer, media_type="application/json", headers={request_ids.HEADER: request_id})
