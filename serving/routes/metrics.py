"""Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response

from serving.metrics import CONTENT_TYPE
from serving.state import StateDep

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics of this worker",
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics(state: StateDep) -> Response:
    """Requests and latency by endpoint and status, predictions by class, drift alerts, the loaded version,
    reloads and reload failures, prediction log rows written/dropped/failed."""
    return Response(content=state.metrics.render(), media_type=CONTENT_TYPE)
