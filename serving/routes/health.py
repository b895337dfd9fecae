"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse

from serving.schemas import HealthOut, ReadyOut
from serving.state import StateDep

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut, summary="Liveness: 200 while the process answers")
async def health(state: StateDep) -> HealthOut:
    """Always 200 while the process runs, model or not (restart the process only when this fails)."""
    return HealthOut(worker=state.worker_id)


@router.get(
    "/ready",
    response_model=ReadyOut,
    summary="Readiness: 200 with the version, or 503 with the reason",
    responses={503: {"model": ReadyOut, "description": "No model loaded on this worker; `reason` says why"}},
)
async def ready(state: StateDep) -> JSONResponse:
    """200 when this worker has a model to serve, 503 (with the reason) when it has none."""
    version = state.holder.version
    body = ReadyOut(
        ready=version is not None,
        model_name=state.settings.model_name,
        model_version=version,
        reason=state.sync.not_ready_reason() if version is None else state.sync.last_error,
        worker=state.worker_id,
    )
    code = status.HTTP_200_OK if version is not None else status.HTTP_503_SERVICE_UNAVAILABLE
    return JSONResponse(body.model_dump(), status_code=code)
