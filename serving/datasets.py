"""One dataset's serving components: its champion holder and sync, prediction log, coalescer and metrics.

The server hosts every dataset of :meth:`lifeboat.settings.Settings.served_datasets`, each with its own
registered model (``settings.for_dataset(d).model_name``), fleet board and prediction log; a dataset whose
champion is missing is not ready on its own routes and never keeps the others from serving.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from lifeboat.dataset.spec import DatasetSpecError, spec_of
from lifeboat.monitoring.live import LivePerformance, labelled_predictions, live_performance
from lifeboat.monitoring.prediction_log import PredictionLog, log_columns
from lifeboat.settings import Settings
from serving.champion_source import ChampionSource
from serving.champion_sync import ChampionSync
from serving.fleet import FleetBoard
from serving.metrics import DatasetMetrics, ServingMetrics
from serving.model_holder import LoadedModel, ModelHolder
from serving.scoring import Answering, RowCoalescer

logger = logging.getLogger(__name__)


def fleet_directory(settings: Settings) -> Path:
    """One fleet folder per (model, registry) under the state folder: two servers never mix targets."""
    digest = hashlib.sha256(settings.tracking_uri.encode()).hexdigest()[:10]
    safe_name = re.sub(r"[^A-Za-z0-9_.-]", "_", settings.model_name)
    return settings.state_dir / "serving" / f"{safe_name}-{digest}"


def answering_of(loaded: LoadedModel) -> Answering:
    """The columns and answer field names of a loaded model (from its spec; cached on the model)."""
    schema = loaded.schema
    return Answering(schema.column_names, schema.response.prediction, schema.response.probability)


@dataclass
class DatasetServing:
    """Everything one dataset needs to be served (one per dataset per app)."""

    name: str
    settings: Settings
    holder: ModelHolder
    sync: ChampionSync
    metrics: DatasetMetrics
    prediction_log: PredictionLog | None
    coalescer: RowCoalescer

    @property
    def model_name(self) -> str:
        """The dataset's registered model."""
        return self.settings.model_name


def _prediction_log(settings: Settings) -> PredictionLog | None:
    """The dataset's prediction log, with the columns of its spec; None (logged) when the spec is unreadable:
    predictions go on unlogged rather than the whole server failing to start."""
    try:
        spec = spec_of(settings)
    except (DatasetSpecError, OSError) as exc:
        logger.error("%s: no prediction log, the dataset spec cannot be read: %s", settings.dataset, exc)
        return None
    return PredictionLog(
        settings.prediction_log_path, settings.prediction_log_max_rows, columns=log_columns(spec)
    )


def _live_figures(settings: Settings, holder: ModelHolder) -> LivePerformance | None:
    """The served version's figures over its newest labelled predictions (None while nothing is served)."""
    version = holder.version
    if version is None:
        return None
    frame = labelled_predictions(
        settings.prediction_log_path, model_version=version, last_n=settings.monitor_window_rows
    )
    return live_performance(frame)


def build_dataset(settings: Settings, metrics: ServingMetrics, worker_id: str) -> DatasetServing:
    """The components of one dataset (``settings`` are that dataset's); nothing is started."""
    prediction_log = _prediction_log(settings)
    view = metrics.for_dataset(settings.dataset, prediction_log.stats if prediction_log else None)
    holder = ModelHolder()
    source = ChampionSource(settings.tracking_uri, settings.model_name)
    fleet = FleetBoard(fleet_directory(settings), worker_id)
    sync = ChampionSync(holder, source, fleet, view, poll_seconds=settings.registry_poll_seconds)
    view.set_model(settings.model_name, None)
    metrics.live.sources[settings.dataset] = partial(_live_figures, settings, holder)
    return DatasetServing(
        name=settings.dataset,
        settings=settings,
        holder=holder,
        sync=sync,
        metrics=view,
        prediction_log=prediction_log,
        coalescer=RowCoalescer(view, prediction_log, answering_of),
    )
