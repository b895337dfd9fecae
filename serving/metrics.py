"""Prometheus metrics of one app, in a registry of its own (tests create many apps in one process).

With several worker processes each worker answers ``/metrics`` for itself (like ``/admin/reload``); scrape
every worker, or run one worker per container.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lifeboat.monitoring.prediction_log import PredictionLogStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _PredictionLogCollector(Collector):
    """Reads the prediction log's counters at scrape time."""

    def __init__(self, stats: Callable[[], PredictionLogStats | None]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        if stats is None:
            return
        for name, value, doc in (
            ("lifeboat_prediction_log_written_rows", stats.written, "Rows written to the prediction log"),
            (
                "lifeboat_prediction_log_dropped_rows",
                stats.dropped,
                "Rows dropped because the log queue was full",
            ),
            ("lifeboat_prediction_log_failed_rows", stats.failed, "Rows lost to prediction log write errors"),
            (
                "lifeboat_prediction_log_transactions",
                stats.transactions,
                "Transactions committed to the prediction log (each holds the rows of many requests)",
            ),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        yield GaugeMetricFamily(
            "lifeboat_prediction_log_pending_rows", "Rows waiting to be written", value=stats.pending
        )


class ServingMetrics:
    """Every metric the server exports."""

    def __init__(self, log_stats: Callable[[], PredictionLogStats | None] | None = None) -> None:
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
            "lifeboat_predictions", "Scored passengers by predicted class", ["survived"], registry=r
        )
        self.predict_model_calls = Counter(
            "lifeboat_predict_model_calls",
            "Model calls made for /predict: the requests ready in the same event-loop turn share one "
            "(requests / calls is the mean group size)",
            registry=r,
        )
        self.drift_alerts = Counter(
            "lifeboat_drift_alerts",
            "Scored passengers whose drift_alerts is not 'No drift detected'",
            registry=r,
        )
        self.model_info = Gauge(
            "lifeboat_model_info",
            "1 for the model version this worker serves",
            ["model_name", "version"],
            registry=r,
        )
        self.model_loaded = Gauge(
            "lifeboat_model_loaded", "1 when this worker has a model to serve", registry=r
        )
        self.reloads = Counter(
            "lifeboat_model_reloads", "Model loads that succeeded, by trigger", ["trigger"], registry=r
        )
        self.reload_failures = Counter(
            "lifeboat_model_reload_failures",
            "Model loads that failed (the old model kept serving), by trigger and reason",
            ["trigger", "reason"],
            registry=r,
        )
        #: The children of ``predictions`` by predicted class, resolved once (every request counts on them).
        self.predicted = {cls: self.predictions.labels(survived=cls) for cls in ("0", "1")}
        if log_stats is not None:
            r.register(_PredictionLogCollector(log_stats))

    def set_model(self, model_name: str, version: str | None) -> None:
        """Point the model-info gauge at the served version."""
        self.model_info.clear()
        if version is not None:
            self.model_info.labels(model_name=model_name, version=version).set(1)
        self.model_loaded.set(0 if version is None else 1)

    def render(self) -> bytes:
        """The Prometheus text exposition of this app's registry."""
        return generate_latest(self.registry)
