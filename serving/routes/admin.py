"""Authenticated hot reload of the champion."""

from __future__ import annotations

import hmac
import json
import logging
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lifeboat.registry.artifact import ArtifactError
from serving.champion_source import NoChampion, RegistryUnavailable
from serving.schemas import Message, ReloadOut, WorkerVersion
from serving.state import StateDep, require_dataset

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/admin", tags=["admin"])

#: How long a reload waits for the other workers to report the new version before answering 202.
FLEET_WAIT_SECONDS = 20.0

_bearer = HTTPBearer(auto_error=False, description="LIFEBOAT_RELOAD_TOKEN")


def require_reload_token(
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """503 when reload is disabled (no token configured), 401 without a Bearer token, 403 for a wrong one."""
    configured = state.settings.reload_token.get_secret_value() if state.settings.reload_token else ""
    if not configured:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="reload is disabled: LIFEBOAT_RELOAD_TOKEN is not set on the server",
        )
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing or malformed 'Authorization: Bearer <token>' header",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(credentials.credentials.encode(), configured.encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="wrong reload token")


async def _dataset_from_body(request: Request) -> str | None:
    """The ``dataset`` of an optional JSON body (400 when a body is sent but is not such an object)."""
    body = await request.body()
    if not body.strip():
        return None
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=f"the body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("dataset", ""), str):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, detail='the body must be a JSON object {"dataset": "<name>"}'
        )
    return payload.get("dataset") or None


@router.post(
    "/reload",
    response_model=ReloadOut,
    dependencies=[Depends(require_reload_token)],
    summary="Load the registry's current champion, validate it, swap it in atomically",
    responses={
        202: {
            "model": ReloadOut,
            "description": "Loaded on this worker; other workers have not confirmed yet "
            "(they converge on their next fleet check or registry poll)",
        },
        401: {"model": Message, "description": "No (or a malformed) Bearer token"},
        403: {"model": Message, "description": "Wrong token"},
        400: {"model": Message, "description": 'The body is not a JSON object {"dataset": ...}'},
        404: {
            "model": Message,
            "description": "Unknown dataset, or the registry has no champion alias; nothing changed",
        },
        409: {
            "model": Message,
            "description": "The champion's artifact is not servable (corrupt, canary failed); "
            "the old model keeps serving",
        },
        502: {
            "model": Message,
            "description": "The registry or artifact store cannot be reached; the old model keeps serving",
        },
        503: {"model": Message, "description": "Reload is disabled (no LIFEBOAT_RELOAD_TOKEN configured)"},
    },
)
async def reload_model(
    request: Request,
    state: StateDep,
    dataset: Annotated[
        str | None, Query(description="The dataset to reload (default: the default one)")
    ] = None,
) -> JSONResponse:
    """Resolve `<model>@champion`, download and canary-check it, and swap it in (requests in flight finish on
    the model they started with). Then publish the version to the other workers of this server and wait
    (bounded) until every live worker serves it: 200 when they all do (`converged: true`), 202 when some
    have not confirmed yet. A broken version is refused (409) and never published.

    The dataset comes from `?dataset=` or a JSON body `{"dataset": "..."}`; without either, the default
    dataset is reloaded. An unknown dataset is a 404 naming the hosted ones."""
    name = dataset or await _dataset_from_body(request) or state.settings.dataset
    served = require_dataset(state, name)
    sync = served.sync
    serving = sync.holder.version
    try:
        result = await anyio.to_thread.run_sync(sync.reload_champion, "admin")
    except NoChampion as exc:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"{exc}; still serving {serving or 'nothing'}"
        ) from exc
    except ArtifactError as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"refused: the champion is not servable: {exc}; still serving version {serving or 'none'}",
        ) from exc
    except RegistryUnavailable as exc:
        raise HTTPException(
            status.HTTP_502_BAD_GATEWAY, detail=f"{exc}; still serving version {serving or 'none'}"
        ) from exc
    logger.info("reload of dataset %s requested", served.name)
    if await anyio.to_thread.run_sync(sync.publish, result.new_version):
        report = await sync.wait_for_fleet(result.new_version, FLEET_WAIT_SECONDS)
    else:
        report = await anyio.to_thread.run_sync(sync.fleet_report, result.new_version)
    lagging = [w.worker for w in report.workers if w.version != result.new_version]
    if report.converged:
        note = f"all {len(report.workers)} live worker(s) serve version {result.new_version}"
    elif not report.board_available:
        note = (
            f"this worker serves version {result.new_version}; the fleet board is unavailable, so other "
            f"workers converge by polling the registry (every {served.settings.registry_poll_seconds:g} s)"
        )
    else:
        note = (
            f"this worker serves version {result.new_version}; {len(lagging)} worker(s) have not confirmed "
            f"it yet: {', '.join(lagging)}"
        )
    body: dict[str, Any] = ReloadOut(
        old_version=result.old_version,
        new_version=result.new_version,
        changed=result.changed,
        converged=report.converged,
        workers=[
            WorkerVersion(worker=w.worker, model_version=w.version, error=w.error) for w in report.workers
        ],
        note=note,
    ).model_dump()
    logger.info("reload: %s", note)
    return JSONResponse(
        body, status_code=status.HTTP_200_OK if report.converged else status.HTTP_202_ACCEPTED
    )
