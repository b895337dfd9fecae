"""Prometheus metrics of one app, in a registry of its own (tests create many apps in one process).

The per-model series (predictions, drift alerts, model calls, model info, loads, prediction log) carry a
``dataset`` label; the HTTP series are per endpoint.

With several worker processes each worker answers ``/metrics`` for itself (like ``/admin/reload``); scrape
every worker, or run one worker per container.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lifeboat.monitoring.live import LivePerformance
from lifeboat.monitoring.prediction_log import PredictionLogStats
from lifeboat.settings import DEFAULT_DATASET

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


_LOG_COUNTERS = (
    ("lifeboat_prediction_log_written_rows", "written", "Rows written to the prediction log"),
    ("lifeboat_prediction_log_dropped_rows", "dropped", "Rows dropped because the log queue was full"),
    ("lifeboat_prediction_log_failed_rows", "failed", "Rows lost to prediction log write errors"),
    (
        "lifeboat_prediction_log_transactions",
        "transactions",
        "Transactions committed to the prediction log (each holds the rows of many requests)",
    ),
)


class _PredictionLogCollector(Collector):
    """Reads the prediction logs' counters at scrape time (one sample per dataset, label ``dataset``)."""

    def __init__(self) -> None:
        self.sources: dict[str, Callable[[], PredictionLogStats | None]] = {}

    def collect(self) -> Iterator[Metric]:
        stats = {dataset: read() for dataset, read in self.sources.items()}
        present = {dataset: s for dataset, s in stats.items() if s is not None}
        if not present:
            return
        for name, attribute, doc in _LOG_COUNTERS:
            counter = CounterMetricFamily(name, doc, labels=["dataset"])
            for dataset, s in present.items():
                counter.add_metric([dataset], getattr(s, attribute))
            yield counter
        pending = GaugeMetricFamily(
            "lifeboat_prediction_log_pending_rows", "Rows waiting to be written", labels=["dataset"]
        )
        for dataset, s in present.items():
            pending.add_metric([dataset], s.pending)
        yield pending


#: How long the live figures of a dataset are reused between scrapes (they cost a join over the log).
LIVE_TTL_SECONDS = 10.0

_LIVE_GAUGES = (
    ("lifeboat_live_accuracy", "accuracy", "Accuracy of the served version over its labelled predictions"),
    ("lifeboat_live_roc_auc", "roc_auc", "ROC-AUC of the served version over its labelled predictions"),
)


class _LiveCollector(Collector):
    """The live figures of each dataset's served version at scrape time, reused for ``ttl`` seconds.

    ``lifeboat_labelled_rows`` is always there (0 before any label); accuracy and ROC-AUC only once they are
    defined. The figures come from the prediction log file that every worker shares, so every worker
    reports the same values. An unreadable log is logged and leaves the gauges out, never the scrape failing.
    """

    def __init__(self, ttl: float = LIVE_TTL_SECONDS) -> None:
        self.ttl = ttl
        self.sources: dict[str, Callable[[], LivePerformance | None]] = {}
        self._cache: dict[str, tuple[float, LivePerformance | None]] = {}
        self._lock = threading.Lock()

    def invalidate(self, dataset: str) -> None:
        """Forget the cached figures of ``dataset`` (new labels arrived)."""
        with self._lock:
            self._cache.pop(dataset, None)

    def _figures(self, dataset: str, read: Callable[[], LivePerformance | None]) -> LivePerformance | None:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(dataset)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        try:
            figures = read()
        except (sqlite3.Error, OSError) as exc:
            logger.warning("%s: live figures unavailable: %s", dataset, exc)
            figures = None
        with self._lock:
            self._cache[dataset] = (now, figures)
        return figures

    def collect(self) -> Iterator[Metric]:
        found = {d: self._figures(d, read) for d, read in self.sources.items()}
        present = {d: f for d, f in found.items() if f is not None}
        if not present:
            return
        rows = GaugeMetricFamily(
            "lifeboat_labelled_rows",
            "Labelled predictions of the served version in the monitoring window",
            labels=["dataset"],
        )
        for dataset, figures in present.items():
            rows.add_metric([dataset], figures.labelled_rows)
        yield rows
        for name, attribute, doc in _LIVE_GAUGES:
            gauge = GaugeMetricFamily(name, doc, labels=["dataset"])
            for dataset, figures in present.items():
                value = getattr(figures, attribute)
                if value is not None:
                    gauge.add_metric([dataset], value)
            yield gauge


class _Bound:
    """A labelled metric with its ``dataset`` label fixed: ``.labels(trigger=...)`` adds the rest."""

    def __init__(self, family: Any, dataset: str) -> None:
        self._family = family
        self._dataset = dataset

    def labels(self, **labels: str) -> Any:
        """The child of this dataset and these labels."""
        return self._family.labels(dataset=self._dataset, **labels)


class DatasetMetrics:
    """The per-model series of one dataset (label ``dataset``), resolved once (scoring and sync use them)."""

    def __init__(self, metrics: ServingMetrics, dataset: str) -> None:
        self.dataset = dataset
        self._metrics = metrics
        #: The children of ``predictions`` by predicted class (every request counts on them).
        self.predicted = {c: metrics.predictions.labels(dataset=dataset, survived=c) for c in ("0", "1")}
        self.drift_alerts = metrics.drift_alerts.labels(dataset=dataset)
        self.predict_model_calls = metrics.predict_model_calls_by_dataset.labels(dataset=dataset)
        self.reloads = _Bound(metrics.reloads, dataset)
        self.reload_failures = _Bound(metrics.reload_failures, dataset)

    def set_model(self, model_name: str, version: str | None) -> None:
        """Point this dataset's model-info gauge at the served version."""
        self._metrics.set_model(model_name, version, dataset=self.dataset)


class ServingMetrics:
    """Every metric the server exports."""

    def __init__(
        self,
        log_stats: Callable[[], PredictionLogStats | None] | None = None,
        dataset: str = DEFAULT_DATASET,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "lifeboat_http_requests",
            "HTTP requests by endpoint, method and status",
            ["endpoint", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "lifeboat_http_request_duration_seconds",
            "HTTP request latency",
            ["endpoint", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "lifeboat_predictions",
            "Scored rows by dataset and predicted class (survived: 1 = the positive class)",
            ["dataset", "survived"],
            registry=r,
        )
        self.predict_model_calls_by_dataset = Counter(
            "lifeboat_predict_model_calls",
            "Model calls made for /predict: the requests ready in the same event-loop turn share one "
            "(requests / calls is the mean group size)",
            ["dataset"],
            registry=r,
        )
        self.drift_alerts = Counter(
            "lifeboat_drift_alerts",
            "Scored rows whose drift_alerts is not 'No drift detected'",
            ["dataset"],
            registry=r,
        )
        self.model_info = Gauge(
            "lifeboat_model_info",
            "1 for the model version this worker serves",
            ["dataset", "model_name", "version"],
            registry=r,
        )
        self.model_loaded = Gauge(
            "lifeboat_model_loaded", "1 when this worker has a model to serve", ["dataset"], registry=r
        )
        self.reloads = Counter(
            "lifeboat_model_reloads",
            "Model loads that succeeded, by trigger",
            ["dataset", "trigger"],
            registry=r,
        )
        self.reload_failures = Counter(
            "lifeboat_model_reload_failures",
            "Model loads that failed (the old model kept serving), by trigger and reason",
            ["dataset", "trigger", "reason"],
            registry=r,
        )
        self._served: dict[str, tuple[str, str]] = {}  # dataset -> model-info labels set now
        self._datasets: dict[str, DatasetMetrics] = {}
        self._logs = _PredictionLogCollector()
        r.register(self._logs)
        self.live = _LiveCollector()
        r.register(self.live)
        self.default = self.for_dataset(dataset, log_stats)
        #: The default dataset's children (the single-model server's names, kept for its callers).
        self.predicted = self.default.predicted
        self.predict_model_calls = self.default.predict_model_calls

    def for_dataset(
        self, dataset: str, log_stats: Callable[[], PredictionLogStats | None] | None = None
    ) -> DatasetMetrics:
        """The series of one dataset (created on first use, with its prediction log's counters if given)."""
        if log_stats is not None:
            self._logs.sources[dataset] = log_stats
        view = self._datasets.get(dataset)
        if view is None:
            view = self._datasets[dataset] = DatasetMetrics(self, dataset)
        return view

    def set_model(self, model_name: str, version: str | None, dataset: str | None = None) -> None:
        """Point one dataset's model-info gauge (default: the default dataset's) at the served version."""
        dataset = dataset or self.default.dataset
        previous = self._served.pop(dataset, None)
        if previous is not None:
            self.model_info.remove(dataset, *previous)
        if version is not None:
            self.model_info.labels(dataset=dataset, model_name=model_name, version=version).set(1)
            self._served[dataset] = (model_name, version)
        self.model_loaded.labels(dataset=dataset).set(0 if version is None else 1)

    def render(self) -> bytes:
        """The Prometheus text exposition of this app's registry."""
        return generate_latest(self.registry)
