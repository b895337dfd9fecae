"""The server's live gauges: cached between scrapes for LIVE_TTL_SECONDS, recomputed once labels arrive
(``invalidate``), left out (never a failed scrape) when the log cannot be read."""

from __future__ import annotations

import sqlite3

import pytest

from lifeboat.monitoring.live import LivePerformance
from serving.metrics import LIVE_TTL_SECONDS, ServingMetrics

pytestmark = pytest.mark.unit


def test_the_figures_are_reused_for_ten_seconds_and_recomputed_after_new_labels() -> None:
    assert LIVE_TTL_SECONDS == 10.0
    metrics = ServingMetrics()
    calls: list[int] = []

    def read() -> LivePerformance:
        calls.append(1)
        return LivePerformance(labelled_rows=len(calls), accuracy=0.5)

    metrics.live.sources["titanic"] = read
    first = metrics.render().decode()
    assert 'lifeboat_labelled_rows{dataset="titanic"} 1.0' in first
    assert 'lifeboat_live_accuracy{dataset="titanic"} 0.5' in first
    assert "lifeboat_live_roc_auc{" not in first  # undefined figures are left out
    metrics.render()
    assert len(calls) == 1  # the second scrape reused the figures
    metrics.live.invalidate("titanic")
    assert 'lifeboat_labelled_rows{dataset="titanic"} 2.0' in metrics.render().decode()


def test_an_unreadable_log_leaves_the_gauges_out_and_the_scrape_answers() -> None:
    metrics = ServingMetrics()

    def broken() -> LivePerformance:
        raise sqlite3.DatabaseError("file is not a database")

    metrics.live.sources["titanic"] = broken
    text = metrics.render().decode()
    assert "lifeboat_labelled_rows{" not in text
    assert "lifeboat_http_requests" in text
