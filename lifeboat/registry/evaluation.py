"""Holdout metrics, computed the same way for every model (challenger and champion alike)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn import metrics as skm

#: Metric names as logged to MLflow (prefixed ``holdout_``) and compared by the gate.
METRIC_NAMES: tuple[str, ...] = (
    "roc_auc",
    "pr_auc",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "brier",
    "log_loss",
)
#: Metrics where smaller is better.
LOWER_IS_BETTER: frozenset[str] = frozenset({"brier", "log_loss"})


class EvaluationError(ValueError):
    """The labels or probabilities cannot be scored (empty, one class only, wrong shape or range)."""


def binary_metrics(
    labels: Sequence[int] | np.ndarray, probabilities: Sequence[float] | np.ndarray, threshold: float = 0.5
) -> dict[str, float]:
    """All :data:`METRIC_NAMES` for survival probabilities against 0/1 labels."""
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(probabilities, dtype=np.float64)
    if y.shape != p.shape or y.ndim != 1:
        raise EvaluationError(f"labels {y.shape} and probabilities {p.shape} must be equal-length vectors")
    if len(y) == 0:
        raise EvaluationError("cannot evaluate on zero rows")
    if not np.isin(y, (0, 1)).all():
        raise EvaluationError("labels must be 0 or 1")
    if len(np.unique(y)) < 2:
        raise EvaluationError("the holdout has only one class; ROC-AUC is undefined")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise EvaluationError("probabilities must lie in [0, 1]")
    predicted = (p >= threshold).astype(np.int64)
    clipped = np.clip(p, 1e-15, 1 - 1e-15)
    return {
        "roc_auc": float(skm.roc_auc_score(y, p)),
        "pr_auc": float(skm.average_precision_score(y, p)),
        "accuracy": float(skm.accuracy_score(y, predicted)),
        "precision": float(skm.precision_score(y, predicted, zero_division=0)),
        "recall": float(skm.recall_score(y, predicted, zero_division=0)),
        "f1": float(skm.f1_score(y, predicted, zero_division=0)),
        "brier": float(skm.brier_score_loss(y, p)),
        "log_loss": float(skm.log_loss(y, clipped, labels=[0, 1])),
    }
