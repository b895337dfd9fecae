"""Score validated passengers with one loaded model, count them, and log them for drift monitoring."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lifeboat.features import NO_DRIFT
from lifeboat.prediction_log import PredictionLog
from lifeboat.schema import COLUMN_NAMES
from serving.metrics import ServingMetrics
from serving.model_holder import LoadedModel

logger = logging.getLogger(__name__)

#: Decimals of ``probability_survive`` (the seed answered 0.834).
PROBABILITY_DECIMALS = 3


class InvalidProbabilityError(RuntimeError):
    """The model answered something that is not a probability (the request fails with a 500)."""


@dataclass(frozen=True)
class Scored:
    """Scored passengers: the answers, and what the prediction log records about them."""

    passengers: Sequence[Mapping[str, Any]]
    results: list[dict[str, Any]]
    probabilities: list[float]
    survived: list[int]
    version: str

    def log_to(self, prediction_log: PredictionLog | None) -> None:
        """Queue the passengers on the prediction log (never blocks: see :meth:`PredictionLog.append`)."""
        if prediction_log is not None:
            prediction_log.append(self.passengers, self.probabilities, self.survived, self.version)


def score(loaded: LoadedModel, passengers: Sequence[Mapping[str, Any]], metrics: ServingMetrics) -> Scored:
    """Score and count passengers, without logging them (the caller logs, e.g. after answering).

    ``survived`` is derived from the *rounded* probability, so a client checking
    ``survived == (probability_survive >= 0.5)`` on the answer always agrees with it. The results are plain
    JSON-ready values (the routes serialise them without a response model), so the contract's ranges are
    checked here: a probability outside [0, 1] (or NaN) raises :class:`InvalidProbabilityError`.
    """
    columns = {name: [p.get(name) for p in passengers] for name in COLUMN_NAMES}
    scores, alerts = loaded.model.predict_with_alerts(columns)
    probabilities: list[float] = scores.tolist()
    bad = [p for p in probabilities if not 0.0 <= p <= 1.0]  # NaN too
    if bad:
        raise InvalidProbabilityError(
            f"model version {loaded.version} returned {len(bad)} value(s) that are not probabilities "
            f"(first: {bad[0]}) for {len(passengers)} passenger(s)"
        )
    rounded = [round(p, PROBABILITY_DECIMALS) for p in probabilities]
    survived = [1 if p >= 0.5 else 0 for p in rounded]
    version = loaded.version
    results = [
        {"survived": s, "probability_survive": p, "drift_alerts": a, "model_version": version}
        for s, p, a in zip(survived, rounded, alerts, strict=True)
    ]
    positives = sum(survived)
    if positives:
        metrics.predicted["1"].inc(positives)
    if len(survived) - positives:
        metrics.predicted["0"].inc(len(survived) - positives)
    drifted = len(alerts) - alerts.count(NO_DRIFT)
    if drifted:
        metrics.drift_alerts.inc(drifted)
    return Scored(passengers, results, probabilities, survived, version)


def score_passengers(
    loaded: LoadedModel,
    passengers: Sequence[Mapping[str, Any]],
    metrics: ServingMetrics,
    prediction_log: PredictionLog | None,
) -> list[dict[str, Any]]:
    """One result per passenger, in order, in the seed's contract plus ``model_version``; logged (see
    :func:`score`)."""
    scored = score(loaded, passengers, metrics)
    scored.log_to(prediction_log)
    return scored.results
