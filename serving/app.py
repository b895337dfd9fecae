"""The prediction server's app factory: ``uvicorn --factory serving.app:create_app``.

Nothing happens at import time: :func:`create_app` builds one app with its own model holder, metrics registry,
prediction log and registry follower; the lifespan loads the champion and starts the background sync.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from lifeboat.monitoring.prediction_log import PredictionLog
from lifeboat.settings import Settings, get_settings
from serving.batch_input import MAX_LISTED_ERRORS
from serving.champion_source import ChampionSource
from serving.champion_sync import ChampionSync
from serving.fleet import FleetBoard, new_worker_id
from serving.metrics import ServingMetrics
from serving.middleware import BodySizeLimit, RequestMetrics
from serving.model_holder import ModelHolder
from serving.routes import admin, health, model, predictions
from serving.routes import metrics as metrics_route
from serving.scoring import RowCoalescer
from serving.state import ServingState

logger = logging.getLogger(__name__)

#: How long start-up waits for the first model load before the server starts anyway (not ready).
STARTUP_WAIT_SECONDS = 30.0

DESCRIPTION = """
Titanic survival predictions from the MLflow registry's champion (ONNX, no JVM).

* **Contract** (the seed's): `{"survived": 1, "probability_survive": 0.834,
  "drift_alerts": "No drift detected", "model_version": "3"}`; `survived` is 1 exactly when the rounded
  probability is ≥ 0.5.
* **Strict input**: integers must be JSON integers (`"3"`, `3.0` and `true` are refused), numbers JSON
  numbers, NaN/Infinity and unknown fields are refused; ranges and vocabularies come from
  `lifeboat.dataset.schema`.
  Bad input is always a 4xx (422 naming the field, 413 too large, 415 wrong Content-Type), never a 5xx.
* **Batches** are all or nothing: a 422 lists every invalid row index and field and nothing is scored.
* **No model yet** (no champion, registry down): `/ready` and the prediction endpoints answer 503 with the
  reason; the server picks a champion up on `/admin/reload` or by polling the alias.
* **Several workers**: `/admin/reload` reaches one worker; it publishes the version to the other workers of
  this server and answers 200 once all of them serve it (`converged: true`), or 202 when some have not
  confirmed yet. Every worker also polls the alias every `LIFEBOAT_REGISTRY_POLL_SECONDS`. `/ready`,
  `/model` and `/metrics` answer for the worker that received the request.
"""


def fleet_directory(settings: Settings) -> Path:
    """One fleet folder per (model, registry) under the state folder: two servers never mix targets."""
    digest = hashlib.sha256(settings.tracking_uri.encode()).hexdigest()[:10]
    safe_name = re.sub(r"[^A-Za-z0-9_.-]", "_", settings.model_name)
    return settings.state_dir / "serving" / f"{safe_name}-{digest}"


def build_state(settings: Settings) -> ServingState:
    """Every component of one app (nothing is started)."""
    worker_id = new_worker_id()
    prediction_log = PredictionLog(settings.prediction_log_path, settings.prediction_log_max_rows)
    metrics = ServingMetrics(log_stats=prediction_log.stats)
    holder = ModelHolder()
    source = ChampionSource(settings.tracking_uri, settings.model_name)
    fleet = FleetBoard(fleet_directory(settings), worker_id)
    sync = ChampionSync(holder, source, fleet, metrics, poll_seconds=settings.registry_poll_seconds)
    metrics.set_model(settings.model_name, None)
    return ServingState(
        settings=settings,
        holder=holder,
        sync=sync,
        metrics=metrics,
        prediction_log=prediction_log,
        worker_id=worker_id,
        coalescer=RowCoalescer(metrics, prediction_log),
    )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the prediction log, load the champion (bounded wait), follow the registry; stop them at exit."""
    state: ServingState = app.state.serving
    if state.prediction_log is not None:
        state.prediction_log.start()
    startup = asyncio.ensure_future(anyio.to_thread.run_sync(state.sync.startup, abandon_on_cancel=True))
    done, _ = await asyncio.wait({startup}, timeout=STARTUP_WAIT_SECONDS)
    if not done:
        logger.warning(
            "the first model load takes longer than %.0f s; starting not ready", STARTUP_WAIT_SECONDS
        )

    async def follow() -> None:
        try:
            await startup  # expected failures (no champion, registry down) are logged by the sync itself
        except Exception:  # anything else is a bug: log it, and let the poll keep trying
            logger.exception("the first model load failed unexpectedly")
        await state.sync.run()

    background = asyncio.create_task(follow(), name="champion-sync")
    logger.info(
        "worker %s started: model %s, registry %s, %s",
        state.worker_id,
        state.settings.model_name,
        state.settings.tracking_uri,
        f"serving version {state.holder.version}" if state.holder.version else "NOT READY",
    )
    try:
        yield
    finally:
        background.cancel()
        startup.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await background
        with contextlib.suppress(OSError):
            state.sync.fleet.leave()
        if state.prediction_log is not None:
            await anyio.to_thread.run_sync(state.prediction_log.close)


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """422 listing each error's location (which names the field), message and type.

    The offending input is not echoed back: it may be NaN or Infinity, which JSON cannot carry (FastAPI's
    default handler would then fail with a 500).
    """
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [
        {
            "type": str(e.get("type", "")),
            "loc": [p if isinstance(p, int) else str(p) for p in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
        }
        for e in errors[:MAX_LISTED_ERRORS]
    ]
    if len(errors) > MAX_LISTED_ERRORS:  # a bounded answer: a bad request is never amplified
        detail.append(
            {
                "type": "too_many_errors",
                "loc": ["body"],
                "msg": f"{len(errors) - MAX_LISTED_ERRORS} more errors are not listed",
            }
        )
    return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        {"detail": "internal server error"}, status_code=status.HTTP_500_INTERNAL_SERVER_ERROR
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the prediction server (a new, independent app on every call)."""
    settings = settings if settings is not None else get_settings()
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = FastAPI(title="lifeboat prediction server", version="1", description=DESCRIPTION, lifespan=lifespan)
    app.state.serving = build_state(settings)
    for router in (predictions.router, health.router, model.router, admin.router, metrics_route.router):
        app.include_router(router)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(Exception, _unexpected_error)
    known = frozenset(getattr(r, "path", "") for r in app.routes)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=app.state.serving.metrics, known_paths=known)  # outermost
    return app
