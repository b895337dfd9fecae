"""Ground truth for served predictions: ``POST /v1/datasets/{dataset}/feedback``.

The labels name predictions by their request id (:mod:`serving.request_ids`); the ingestion
(:func:`lifeboat.monitoring.feedback.ingest_labels`) stores them beside the dataset's prediction log. The
endpoint has its own bearer token, ``LIFEBOAT_FEEDBACK_TOKEN`` (503 while it is not set).
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
from collections.abc import Callable
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lifeboat.dataset.spec import DatasetSpecError, spec_of
from lifeboat.monitoring.feedback import (
    MAX_LISTED,
    FeedbackConflict,
    FeedbackError,
    FeedbackInvalid,
    FeedbackResult,
    LabelIn,
    ingest_labels,
)
from lifeboat.monitoring.label_input import labels_from_csv, labels_from_json
from lifeboat.settings import Settings
from serving.batch_input import BatchInvalid
from serving.schemas import FeedbackConflictOut, FeedbackInvalidOut, FeedbackOut, Message
from serving.state import CSV_FIELD, StateDep, csv_upload, media_type, require_dataset

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/datasets", tags=["feedback"])

_bearer = HTTPBearer(auto_error=False, description="LIFEBOAT_FEEDBACK_TOKEN")

_LABEL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["request_id", "label"],
    "additionalProperties": False,
    "properties": {
        "request_id": {
            "type": "string",
            "description": "The prediction's `request_id` (a batch row's is `<id>-<row>`)",
        },
        "label": {
            "oneOf": [{"type": "integer"}, {"type": "string"}, {"type": "boolean"}],
            "description": "The true label as the training CSV writes it (one of the label column's two "
            "values, e.g. 0 or 1 for Titanic's Survived)",
        },
    },
}


def require_feedback_token(
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """503 when feedback is disabled (no token configured), 401 without the right Bearer token."""
    configured = state.settings.feedback_token.get_secret_value() if state.settings.feedback_token else ""
    if not configured:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="feedback is disabled: set LIFEBOAT_FEEDBACK_TOKEN on the server",
        )
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing or malformed 'Authorization: Bearer <token>' header",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not secrets.compare_digest(credentials.credentials.encode(), configured.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="wrong feedback token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )


async def _labels_reader(request: Request, max_bytes: int) -> Callable[[], list[LabelIn]]:
    """Read the body (event loop) and return what parses it into labels (worker thread)."""
    kind = media_type(request)
    if kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json")):
        body = await request.body()
        return lambda: labels_from_json(body)
    if kind in ("text/csv", "application/csv"):
        body = await request.body()
        return lambda: labels_from_csv(body)
    if kind == "multipart/form-data":
        upload = await csv_upload(request, max_bytes)
        return lambda: labels_from_csv(upload)
    raise HTTPException(
        status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
        detail="Content-Type must be application/json, text/csv or multipart/form-data, "
        f"got {kind or 'none'!r}",
    )


def _ingest(settings: Settings, read: Callable[[], list[LabelIn]]) -> FeedbackResult:
    return ingest_labels(
        settings.prediction_log_path,
        spec_of(settings),
        read(),
        max_labels=settings.feedback_max_labels,
        keep_labels=settings.prediction_log_max_rows,
    )


def _invalid(exc: FeedbackInvalid) -> JSONResponse:
    errors = [
        {"row": p.row, "line": p.line, "field": p.field, "value": p.value, "msg": p.msg}
        for p in exc.problems[:MAX_LISTED]
    ]
    body = {"detail": str(exc), "error_count": len(exc.problems), "errors": errors}
    return JSONResponse(body, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


@router.post(
    "/{dataset}/feedback",
    response_model=FeedbackOut,
    dependencies=[Depends(require_feedback_token)],
    summary="Ground-truth labels of served predictions, by request id",
    responses={
        400: {"model": Message, "description": "The body cannot be read (malformed multipart)"},
        401: {"model": Message, "description": "No, a malformed or a wrong Bearer token"},
        404: {"model": Message, "description": "Unknown dataset: the detail names the hosted ones"},
        409: {
            "model": FeedbackConflictOut,
            "description": "Some ids already have a different label (or get two in the request): "
            "nothing was stored; the ids are listed",
        },
        413: {"model": Message, "description": "Body larger than LIFEBOAT_MAX_BODY_BYTES"},
        415: {"model": Message, "description": "Unsupported Content-Type"},
        422: {
            "model": FeedbackInvalidOut,
            "description": "A label is not one of the label column's values, an id is malformed, the body "
            "is malformed, or there are more than LIFEBOAT_FEEDBACK_MAX_LABELS labels: each problem names "
            "its row (and CSV line) and value; nothing was stored",
        },
        503: {
            "model": Message,
            "description": "Feedback is disabled (set LIFEBOAT_FEEDBACK_TOKEN), or the dataset's spec or "
            "prediction log cannot be used right now",
        },
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["labels"],
                        "additionalProperties": False,
                        "properties": {"labels": {"type": "array", "minItems": 1, "items": _LABEL_SCHEMA}},
                    }
                },
                "text/csv": {"schema": {"type": "string", "description": "A header request_id,label"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {CSV_FIELD: {"type": "string", "format": "binary"}},
                    }
                },
            },
        }
    },
)
async def add_feedback(dataset: str, request: Request, state: StateDep) -> Any:
    """Store the true labels of earlier predictions (`Authorization: Bearer $LIFEBOAT_FEEDBACK_TOKEN`):
    JSON `{"labels": [{"request_id": "...", "label": 1}]}`, a CSV with the columns `request_id,label` as
    `text/csv`, or that CSV uploaded as the multipart file field `file`. Labels may arrive any time after
    the prediction (while it is in the prediction log). All or nothing: the answer counts the labels
    `matched` (stored now), `unknown` (not in the log, not stored) and `duplicate` (sent before: harmless);
    a different label for an id that has one is refused (409, naming the ids)."""
    served = require_dataset(state, dataset)
    settings = served.settings
    try:
        read = await _labels_reader(request, state.settings.max_body_bytes)
        result = await anyio.to_thread.run_sync(_ingest, settings, read)
    except BatchInvalid as exc:  # a multipart body without its file field
        return JSONResponse(
            {
                "detail": exc.summary,
                "error_count": 1,
                "errors": [
                    {"row": None, "line": None, "field": CSV_FIELD, "value": None, "msg": exc.summary}
                ],
            },
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    except FeedbackInvalid as exc:
        return _invalid(exc)
    except FeedbackConflict as exc:
        body = FeedbackConflictOut(
            detail=str(exc), conflicting_ids=exc.ids[:MAX_LISTED], conflict_count=len(exc.ids)
        )
        return JSONResponse(body.model_dump(), status_code=status.HTTP_409_CONFLICT)
    except (FeedbackError, DatasetSpecError) as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"dataset {dataset!r} cannot take labels: {exc}"
        ) from exc
    except sqlite3.Error as exc:
        logger.error(
            "feedback for %s: the prediction log %s cannot be written: %s",
            dataset,
            settings.prediction_log_path,
            exc,
        )
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=f"the prediction log of {dataset!r} cannot be written right now ({exc}); retry later",
            headers={"Retry-After": "5"},
        ) from exc
    if result.matched:  # this worker's live gauges are recomputed at the next scrape
        state.metrics.live.invalidate(dataset)
        if state.label_events is not None:  # the retraining DAG measures them (a background send)
            state.label_events.labels_stored(served.name, result.matched)
    logger.info(
        "feedback for %s: %d label(s), %d matched, %d unknown, %d duplicate",
        dataset,
        result.received,
        result.matched,
        result.unknown,
        result.duplicate,
    )
    return FeedbackOut(
        dataset=dataset,
        received=result.received,
        matched=result.matched,
        unknown=result.unknown,
        duplicate=result.duplicate,
    )
