"""Provenance of the served model."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from serving.schemas import Message, ModelInfoOut
from serving.state import StateDep, require_model

router = APIRouter(tags=["model"])


@router.get(
    "/model",
    response_model=ModelInfoOut,
    summary="The served model version and its provenance",
    responses={503: {"model": Message, "description": "No model loaded on this worker"}},
)
async def model_info(state: StateDep) -> ModelInfoOut:
    """Version, training run, training time, holdout metrics, data fingerprint and gate decision.

    Read from the MLflow registry (version tags, training run) when the version was loaded.
    """
    return ModelInfoOut(**asdict(require_model(state).meta))
