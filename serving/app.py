"""The prediction server's app factory: ``uvicorn --factory serving.app:create_app``.

Nothing happens at import time: :func:`create_app` builds one app with its own model holder, metrics registry,
prediction log and registry follower; the lifespan loads the champion and starts the background sync.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from lifeboat.settings import Settings, get_settings
from serving.batch_input import MAX_LISTED_ERRORS
from serving.datasets import DatasetServing, build_dataset, fleet_directory
from serving.fleet import new_worker_id
from serving.label_events import LabelEvents
from serving.metrics import ServingMetrics
from serving.middleware import BodySizeLimit, RequestMetrics
from serving.routes import admin, datasets, feedback, health, model, predictions, v2
from serving.routes import metrics as metrics_route
from serving.scoring import RowCoalescer
from serving.state import ServingState

__all__ = ["build_state", "create_app", "fleet_directory"]

logger = logging.getLogger(__name__)

#: How long start-up waits for the first model load before the server starts anyway (not ready).
STARTUP_WAIT_SECONDS = 30.0

DESCRIPTION = """
Predictions from the MLflow registry's champion of every hosted dataset (ONNX, no JVM): Titanic survival on
the original routes, any dataset on `/v1/datasets/{dataset}/...` and the Open Inference Protocol (`/v2`).

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
* **Every dataset** (`LIFEBOAT_SERVING_DATASETS`, default: all; the default dataset always):
  `POST /v1/datasets/{dataset}/predict` (one record) and `/predict/batch` (`{"records": [...]}`, CSV or
  multipart) answer `{"model_version", "count", "predictions": [...]}` with the field names of the dataset
  spec's `response` section; the record is validated against the served model's spec (422 naming the
  field); an unknown dataset is a 404 naming the hosted ones; a dataset without a champion answers 503
  while the others serve. `/admin/reload?dataset=NAME` reloads one dataset (default: the default one).
* **Ground truth**: `POST /v1/datasets/{dataset}/feedback` (`Authorization: Bearer $LIFEBOAT_FEEDBACK_TOKEN`)
  takes `{"labels": [{"request_id": ..., "label": ...}]}` or a `request_id,label` CSV and stores the labels of
  logged predictions; the answer counts them `matched`, `unknown` and `duplicate`. With
  `LIFEBOAT_AIRFLOW_EVENTS_URL` set, stored labels record an event on the dataset's incoming asset in Airflow
  (at most one per `LIFEBOAT_LABEL_EVENT_INTERVAL_SECONDS`), so `<dataset>_retrain` measures them at once.
* **Open Inference Protocol** (KServe v2 REST; Triton, MLServer, Seldon clients work unchanged):
  `GET /v2/health/live`, `/v2/health/ready`, `/v2/models/{dataset}`, `/v2/models/{dataset}/ready`,
  `POST /v2/models/{dataset}/infer` with one input tensor per column (INT64, FP64, BOOL, BYTES; MLServer's
  pandas codec layout); outputs: the prediction (INT64), the probability (FP64), `drift_alerts` (BYTES).
  Errors are `{"error": "..."}` (400 bad request, 404 unknown model or version, 503 not loaded).
* **Several workers**: `/admin/reload` reaches one worker; it publishes the version to the other workers of
  this server and answers 200 once all of them serve it (`converged: true`), or 202 when some have not
  confirmed yet. Every worker also polls the alias every `LIFEBOAT_REGISTRY_POLL_SECONDS`. `/ready`,
  `/model` and `/metrics` answer for the worker that received the request (`/metrics` labels the per-model
  series with `dataset`).
"""


def build_state(settings: Settings) -> ServingState:
    """Every component of one app, one set per served dataset (nothing is started)."""
    worker_id = new_worker_id()
    metrics = ServingMetrics(dataset=settings.dataset)
    datasets = {
        name: build_dataset(settings.for_dataset(name), metrics, worker_id)
        for name in settings.served_datasets()
    }
    default = datasets[settings.dataset]
    return ServingState(
        settings=settings,
        holder=default.holder,
        sync=default.sync,
        metrics=metrics,
        prediction_log=default.prediction_log,
        worker_id=worker_id,
        coalescer=RowCoalescer(default.metrics, default.prediction_log),
        datasets=datasets,
        label_events=LabelEvents.from_settings(settings),
        batch_limiter=anyio.CapacityLimiter(settings.serving_batch_concurrency),
    )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the prediction logs, load every dataset's champion (bounded wait, in parallel), follow the
    registry; stop them at exit. A dataset that cannot load starts not ready without holding up the others."""
    state: ServingState = app.state.serving
    served = list(state.datasets.values())
    for dataset in served:
        if dataset.prediction_log is not None:
            dataset.prediction_log.start()
    startups = {
        dataset.name: asyncio.ensure_future(
            anyio.to_thread.run_sync(dataset.sync.startup, abandon_on_cancel=True)
        )
        for dataset in served
    }
    _, pending = await asyncio.wait(startups.values(), timeout=STARTUP_WAIT_SECONDS)
    if pending:
        logger.warning(
            "the first model load takes longer than %.0f s; starting not ready", STARTUP_WAIT_SECONDS
        )

    async def follow(dataset: DatasetServing, startup: asyncio.Future[None]) -> None:
        try:
            await startup  # expected failures (no champion, registry down) are logged by the sync itself
        except Exception:  # anything else is a bug: log it, and let the poll keep trying
            logger.exception("the first model load of %s failed unexpectedly", dataset.name)
        await dataset.sync.run()

    background = [
        asyncio.create_task(follow(d, startups[d.name]), name=f"champion-sync-{d.name}") for d in served
    ]
    for dataset in served:
        logger.info(
            "worker %s started: dataset %s, model %s, registry %s, %s",
            state.worker_id,
            dataset.name,
            dataset.model_name,
            dataset.settings.tracking_uri,
            f"serving version {dataset.holder.version}" if dataset.holder.version else "NOT READY",
        )
    try:
        yield
    finally:
        for task in background:
            task.cancel()
        for startup in startups.values():
            startup.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if state.label_events is not None:
            state.label_events.close()
        for dataset in served:
            with contextlib.suppress(OSError):
                dataset.sync.fleet.leave()
            if dataset.prediction_log is not None:
                await anyio.to_thread.run_sync(dataset.prediction_log.close)


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
    for router in (
        predictions.router,
        datasets.router,
        feedback.router,
        v2.router,
        health.router,
        model.router,
        admin.router,
        metrics_route.router,
    ):
        app.include_router(router)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(Exception, _unexpected_error)
    known = frozenset(getattr(r, "path", "") for r in app.routes)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=app.state.serving.metrics, known_paths=known)  # outermost
    return app
