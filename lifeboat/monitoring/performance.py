"""Live performance reports: how the served champion does on the predictions whose labels came back.

:func:`performance_report` writes, beside the drift reports of the dataset (same folder, same
``index.json``, entries of kind ``performance``):

* ``<name>.html`` - Evidently's classification report (accuracy, precision, recall, F1, ROC-AUC, log loss,
  confusion matrix) of the labelled predictions, followed by lifeboat's calibration table (reliability bins,
  Brier score, expected calibration error), which Evidently 0.7 does not draw;
* ``<name>.json`` - the :class:`PerformanceSummary`: the live figures next to the champion's holdout figures
  and the verdict.

The verdict follows the dataset's performance rule (``retrain.performance`` of its spec, else the defaults
of :class:`~lifeboat.dataset.models.PerformanceRule`): ``not_enough_data`` below ``min_labelled_rows``,
``degraded`` when the live metric is below the holdout figure by more than ``max_drop``, ``ok`` otherwise.
:func:`monitor` is the whole step for one dataset (the ``lifeboat monitor`` command and the DAG's
``monitor_performance`` task): the champion's version and holdout figures from MLflow, its labelled
predictions from the prediction log, the report.
"""

from __future__ import annotations

import html
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict

from lifeboat.dataset.models import PerformanceRule
from lifeboat.monitoring.drift_index import add_index_entry, write_text_atomically
from lifeboat.monitoring.drift_models import DriftError
from lifeboat.monitoring.live import LivePerformance, labelled_predictions, live_performance

if TYPE_CHECKING:
    from lifeboat.settings import Settings

logger = logging.getLogger(__name__)

__all__ = ["PerformanceStatus", "PerformanceSummary", "judge", "monitor", "performance_report", "rule_of"]

PerformanceStatus = Literal["ok", "degraded", "not_enough_data"]
#: The live figures shown beside the holdout's, in this order.
COMPARED = ("accuracy", "roc_auc", "precision", "recall", "f1", "brier")


class PerformanceSummary(BaseModel):
    """One performance report: the live figures, the champion's holdout figures and the verdict."""

    model_config = ConfigDict(frozen=True)

    name: str
    dataset: str
    status: PerformanceStatus
    message: str
    model_version: str | None
    window: str
    metric: str
    max_drop: float
    min_labelled_rows: int
    drop: float | None
    live: LivePerformance
    holdout: dict[str, float]
    created_at: str
    html_path: str
    json_path: str

    @property
    def labelled_rows(self) -> int:
        return self.live.labelled_rows

    def index_entry(self) -> dict[str, Any]:
        """The report's entry in the reports index (kind ``performance``)."""
        return {
            "kind": "performance",
            "name": self.name,
            "status": self.status,
            "model_version": self.model_version,
            "labelled_rows": self.live.labelled_rows,
            "metric": self.metric,
            "live": self.live.model_dump(include={"accuracy", "roc_auc", "brier"}),
            "holdout": {k: self.holdout.get(f"holdout_{k}") for k in ("accuracy", "roc_auc")},
            "drop": self.drop,
            "current_source": self.window,
            "created_at": self.created_at,
            "html": Path(self.html_path).name,
            "json": Path(self.json_path).name,
        }


def rule_of(settings: Settings) -> PerformanceRule:
    """The dataset's performance rule: its spec's ``retrain.performance``, else the defaults."""
    from lifeboat.dataset.spec import spec_of

    retrain = spec_of(settings).retrain
    return (
        retrain.performance if retrain is not None and retrain.performance is not None else PerformanceRule()
    )


def judge(
    live: LivePerformance, holdout: dict[str, float], rule: PerformanceRule
) -> tuple[PerformanceStatus, float | None, str]:
    """The verdict on ``live`` against the holdout figures: status, the drop of the metric, a sentence."""
    rows = live.labelled_rows
    if rows < rule.min_labelled_rows:
        return "not_enough_data", None, f"{rows} labelled rows < min_labelled_rows {rule.min_labelled_rows}"
    value = getattr(live, rule.metric)
    reference = holdout.get(f"holdout_{rule.metric}")
    if value is None or reference is None:
        return (
            "not_enough_data",
            None,
            f"live {rule.metric} or the champion's holdout figure is not available",
        )
    drop = round(float(reference) - float(value), 6)
    if drop > rule.max_drop:
        return (
            "degraded",
            drop,
            (
                f"live {rule.metric} {value:.4f} over {rows} labelled rows vs holdout {reference:.4f}: "
                f"drop {drop:.4f} > max_drop {rule.max_drop}"
            ),
        )
    return (
        "ok",
        drop,
        (
            f"live {rule.metric} {value:.4f} over {rows} labelled rows vs holdout {reference:.4f}: "
            f"drop {drop:.4f} <= max_drop {rule.max_drop}"
        ),
    )


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _calibration_html(summary: PerformanceSummary) -> str:
    live = summary.live
    rows = "".join(
        f"<tr><td>{b.lower:.1f}-{b.upper:.1f}</td><td>{b.rows}</td><td>{_figure(b.mean_probability)}</td>"
        f"<td>{_figure(b.positive_rate)}</td></tr>"
        for b in live.calibration
    )
    compared = "".join(
        f"<tr><td>{name}</td><td>{_figure(getattr(live, name))}</td>"
        f"<td>{_figure(summary.holdout.get(f'holdout_{name}'))}</td></tr>"
        for name in COMPARED
    )
    esc = html.escape
    return (
        '<section id="lifeboat-live" style="font-family:sans-serif;margin:24px">'
        f"<h2>Live performance of {esc(summary.dataset)} v{esc(str(summary.model_version))}: "
        f"{esc(summary.status.replace('_', ' '))}</h2><p>{esc(summary.message)}</p>"
        f"<p>Window: {esc(summary.window)}; {live.labelled_rows} labelled rows, "
        f"{live.positives} positive.</p>"
        "<table border=1 cellpadding=4><tr><th>metric</th><th>live</th><th>champion holdout</th></tr>"
        f"{compared}</table>"
        f"<h3>Calibration</h3><p>Expected calibration error {_figure(live.expected_calibration_error)}, "
        f"Brier score {_figure(live.brier)}.</p>"
        "<table border=1 cellpadding=4><tr><th>predicted probability</th><th>rows</th>"
        f"<th>mean probability</th><th>observed positive rate</th></tr>{rows}</table></section>"
    )


def _evidently_html(frame: pd.DataFrame, tmp_html: Path) -> None:
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.presets import ClassificationPreset

    data = frame[["target", "prediction", "probability"]].copy()
    definition = DataDefinition(
        classification=[
            BinaryClassification(
                target="target", prediction_labels="prediction", prediction_probas="probability", pos_label=1
            )
        ],
        numerical_columns=[],
        categorical_columns=[],
    )
    snapshot = Report([ClassificationPreset()], include_tests=False).run(
        Dataset.from_pandas(data, data_definition=definition), None
    )
    # save_html writes nothing for a pathlib.Path: give it a str.
    snapshot.save_html(str(tmp_html))
    if not tmp_html.is_file() or tmp_html.stat().st_size == 0:
        raise DriftError(f"Evidently wrote no HTML report to {tmp_html}")


def performance_report(
    frame: pd.DataFrame,
    output_dir: Path | str,
    name: str,
    *,
    dataset: str,
    holdout: dict[str, float],
    rule: PerformanceRule,
    model_version: str | None,
    window: str,
    created_at: datetime | None = None,
) -> PerformanceSummary:
    """Write ``<name>.html`` and ``<name>.json`` for the labelled predictions ``frame``; update the index.

    The Evidently part needs both classes among the labels; without them the page holds lifeboat's table
    alone. Re-running with the same name replaces that report.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    html_path = output_dir / f"{name}.html"
    json_path = output_dir / f"{name}.json"
    live = live_performance(frame)
    status, drop, message = judge(live, holdout, rule)
    summary = PerformanceSummary(
        name=name,
        dataset=dataset,
        status=status,
        message=message,
        model_version=model_version,
        window=window,
        metric=rule.metric,
        max_drop=rule.max_drop,
        min_labelled_rows=rule.min_labelled_rows,
        drop=drop,
        live=live,
        holdout=dict(holdout),
        created_at=(created_at or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="microseconds"),
        html_path=str(html_path.resolve()),
        json_path=str(json_path.resolve()),
    )
    section = _calibration_html(summary)
    tmp_html = output_dir / f".{name}.html.tmp"
    try:
        if live.labelled_rows and 0 < live.positives < live.labelled_rows:
            _evidently_html(frame, tmp_html)
            page = tmp_html.read_text(encoding="utf-8")
            cut = page.rfind("</body>")
            page = page[:cut] + section + page[cut:] if cut >= 0 else page + section
        else:
            page = (
                f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Performance report '
                f"{html.escape(name)}</title></head><body>{section}<p>Evidently's classification report "
                "needs labels of both classes.</p></body></html>"
            )
        write_text_atomically(html_path, page)
    finally:
        tmp_html.unlink(missing_ok=True)
    write_text_atomically(json_path, summary.model_dump_json(indent=2) + "\n")
    add_index_entry(output_dir, summary.index_entry())
    logger.info("performance report %s: %s (html %s)", name, message, html_path)
    return summary


def monitor(
    settings: Settings,
    *,
    name: str | None = None,
    last_n: int | None = None,
    since: datetime | None = None,
    model_version: str | None = None,
    skip_empty: bool = False,
) -> PerformanceSummary | None:
    """The live performance report of the dataset's champion (or ``model_version``) over its labelled rows.

    The window is the newest ``last_n`` labelled predictions (default ``settings.monitor_window_rows``)
    logged since ``since`` (default: any time). Raises :class:`MonitorError` without a champion.
    ``skip_empty`` writes no report (and returns None) when there is no labelled prediction at all.
    """
    from lifeboat.registry import store as registry

    registry.configure_mlflow(settings)
    if model_version is None:
        champion = registry.version_by_alias(settings.model_name, registry.CHAMPION)
        if champion is None:
            raise MonitorError(f"{settings.model_name} has no champion yet: there is nothing to monitor")
        version = champion
    else:
        version = registry.mlflow_client().get_model_version(settings.model_name, model_version)
    holdout = registry.holdout_metrics(version)
    rows = last_n if last_n is not None else settings.monitor_window_rows
    frame = labelled_predictions(
        settings.prediction_log_path, model_version=str(version.version), last_n=rows, since=since
    )
    if skip_empty and frame.empty:
        return None
    window = f"labelled predictions of v{version.version}: newest {rows}" + (
        f" since {since.isoformat()}" if since is not None else ""
    )
    moment = datetime.now(UTC)
    return performance_report(
        frame,
        settings.resolved_reports_dir,
        name or f"performance-{moment:%Y%m%dT%H%M%S%f}Z",
        dataset=settings.dataset,
        holdout=holdout,
        rule=rule_of(settings),
        model_version=str(version.version),
        window=window,
        created_at=moment,
    )


class MonitorError(RuntimeError):
    """Live performance cannot be measured (no champion, an unknown version)."""
