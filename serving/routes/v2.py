"""The Open Inference Protocol (KServe v2 REST; Triton, MLServer, Seldon speak it): a model per dataset.

* ``GET /v2/health/live`` — 200 ``{"live": true}`` while the process answers;
* ``GET /v2/health/ready`` — 200 ``{"ready": true}`` when every hosted dataset has a model, else 503;
* ``GET /v2/models/{dataset}`` — metadata: name, versions, platform, inputs (one tensor per raw column,
  datatype from the column type, shape ``[-1]``) and outputs (prediction INT64, probability FP64, drift
  alerts BYTES);
* ``GET /v2/models/{dataset}/ready`` — 200 ``{"name", "ready": true}`` or 503;
* ``POST /v2/models/{dataset}/infer`` (and ``/versions/{version}/...``) — columns as tensors, as MLServer's
  pandas codec sends a DataFrame: ``{"inputs": [{"name": "Age", "shape": [N], "datatype": "FP64",
  "data": [...]}, ...]}``; ``null`` marks a missing value of an optional column.

The answer's ``id`` is the request's: its ``id`` echoed (a non-empty string), else a valid ``X-Request-ID``
header, else a generated one (UUIDv7 hex); the ``X-Request-ID`` response header repeats it when it is a
valid id (:mod:`serving.request_ids`). Row ``i`` (from 0) is logged with the id ``<id>-<i>``.

Errors are ``{"error": "..."}``: 400 for a bad request (unknown input, wrong datatype or shape, invalid
value: the message names the input and row), 404 for an unknown model or version, 503 when the model is
not loaded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from pydantic_core import to_json
from starlette.responses import Response

from serving import request_ids
from serving.datasets import DatasetServing, answering_of
from serving.model_holder import LoadedModel
from serving.scoring import Scored, score
from serving.spec_schemas import OIP_DATATYPES, RequestSchema
from serving.state import ServingState, StateDep, UnknownDataset

router = APIRouter(prefix="/v2", tags=["open inference protocol"])

PLATFORM = "onnxruntime_onnx"
DRIFT_OUTPUT = "drift_alerts"
#: Requests of at most this many rows are scored on the event loop (cheaper than a thread round trip).
_INLINE_ROWS = 16
_INTEGERS = frozenset({"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"})
_FLOATS = frozenset({"FP16", "FP32", "FP64"})
#: Datatypes a client may send for each column type (a number column takes integers too).
_ACCEPTED: dict[str, frozenset[str]] = {
    "integer": _INTEGERS,
    "numeric": _FLOATS | _INTEGERS,
    "boolean": frozenset({"BOOL"}),
    "categorical": frozenset({"BYTES"}),
    "text": frozenset({"BYTES"}),
}


class InferenceError(ValueError):
    """A request the protocol answers with ``{"error": ...}`` and this status."""

    def __init__(self, message: str, status_code: int = status.HTTP_400_BAD_REQUEST) -> None:
        super().__init__(message)
        self.status_code = status_code


def _error(exc: InferenceError | UnknownDataset) -> JSONResponse:
    code = exc.status_code if isinstance(exc, InferenceError) else status.HTTP_404_NOT_FOUND
    return JSONResponse({"error": str(exc)}, status_code=code)


def _served(
    state: ServingState, dataset: str, version: str | None = None
) -> tuple[DatasetServing, LoadedModel]:
    served = state.dataset(dataset)
    loaded = served.holder.current()
    if loaded is None:
        raise InferenceError(
            f"model {dataset!r} is not ready: {served.sync.not_ready_reason()}",
            status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    if version is not None and version != loaded.version:
        raise InferenceError(
            f"model {dataset!r} has no version {version!r} here; it serves version {loaded.version}",
            status.HTTP_404_NOT_FOUND,
        )
    return served, loaded


@router.get("/health/live", summary="Server live (Open Inference Protocol)")
async def server_live() -> dict[str, bool]:
    """200 while the process answers."""
    return {"live": True}


@router.get("/health/ready", summary="Server ready: every hosted model is loaded")
async def server_ready(state: StateDep) -> JSONResponse:
    """200 when every hosted dataset has a model on this worker, else 503 (``not_ready`` lists them)."""
    missing = [name for name, d in state.datasets.items() if d.holder.version is None]
    body: dict[str, Any] = {"ready": not missing}
    if missing:
        body["not_ready"] = missing
    return JSONResponse(body, status_code=status.HTTP_503_SERVICE_UNAVAILABLE if missing else 200)


def metadata(dataset: str, loaded: LoadedModel) -> dict[str, Any]:
    """The protocol's model metadata of one served model."""
    schema = loaded.schema
    return {
        "name": dataset,
        "versions": [loaded.version],
        "platform": PLATFORM,
        "inputs": [
            {"name": c.name, "datatype": OIP_DATATYPES[c.type], "shape": [-1]} for c in schema.columns
        ],
        "outputs": [
            {"name": schema.response.prediction, "datatype": "INT64", "shape": [-1]},
            {"name": schema.response.probability, "datatype": "FP64", "shape": [-1]},
            {"name": DRIFT_OUTPUT, "datatype": "BYTES", "shape": [-1]},
        ],
    }


@router.get("/models/{dataset}", summary="Model metadata (Open Inference Protocol)")
async def model_metadata(dataset: str, state: StateDep) -> JSONResponse:
    """Name, versions, platform and the input/output tensors of the dataset's served model."""
    return await model_version_metadata(dataset, None, state)


@router.get("/models/{dataset}/versions/{version}", summary="Model metadata of one version")
async def model_version_metadata(dataset: str, version: str | None, state: StateDep) -> JSONResponse:
    """The metadata of the served model when it is this version, else 404."""
    try:
        _, loaded = _served(state, dataset, version)
    except (InferenceError, UnknownDataset) as exc:
        return _error(exc)
    return JSONResponse(metadata(dataset, loaded))


@router.get("/models/{dataset}/ready", summary="Model ready (Open Inference Protocol)")
async def model_ready(dataset: str, state: StateDep) -> JSONResponse:
    """200 ``{"name", "ready": true}`` when the dataset's model is loaded, else 503."""
    return await model_version_ready(dataset, None, state)


@router.get("/models/{dataset}/versions/{version}/ready", summary="Model version ready")
async def model_version_ready(dataset: str, version: str | None, state: StateDep) -> JSONResponse:
    """200 when the dataset's served model is this version, 503 when none is loaded, 404 for another."""
    try:
        _served(state, dataset, version)
    except UnknownDataset as exc:
        return _error(exc)
    except InferenceError as exc:
        if exc.status_code != status.HTTP_503_SERVICE_UNAVAILABLE:
            return _error(exc)
        return JSONResponse({"name": dataset, "ready": False}, status_code=exc.status_code)
    return JSONResponse({"name": dataset, "ready": True})


def _flatten(data: Any, name: str) -> list[Any]:
    if not isinstance(data, list):
        raise InferenceError(f"input {name!r}: data must be an array")
    if data and all(isinstance(item, list) for item in data):  # nested row-major form, e.g. shape [N, 1]
        return [value for row in data for value in row]
    return data


def records_from_tensors(schema: RequestSchema, request: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The records of an inference request (one input tensor per column); :class:`InferenceError` names the
    input (and row) at fault."""
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InferenceError("'inputs' must be a non-empty array of tensors")
    columns = schema.by_name
    values: dict[str, list[Any]] = {}
    rows: int | None = None
    for tensor in inputs:
        if not isinstance(tensor, dict):
            raise InferenceError("each input must be an object with name, shape, datatype and data")
        name, datatype, shape = tensor.get("name"), tensor.get("datatype"), tensor.get("shape")
        if not isinstance(name, str) or name not in columns:
            raise InferenceError(f"unknown input {name!r}; expected some of {', '.join(columns)}")
        if name in values:
            raise InferenceError(f"input {name!r} appears twice")
        column = columns[name]
        if datatype not in _ACCEPTED[column.type]:
            raise InferenceError(
                f"input {name!r}: datatype {datatype!r} does not fit a {column.type} column "
                f"(expected {OIP_DATATYPES[column.type]})"
            )
        if not isinstance(shape, list) or not shape or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise InferenceError(f"input {name!r}: shape must be a non-empty array of sizes")
        if any(d != 1 for d in shape[1:]):
            raise InferenceError(f"input {name!r}: shape {shape} is not one value per row ([N] or [N, 1])")
        data = _flatten(tensor.get("data"), name)
        if len(data) != shape[0]:
            raise InferenceError(
                f"input {name!r}: shape {shape} holds {shape[0]} values, data has {len(data)}"
            )
        if rows is not None and shape[0] != rows:
            raise InferenceError(f"input {name!r} has {shape[0]} rows, the previous inputs {rows}")
        rows = shape[0]
        values[name] = data
    if not rows:
        raise InferenceError("the request has no rows")
    records = [{name: data[i] for name, data in values.items()} for i in range(rows)]
    validated: list[dict[str, Any]] = []
    for index, record in enumerate(records):
        try:
            validated.append(schema.validate(record))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            field = ".".join(str(p) for p in first["loc"]) or "?"
            raise InferenceError(
                f"input {field!r}, row {index}: {first['msg']}"
                + (f" ({exc.error_count() - 1} more errors)" if exc.error_count() > 1 else "")
            ) from exc
    return validated


def _outputs(scored: Scored, schema: RequestSchema, wanted: list[str] | None) -> list[dict[str, Any]]:
    n = len(scored.results)
    prediction, probability = schema.response.prediction, schema.response.probability
    tensors = {
        prediction: ("INT64", [r[prediction] for r in scored.results]),
        probability: ("FP64", [r[probability] for r in scored.results]),
        DRIFT_OUTPUT: ("BYTES", [r["drift_alerts"] for r in scored.results]),
    }
    names = wanted if wanted is not None else list(tensors)
    return [{"name": k, "datatype": tensors[k][0], "shape": [n], "data": tensors[k][1]} for k in names]


def _requested_outputs(request: Mapping[str, Any], schema: RequestSchema) -> list[str] | None:
    outputs = request.get("outputs")
    if outputs is None:
        return None
    known = [schema.response.prediction, schema.response.probability, DRIFT_OUTPUT]
    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise InferenceError("'outputs' must be an array of objects with a name")
    names = [o.get("name") for o in outputs]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InferenceError(f"unknown output {unknown[0]!r}; the model has {', '.join(known)}")
    return [str(n) for n in names]


def _request_id(payload: Mapping[str, Any], request: Request) -> str:
    """The request's id: its ``id`` (echoed, as the protocol says), else the header's, else a new one."""
    sent = payload.get("id")
    return sent if isinstance(sent, str) and sent else request_ids.request_id(request)


_INFER_OPENAPI: dict[str, Any] = {
    "openapi_extra": request_ids.openapi_extra(),
    "responses": {
        200: {
            "description": "The outputs; `id` is the request's `id`, else its `X-Request-ID`, else "
            "generated; row `i` is logged as `<id>-<i>`",
            "headers": request_ids.RESPONSE_HEADERS,
        }
    },
}


@router.post("/models/{dataset}/infer", summary="Inference (Open Inference Protocol)", **_INFER_OPENAPI)
async def infer(dataset: str, request: Request, state: StateDep) -> Response:
    """Score the rows of the input tensors; outputs: prediction (INT64), probability (FP64), drift alerts
    (BYTES), each of shape ``[N]``."""
    return await infer_version(dataset, None, request, state)


@router.post(
    "/models/{dataset}/versions/{version}/infer", summary="Inference with one version", **_INFER_OPENAPI
)
async def infer_version(dataset: str, version: str | None, request: Request, state: StateDep) -> Response:
    """Inference when the served model is this version (else 404)."""
    try:
        served, loaded = _served(state, dataset, version)
        try:
            payload = json.loads(await request.body())
        except (ValueError, RecursionError) as exc:
            raise InferenceError(f"the body is not valid JSON: {exc}") from exc
        if not isinstance(payload, dict):
            raise InferenceError("the body must be a JSON object with 'inputs'")
        schema = loaded.schema
        wanted = _requested_outputs(payload, schema)
        records = records_from_tensors(schema, payload)
        if len(records) > state.settings.max_batch_rows:
            raise InferenceError(
                f"{len(records)} rows; the maximum is {state.settings.max_batch_rows} "
                "(LIFEBOAT_MAX_BATCH_ROWS)"
            )
    except (InferenceError, UnknownDataset) as exc:
        return _error(exc)
    request_id = _request_id(payload, request)
    ids = request_ids.row_ids(request_id, len(records))
    if len(records) > _INLINE_ROWS:  # larger requests are scored off the event loop
        scored = await anyio.to_thread.run_sync(
            score, loaded, records, served.metrics, ids, answering_of(loaded)
        )
    else:
        scored = score(loaded, records, served.metrics, ids, answering_of(loaded))
    scored.log_to(served.prediction_log)
    body = {
        "model_name": dataset,
        "model_version": loaded.version,
        "id": request_id,
        "outputs": _outputs(scored, schema, wanted),
    }
    headers = {request_ids.HEADER: request_id} if request_ids.is_valid(request_id) else None
    return Response(to_json(body), media_type="application/json", headers=headers)
