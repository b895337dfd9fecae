"""Drift monitoring as the CLI and the DAG run it: pick the reference and the current window, write a report.

Reference = the champion's training rows (the sample its training run logged, found through the version tag
``reference_artifact``); with no champion yet, the raw training CSV. Current = the newest labelled batch(es)
in the incoming folder, or the window of logged prediction requests.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import pandas as pd

from lifeboat.dataset.spec import spec_of
from lifeboat.monitoring.drift import drift_report
from lifeboat.monitoring.drift_frames import current_from_batches, current_from_requests
from lifeboat.monitoring.drift_models import DriftSummary
from lifeboat.monitoring.log_table import log_columns
from lifeboat.settings import Settings

logger = logging.getLogger(__name__)

CurrentSource = Literal["batch", "requests"]
REFERENCE_TAG = "reference_artifact"


class MonitoringError(RuntimeError):
    """The data a drift report needs is not there (no batch, unreadable reference ...)."""


def champion_reference(settings: Settings) -> tuple[pd.DataFrame, str]:
    """The champion's training rows and where they came from (no champion: the raw training CSV)."""
    from lifeboat.registry import store as registry

    registry.configure_mlflow(settings)
    champion = registry.version_by_alias(settings.model_name, registry.CHAMPION)
    uri = (champion.tags or {}).get(REFERENCE_TAG) if champion is not None else None
    if champion is not None and uri:
        import mlflow

        with tempfile.TemporaryDirectory(prefix="lifeboat-reference-") as tmp:
            try:
                local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)
            except Exception as exc:  # MLflow raises several unrelated types for a missing artifact
                raise MonitoringError(
                    f"cannot download the reference of {settings.model_name} version {champion.version} "
                    f"({uri}): {exc}"
                ) from exc
            return pd.read_csv(local), f"champion v{champion.version} training data ({uri})"
    if champion is not None:
        logger.warning(
            "champion version %s has no %s tag: using the raw training CSV", champion.version, REFERENCE_TAG
        )
    return pd.read_csv(settings.raw_data), f"raw training data ({settings.raw_data})"


def newest_batches(settings: Settings, count: int = 1) -> list[Path]:
    """The ``count`` newest batch CSVs of the incoming folder (batch names sort by time)."""
    batches = sorted(Path(settings.incoming_dir).glob("*.csv"))
    return batches[-count:] if count > 0 else []


def current_window(
    settings: Settings,
    source: CurrentSource,
    batches: list[Path] | None = None,
    last_n: int | None = None,
    since_hours: float | None = None,
) -> tuple[pd.DataFrame, str]:
    """The current rows to compare and a description of them."""
    if source == "batch":
        paths = batches or newest_batches(settings)
        if not paths:
            raise MonitoringError(
                f"no labelled batch in {settings.incoming_dir}: add one with `lifeboat new-batch`"
            )
        return current_from_batches(paths), "batch: " + ", ".join(str(p) for p in paths)
    rows = last_n if last_n is not None else settings.drift_window_rows
    hours = since_hours if since_hours is not None else settings.drift_window_hours
    since = datetime.now(UTC) - timedelta(hours=hours)
    columns = log_columns(spec_of(settings))
    frame = current_from_requests(settings.prediction_log_path, last_n=rows, since=since, columns=columns)
    return frame, f"requests: last {rows} within {hours:g} h ({settings.prediction_log_path})"


def run_drift(
    settings: Settings,
    source: CurrentSource = "batch",
    name: str | None = None,
    batches: list[Path] | None = None,
    last_n: int | None = None,
    since_hours: float | None = None,
) -> DriftSummary:
    """Report on ``source`` against the champion's reference; saved in the reports dir."""
    reference, reference_source = champion_reference(settings)
    current, current_source = current_window(settings, source, batches, last_n, since_hours)
    report_name = name or f"{source}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    logger.info(
        "drift %s: reference %s (%d rows), current %s (%d rows)",
        report_name,
        reference_source,
        len(reference),
        current_source,
        len(current),
    )
    return drift_report(
        reference,
        current,
        settings.resolved_reports_dir,
        report_name,
        settings,
        current_source=current_source,
    )
