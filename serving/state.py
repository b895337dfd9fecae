"""What one app holds at run time, and the FastAPI dependencies that hand it to the routes."""

from __future__ import annotations

import email.message
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from lifeboat.monitoring.prediction_log import PredictionLog
from lifeboat.settings import Settings
from serving.champion_sync import ChampionSync
from serving.metrics import ServingMetrics
from serving.model_holder import LoadedModel, ModelHolder
from serving.scoring import RowCoalescer


@dataclass
class ServingState:
    """The app's components (one set per app, so tests can run many apps in one process)."""

    settings: Settings
    holder: ModelHolder
    sync: ChampionSync
    metrics: ServingMetrics
    prediction_log: PredictionLog | None
    worker_id: str
    coalescer: RowCoalescer


async def get_state(request: Request) -> ServingState:
    """The state of the app serving this request.

    ``async`` (it never blocks) so that FastAPI calls it in the event loop: a plain ``def`` dependency costs
    a round trip through the thread pool on every request.
    """
    state: ServingState = request.app.state.serving
    return state


StateDep = Annotated[ServingState, Depends(get_state)]


def require_model(state: ServingState) -> LoadedModel:
    """The model for this whole request, or 503 saying why there is none."""
    loaded = state.holder.current()
    if loaded is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=state.sync.not_ready_reason(),
            headers={"Retry-After": "5"},
        )
    return loaded


def media_type(request: Request) -> str:
    """The request's media type without parameters, lower case ('' when absent)."""
    raw = request.headers.get("content-type")
    if not raw:
        return ""
    if raw == "application/json":  # what nearly every client sends: nothing to parse
        return raw
    message = email.message.Message()
    message["content-type"] = raw
    return message.get_content_type().lower() if "/" in raw else raw.strip().lower()


async def require_json(request: Request) -> None:
    """415 unless the body is declared as JSON (``application/json`` or ``application/*+json``).

    ``async`` for the same reason as :func:`get_state`.
    """
    kind = media_type(request)
    if kind != "application/json" and not (kind.startswith("application/") and kind.endswith("+json")):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail=f"Content-Type must be application/json, got {kind or 'none'!r}",
        )
