"""What one app holds at run time, and the FastAPI dependencies that hand it to the routes."""

from __future__ import annotations

import email.message
from dataclasses import dataclass, field
from typing import Annotated

import anyio
from fastapi import Depends, HTTPException, Request, status
from starlette.datastructures import UploadFile

from lifeboat.monitoring.prediction_log import PredictionLog
from lifeboat.settings import Settings
from serving.batch_input import BatchInvalid, BatchProblem
from serving.champion_sync import ChampionSync
from serving.datasets import DatasetServing
from serving.label_events import LabelEvents
from serving.metrics import ServingMetrics
from serving.model_holder import LoadedModel, ModelHolder
from serving.scoring import RowCoalescer


class UnknownDataset(LookupError):  # noqa: N818 (reads as the condition)
    """A route names a dataset this server does not host."""

    def __init__(self, dataset: str, known: list[str]) -> None:
        super().__init__(f"unknown dataset {dataset!r}; this server hosts {', '.join(known)}")


@dataclass
class ServingState:
    """The app's components (one set per app, so tests can run many apps in one process).

    ``holder``, ``sync``, ``prediction_log`` are the default dataset's (``datasets[settings.dataset]``), which
    ``/predict``, ``/ready``, ``/model`` and ``/admin/reload`` serve; ``coalescer`` groups the ``/predict``
    requests (the seed's answer fields). ``datasets`` holds every hosted dataset, the default one first.
    """

    settings: Settings
    holder: ModelHolder
    sync: ChampionSync
    metrics: ServingMetrics
    prediction_log: PredictionLog | None
    worker_id: str
    coalescer: RowCoalescer
    datasets: dict[str, DatasetServing] = field(default_factory=dict)
    #: Asset events in Airflow for stored labels (None: not configured).
    label_events: LabelEvents | None = None
    #: Batches parsed and scored at once by this worker (``LIFEBOAT_SERVING_BATCH_CONCURRENCY``); the others
    #: wait. Parsing holds the GIL, so more would add memory (a 2 MB body parses into some 20 MB), not speed.
    batch_limiter: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(2))

    @property
    def default(self) -> DatasetServing:
        """The default dataset's components."""
        return self.datasets[self.settings.dataset]

    def dataset(self, name: str) -> DatasetServing:
        """One hosted dataset; raises :class:`UnknownDataset` naming the hosted ones."""
        found = self.datasets.get(name)
        if found is None:
            raise UnknownDataset(name, list(self.datasets))
        return found


async def get_state(request: Request) -> ServingState:
    """The state of the app serving this request.

    ``async`` (it never blocks) so that FastAPI calls it in the event loop: a plain ``def`` dependency costs
    a round trip through the thread pool on every request.
    """
    state: ServingState = request.app.state.serving
    return state


StateDep = Annotated[ServingState, Depends(get_state)]


def require_model(state: ServingState | DatasetServing) -> LoadedModel:
    """The model for this whole request, or 503 saying why there is none."""
    loaded = state.holder.current()
    if loaded is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=state.sync.not_ready_reason(),
            headers={"Retry-After": "5"},
        )
    return loaded


def require_dataset(state: ServingState, dataset: str) -> DatasetServing:
    """One hosted dataset, or 404 naming the hosted ones."""
    try:
        return state.dataset(dataset)
    except UnknownDataset as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from exc


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


#: The multipart field that carries a batch CSV.
CSV_FIELD = "file"


async def csv_upload(request: Request, max_bytes: int) -> bytes:
    """The CSV of a multipart batch (the file field ``file``); ``BatchInvalid`` when there is none."""
    async with request.form(max_files=1, max_fields=10, max_part_size=max_bytes) as form:
        upload = form.get(CSV_FIELD)
        if not isinstance(upload, UploadFile):
            raise BatchInvalid(
                f"a multipart batch needs the CSV as a file field named {CSV_FIELD!r}",
                [BatchProblem(None, CSV_FIELD, "no such file field", "missing", ("body", CSV_FIELD))],
            )
        return await upload.read()
