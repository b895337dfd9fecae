"""Score validated passengers with one loaded model, count them, and log them for drift monitoring.

:func:`score` scores a list (the batch endpoint); :class:`RowCoalescer` scores single-passenger requests,
those that arrive together in one model call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lifeboat.dataset.features import NO_DRIFT
from lifeboat.dataset.schema import COLUMN_NAMES
from lifeboat.monitoring.prediction_log import PredictionLog
from serving.metrics import DatasetMetrics
from serving.model_holder import LoadedModel

logger = logging.getLogger(__name__)

#: Decimals of ``probability_survive`` (the seed answered 0.834).
PROBABILITY_DECIMALS = 3


@dataclass(frozen=True)
class Answering:
    """Which raw columns are read from a validated row, and the names of the answer's two fields."""

    columns: tuple[str, ...]
    prediction: str
    probability: str


#: The seed's contract (``/predict``, ``/predict/batch``): Titanic columns, survived/probability_survive.
TITANIC = Answering(COLUMN_NAMES, "survived", "probability_survive")


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
    request_ids: Sequence[str]

    def log_to(self, prediction_log: PredictionLog | None) -> None:
        """Queue the passengers on the prediction log (never blocks: see :meth:`PredictionLog.append`)."""
        if prediction_log is not None:
            prediction_log.append(
                self.passengers,
                self.probabilities,
                self.survived,
                self.version,
                request_ids=self.request_ids,
            )


def score(
    loaded: LoadedModel,
    passengers: Sequence[Mapping[str, Any]],
    metrics: DatasetMetrics,
    request_ids: Sequence[str],
    answering: Answering = TITANIC,
) -> Scored:
    """Score and count passengers, without logging them (the caller logs, e.g. after answering).

    ``request_ids`` (one per passenger, see :mod:`serving.request_ids`) go into the results, after the
    other fields, and into the log. ``answering`` names the columns read and the two answer fields
    (prediction: 1 for the positive class).
    ``survived`` is derived from the *rounded* probability, so a client checking
    ``survived == (probability_survive >= 0.5)`` on the answer always agrees with it. The results are plain
    JSON-ready values (the routes serialise them without a response model), so the contract's ranges are
    checked here: a probability outside [0, 1] (or NaN) raises :class:`InvalidProbabilityError`.
    """
    columns = {name: [p.get(name) for p in passengers] for name in answering.columns}
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
    predicted, probability = answering.prediction, answering.probability
    results = [
        {predicted: s, probability: p, "drift_alerts": a, "model_version": version, "request_id": r}
        for s, p, a, r in zip(survived, rounded, alerts, request_ids, strict=True)
    ]
    positives = sum(survived)
    if positives:
        metrics.predicted["1"].inc(positives)
    if len(survived) - positives:
        metrics.predicted["0"].inc(len(survived) - positives)
    drifted = len(alerts) - alerts.count(NO_DRIFT)
    if drifted:
        metrics.drift_alerts.inc(drifted)
    return Scored(passengers, results, probabilities, survived, version, request_ids)


#: A request waiting for its turn's model call: the model it took, its row, its id, its answer to come.
_Waiting = tuple[LoadedModel, Mapping[str, Any], str, asyncio.Future[dict[str, Any]]]


class RowCoalescer:
    """Scores the one-passenger requests that reach scoring in the same event-loop turn with one model call.

    Encoding and onnxruntime cost nearly as much for one row as for a few (about 160 us of a single-row
    request's 240 us in-process), so when several requests are ready at once (concurrent clients), each
    pays a share of one call instead of a whole call. Nothing waits for company: the requests of one turn
    are scored at the start of the next turn, so a lone request is scored at once. Answers are the same row
    by row (the model is vectorised: the batch endpoint answers what single requests answer), every request
    is scored by the model it took when it arrived, and a request whose row cannot be scored fails alone.
    All of it runs on the event loop's thread: no lock.
    """

    def __init__(
        self,
        metrics: DatasetMetrics,
        prediction_log: PredictionLog | None,
        answering: Callable[[LoadedModel], Answering] | None = None,
    ) -> None:
        self.metrics = metrics
        self.prediction_log = prediction_log
        self._answering = answering
        self._waiting: list[_Waiting] = []

    async def score_one(
        self, loaded: LoadedModel, passenger: Mapping[str, Any], request_id: str
    ) -> dict[str, Any]:
        """One passenger's result (with ``request_id``), scored by ``loaded`` and logged with the other
        requests of its turn.

        Raises what :func:`score` raises for this passenger (e.g. :class:`InvalidProbabilityError`).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._flush)
        self._waiting.append((loaded, passenger, request_id, future))
        return await future

    def _flush(self) -> None:
        waiting, self._waiting = self._waiting, []
        try:
            start = 0
            while start < len(waiting):  # one call per model (a reload may fall between two requests)
                loaded = waiting[start][0]
                end = start + 1
                while end < len(waiting) and waiting[end][0] is loaded:
                    end += 1
                self._score(loaded, waiting[start:end])
                start = end
        finally:  # whatever happened, no request may wait forever
            for *_, future in waiting:
                if not future.done():
                    future.set_exception(RuntimeError("the request was not scored"))

    def _score(self, loaded: LoadedModel, group: list[_Waiting]) -> None:
        try:
            answering = self._answering(loaded) if self._answering is not None else TITANIC
            rows = [passenger for _, passenger, _, _ in group]
            scored = score(loaded, rows, self.metrics, [rid for _, _, rid, _ in group], answering)
        except Exception as exc:  # the request(s) it concerns raise it as their own error
            if len(group) > 1:
                for item in group:  # find the row(s) at fault: every other request gets its answer
                    self._score(loaded, [item])
            elif not group[0][3].done():
                group[0][3].set_exception(exc)
            return
        self.metrics.predict_model_calls.inc()
        scored.log_to(self.prediction_log)
        for (*_, future), result in zip(group, scored.results, strict=True):
            if not future.done():  # a request cancelled meanwhile (client gone) needs no answer
                future.set_result(result)
