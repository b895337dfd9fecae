"""Score validated passengers with one loaded model, count them, and log them for drift monitoring."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from lifeboat.features import NO_DRIFT
from lifeboat.prediction_log import PredictionLog
from lifeboat.schema import COLUMN_NAMES
from serving.metrics import ServingMetrics
from serving.model_holder import LoadedModel

logger = logging.getLogger(__name__)

#: Decimals of ``probability_survive`` (the seed answered 0.834).
PROBABILITY_DECIMALS = 3


def score_passengers(
    loaded: LoadedModel,
    passengers: Sequence[Mapping[str, Any]],
    metrics: ServingMetrics,
    prediction_log: PredictionLog | None,
) -> list[dict[str, Any]]:
    """One result per passenger, in order, in the seed's contract plus ``model_version``.

    ``survived`` is derived from the *rounded* probability, so a client checking
    ``survived == (probability_survive >= 0.5)`` on the answer always agrees with it.
    """
    columns = {name: [p.get(name) for p in passengers] for name in COLUMN_NAMES}
    probabilities = loaded.model.predict_proba(columns)
    alerts = loaded.model.drift_alerts(columns)
    rounded = [round(float(p), PROBABILITY_DECIMALS) for p in probabilities]
    survived = [int(p >= 0.5) for p in rounded]
    results = [
        {"survived": s, "probability_survive": p, "drift_alerts": a, "model_version": loaded.version}
        for s, p, a in zip(survived, rounded, alerts, strict=True)
    ]
    positives = sum(survived)
    if positives:
        metrics.predictions.labels(survived="1").inc(positives)
    if len(survived) - positives:
        metrics.predictions.labels(survived="0").inc(len(survived) - positives)
    drifted = sum(1 for a in alerts if a != NO_DRIFT)
    if drifted:
        metrics.drift_alerts.inc(drifted)
    if prediction_log is not None:
        prediction_log.append(passengers, [float(p) for p in probabilities], survived, loaded.version)
    return results
