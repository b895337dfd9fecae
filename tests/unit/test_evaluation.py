"""Holdout metrics: known values and refused inputs."""

from __future__ import annotations

import numpy as np
import pytest

from lifeboat.registry.evaluation import METRIC_NAMES, EvaluationError, binary_metrics

pytestmark = pytest.mark.unit


def test_perfect_and_known_values() -> None:
    labels = [0, 0, 1, 1]
    metrics = binary_metrics(labels, [0.1, 0.4, 0.35, 0.8])
    assert set(metrics) == set(METRIC_NAMES)
    assert metrics["roc_auc"] == pytest.approx(0.75)
    assert metrics["accuracy"] == pytest.approx(0.75)
    assert metrics["precision"] == pytest.approx(1.0)
    assert metrics["recall"] == pytest.approx(0.5)
    assert metrics["brier"] == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)
    perfect = binary_metrics(labels, [0.0, 0.0, 1.0, 1.0])
    assert perfect["roc_auc"] == 1.0
    assert perfect["log_loss"] < 1e-10


def test_random_scores_have_auc_near_half() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 20_000)
    assert binary_metrics(labels, rng.random(20_000))["roc_auc"] == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize(
    ("labels", "probabilities", "message"),
    [
        ([], [], "zero rows"),
        ([1, 1], [0.2, 0.3], "only one class"),
        ([0, 2], [0.2, 0.3], "0 or 1"),
        ([0, 1], [0.2, 1.3], r"\[0, 1\]"),
        ([0, 1], [0.2, float("nan")], r"\[0, 1\]"),
        ([0, 1, 1], [0.2, 0.3], "equal-length"),
    ],
)
def test_refused_inputs(labels: list[int], probabilities: list[float], message: str) -> None:
    with pytest.raises(EvaluationError, match=message):
        binary_metrics(labels, probabilities)
