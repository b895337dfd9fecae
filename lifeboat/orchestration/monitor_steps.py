"""The monitoring steps of the retraining DAG: the champion's live performance and the alerts on what the
monitoring found (drift in live traffic, a live performance drop), whether or not the run retrains."""

from __future__ import annotations

import logging

from lifeboat.orchestration.results import DriftStep, PerformanceStep, PulledData, TrainingDecision
from lifeboat.orchestration.retrain import folder_name
from lifeboat.settings import Settings

logger = logging.getLogger(__name__)


def monitor_performance(settings: Settings, run_id: str, pulled: PulledData) -> PerformanceStep:
    """This run's live performance report of the champion (:func:`lifeboat.monitoring.performance.monitor`).

    ``skipped`` without a champion; ``unavailable`` when the prediction log cannot be read (the run goes on
    without live figures, and the message says why).
    """
    import sqlite3

    from lifeboat.monitoring.performance import MonitorError, monitor

    name = f"performance-{folder_name(run_id)}"
    if not pulled.champion_version:
        return PerformanceStep(name=name, status="skipped", message="no champion yet: nothing to monitor")
    try:
        summary = monitor(settings, name=name, model_version=pulled.champion_version, skip_empty=True)
    except MonitorError as exc:
        return PerformanceStep(name=name, status="skipped", message=str(exc))
    except sqlite3.DatabaseError as exc:
        logger.warning("no live performance for %s: the prediction log cannot be read: %s", run_id, exc)
        return PerformanceStep(
            name=name, status="unavailable", message=f"the prediction log cannot be read: {exc}"
        )
    if summary is None:  # no report for a window without any label (every run would add an empty one)
        message = f"no labelled prediction of v{pulled.champion_version} yet: no report"
        return PerformanceStep(name=name, status="not_enough_data", message=message)
    return PerformanceStep(
        name=name,
        status=summary.status,
        message=summary.message,
        model_version=summary.model_version,
        labelled_rows=summary.live.labelled_rows,
        accuracy=summary.live.accuracy,
        roc_auc=summary.live.roc_auc,
        metric=summary.metric,
        drop=summary.drop,
        holdout=summary.holdout,
        html_path=summary.html_path,
    )


def alert_on_monitoring(
    settings: Settings,
    drift: DriftStep,
    decision: TrainingDecision,
    performance: PerformanceStep | None = None,
) -> list[str]:
    """Alert on drift in live traffic and on a live performance drop, whether or not the run retrains.

    A drop is the ``degraded`` verdict of the run's performance report (the dataset's performance rule, or
    its defaults). Returns the kinds alerted (``live_drift``, ``performance_drop``).
    """
    from lifeboat.orchestration.alerts import notify_monitoring

    alerted = []
    if (drift.current_source or "").startswith("requests") and drift.dataset_drift:
        columns = ", ".join(drift.drifted_columns) or "dataset drift"
        message = f"drift in live traffic ({columns}); this run: {decision.reason}"
        figures = {
            "share_drifted": drift.share_drifted,
            "columns": drift.drifted_columns,
            "report": drift.html_path,
        }
        notify_monitoring(settings, "live_drift", settings.dataset, message, figures)
        alerted.append("live_drift")
    if performance is not None and performance.status == "degraded":
        message = f"live performance dropped: {performance.message}; this run: {decision.reason}"
        figures = {
            "model_version": performance.model_version,
            "metric": performance.metric,
            "drop": performance.drop,
            "labelled_rows": performance.labelled_rows,
            "accuracy": performance.accuracy,
            "roc_auc": performance.roc_auc,
            "report": performance.html_path,
        }
        notify_monitoring(settings, "performance_drop", settings.dataset, message, figures)
        alerted.append("performance_drop")
    return alerted
