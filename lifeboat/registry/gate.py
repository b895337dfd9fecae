"""The promotion gate: a pure decision on holdout metrics (no MLflow, no I/O).

DESIGN.md, "The promotion gate". A challenger is promoted only when every check passes:

* **floors** — ROC-AUC and accuracy at least the configured minimum, always (also on the first run);
* **improvement** — with a champion, the primary metric beats the champion's on the same holdout by at least
  ``min_improvement`` (with a requirement of 0 or more an equal score is a rejection: a new version must earn
  its place; a negative requirement, an operator accepting a bounded regression, is taken literally);
* **guards** — accuracy, recall and Brier score may not regress beyond their tolerance (Brier: lower is
  better);
* **servability** — the serving artifact's parity with the training pipeline (max abs difference of
  probabilities) was measured and is within ``parity_tolerance``; missing parity means "not proven servable".

Every failing check contributes one sentence to :attr:`GateDecision.reasons` (all of them, not only the
first), with the numbers that made it fail. :meth:`GateDecision.to_tags` flattens the decision and every
number behind it into string tags for the model version (see
:func:`lifeboat.registry.promotion.evaluate_gate`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lifeboat.registry.evaluation import LOWER_IS_BETTER

if TYPE_CHECKING:
    from lifeboat.settings import Settings

#: Floating-point slack when comparing a difference with a threshold (0.8 - 0.795 is not exactly 0.005).
_EPSILON = 1e-12
#: MLflow accepts long tag values, but database columns of older schemas stop at 5000 characters.
MAX_TAG_LENGTH = 5000

DECISION_PROMOTE = "promote"
DECISION_REJECT = "reject"


@dataclass(frozen=True)
class GateConfig:
    """Thresholds of the gate; build it from the settings with :meth:`from_settings`."""

    min_roc_auc: float = 0.80
    min_accuracy: float = 0.75
    primary_metric: str = "roc_auc"
    min_improvement: float = 0.005
    accuracy_tolerance: float = 0.02
    recall_tolerance: float = 0.05
    brier_tolerance: float = 0.01
    parity_tolerance: float = 1e-5

    @classmethod
    def from_settings(cls, settings: Settings, overrides: Mapping[str, Any] | None = None) -> GateConfig:
        """The gate configured by ``LIFEBOAT_GATE_*`` and ``LIFEBOAT_PARITY_TOLERANCE``, then by ``overrides``
        (a dataset spec's ``gate`` section, by field name: ``DatasetSpec.gate.overrides()``)."""
        config = cls(
            min_roc_auc=settings.gate_min_roc_auc,
            min_accuracy=settings.gate_min_accuracy,
            primary_metric=settings.gate_primary_metric,
            min_improvement=settings.gate_min_improvement,
            accuracy_tolerance=settings.gate_guard_accuracy_tolerance,
            recall_tolerance=settings.gate_guard_recall_tolerance,
            brier_tolerance=settings.gate_guard_brier_tolerance,
            parity_tolerance=settings.parity_tolerance,
        )
        return dataclasses.replace(config, **overrides) if overrides else config

    @property
    def floors(self) -> dict[str, float]:
        """Metric -> minimum the challenger must reach, champion or not."""
        return {"roc_auc": self.min_roc_auc, "accuracy": self.min_accuracy}

    @property
    def guard_tolerances(self) -> dict[str, float]:
        """Guard metric -> largest regression against the champion that is still accepted."""
        return {
            "accuracy": self.accuracy_tolerance,
            "recall": self.recall_tolerance,
            "brier": self.brier_tolerance,
        }

    def threshold_tags(self) -> dict[str, str]:
        """The thresholds as tags, so a recorded decision says which rules it was judged by."""
        tags = {
            "gate.primary_metric": self.primary_metric,
            "gate.min_improvement": _number(self.min_improvement),
            "gate.parity_tolerance": _number(self.parity_tolerance),
        }
        tags.update({f"gate.floor.{name}": _number(value) for name, value in self.floors.items()})
        tags.update(
            {f"gate.tolerance.{name}": _number(value) for name, value in self.guard_tolerances.items()}
        )
        return tags


@dataclass
class GateDecision:
    """The outcome of the gate and every number behind it.

    ``reasons`` explains the outcome: when rejected, one sentence per failing check (all of them); when
    promoted, one sentence per passing check. ``notes`` carries context that is not a check (no champion, a
    champion that could not be loaded). ``deltas`` are ``challenger - champion`` for every metric both have
    (raw differences: for Brier and log loss a negative delta is an improvement).
    """

    passed: bool
    reasons: list[str]
    challenger: dict[str, float]
    champion: dict[str, float] | None
    deltas: dict[str, float]
    parity_max_abs_diff: float | None
    config: GateConfig
    notes: list[str] = field(default_factory=list)
    compared_on: str = ""
    challenger_version: str | None = None
    champion_version: str | None = None
    champion_unservable: bool = False

    @property
    def decision(self) -> str:
        """``"promote"`` or ``"reject"``."""
        return DECISION_PROMOTE if self.passed else DECISION_REJECT

    def summary(self) -> str:
        """One line for logs and the CLI."""
        return f"{self.decision}: " + "; ".join(self.reasons)

    def to_tags(self) -> dict[str, str]:
        """Flat string tags (``gate.*``) for the model version: the decision, its reasons and all numbers."""
        tags: dict[str, str] = {
            "gate.decision": self.decision,
            "gate.reasons": json.dumps(self.reasons),
            "gate.notes": json.dumps(self.notes),
            "gate.compared_on": self.compared_on or "unspecified",
            "gate.champion_version": self.champion_version or "none",
            "gate.champion_unservable": str(self.champion_unservable).lower(),
            "gate.parity_max_abs_diff": "missing"
            if self.parity_max_abs_diff is None
            else _number(self.parity_max_abs_diff),
        }
        if self.challenger_version is not None:
            tags["gate.challenger_version"] = self.challenger_version
        tags.update(self.config.threshold_tags())
        tags.update({f"gate.challenger.{k}": _number(v) for k, v in self.challenger.items()})
        tags.update({f"gate.champion.{k}": _number(v) for k, v in (self.champion or {}).items()})
        tags.update({f"gate.delta.{k}": _number(v) for k, v in self.deltas.items()})
        return {key: _truncate(value) for key, value in tags.items()}


def _number(value: float) -> str:
    """Exact, parseable text of a number (``repr`` keeps every digit; NaN stays ``nan``)."""
    return repr(float(value))


def _truncate(value: str) -> str:
    if len(value) <= MAX_TAG_LENGTH:
        return value
    return value[: MAX_TAG_LENGTH - 15] + "...[truncated]"


def _is_number(value: object) -> bool:
    """True for a finite real number (NaN, infinities, None, booleans and strings are not)."""
    if value is None or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _add(sentences: list[str], sentence: str | None) -> None:
    """Append ``sentence`` once (several checks may find the same missing metric)."""
    if sentence and sentence not in sentences:
        sentences.append(sentence)


def _check_metric_present(role: str, metrics: Mapping[str, float], name: str) -> str | None:
    """A sentence when ``metrics[name]`` is missing or NaN, else None."""
    if name not in metrics:
        return f"{role} metric {name} is missing: cannot be judged"
    if not _is_number(metrics[name]):
        return f"{role} {name} is {metrics[name]!r}, not a finite number: cannot be judged"
    return None


def decide(
    challenger: Mapping[str, float],
    champion: Mapping[str, float] | None,
    parity_max_abs_diff: float | None,
    config: GateConfig,
    *,
    notes: Sequence[str] = (),
    compared_on: str = "",
    challenger_version: str | None = None,
    champion_version: str | None = None,
    champion_unservable: bool = False,
) -> GateDecision:
    """Judge ``challenger`` metrics against the floors, the ``champion``'s (None: no champion) and parity.

    Both metric mappings must come from the same holdout rows. The keyword-only arguments are context that is
    recorded with the decision but never changes it.
    """
    failures: list[str] = []
    passes: list[str] = []

    # Any metric that is not a finite number means the evaluation itself went wrong.
    for role, metrics in (("challenger", challenger), ("champion", champion or {})):
        for name in metrics:
            _add(failures, _check_metric_present(role, metrics, name))

    # Absolute floors: always, with or without a champion.
    for name, floor in config.floors.items():
        problem = _check_metric_present("challenger", challenger, name)
        if problem:
            _add(failures, problem)
            continue
        value = float(challenger[name])
        if value + _EPSILON < floor:
            failures.append(f"{name} {value:.4f} < floor {floor:.4f}")
        else:
            passes.append(f"{name} {value:.4f} >= floor {floor:.4f}")

    # Comparison with the champion: required improvement on the primary metric, guards on the others.
    deltas: dict[str, float] = {}
    if champion is not None:
        for name in sorted(set(challenger) & set(champion)):
            if _is_number(challenger[name]) and _is_number(champion[name]):
                deltas[name] = float(challenger[name]) - float(champion[name])
        _check_improvement(challenger, champion, config, failures, passes)
        _check_guards(challenger, champion, config, failures, passes)

    # Servability: parity must have been measured and be within tolerance.
    if parity_max_abs_diff is None or not _is_number(parity_max_abs_diff):
        shown = "missing" if parity_max_abs_diff is None else repr(parity_max_abs_diff)
        failures.append(
            f"parity max abs diff is {shown}: the serving artifact is not proven to reproduce the "
            "training pipeline (not servable)"
        )
    elif parity_max_abs_diff > config.parity_tolerance:
        failures.append(
            f"parity max abs diff {parity_max_abs_diff:.3g} > tolerance {config.parity_tolerance:.3g}"
        )
    else:
        passes.append(
            f"parity max abs diff {parity_max_abs_diff:.3g} <= tolerance {config.parity_tolerance:.3g}"
        )

    all_notes = list(notes)
    if champion is None and not champion_unservable:
        all_notes.append("no champion: judged on the floors and parity only")
    passed = not failures
    return GateDecision(
        passed=passed,
        reasons=passes if passed else failures,
        challenger={k: _as_float(v) for k, v in challenger.items()},
        champion=None if champion is None else {k: _as_float(v) for k, v in champion.items()},
        deltas=deltas,
        parity_max_abs_diff=None if parity_max_abs_diff is None else _as_float(parity_max_abs_diff),
        config=config,
        notes=all_notes,
        compared_on=compared_on,
        challenger_version=challenger_version,
        champion_version=champion_version,
        champion_unservable=champion_unservable,
    )


def _as_float(value: object) -> float:
    """``float(value)``, or NaN for what cannot be one (it is reported as a failure, never raised)."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _improvement(name: str, challenger_value: float, champion_value: float) -> float:
    """How much better the challenger is (positive = better), whatever the metric's direction."""
    if name in LOWER_IS_BETTER:
        return champion_value - challenger_value
    return challenger_value - champion_value


def _check_improvement(
    challenger: Mapping[str, float],
    champion: Mapping[str, float],
    config: GateConfig,
    failures: list[str],
    passes: list[str],
) -> None:
    name = config.primary_metric
    problems = [
        p
        for p in (
            _check_metric_present("challenger", challenger, name),
            _check_metric_present("champion", champion, name),
        )
        if p
    ]
    if problems:
        for problem in problems:
            _add(failures, problem)
        return
    new, old = float(challenger[name]), float(champion[name])
    gain = _improvement(name, new, old)
    text = f"{name} {new:.4f} vs champion {old:.4f}: improvement {gain:+.4f}"
    required = f"required {config.min_improvement:+.4f}"
    # A non-negative requirement never promotes an equal model; a negative one (an operator accepting a
    # bounded regression, e.g. to refresh onto new data) is taken literally.
    earned = gain > _EPSILON or config.min_improvement < 0
    if earned and gain + _EPSILON >= config.min_improvement:
        passes.append(f"{text} >= {required}")
    elif abs(gain) <= _EPSILON:
        failures.append(f"{text} < {required} (equal to the champion: no improvement)")
    else:
        failures.append(f"{text} < {required}")


def _check_guards(
    challenger: Mapping[str, float],
    champion: Mapping[str, float],
    config: GateConfig,
    failures: list[str],
    passes: list[str],
) -> None:
    for name, tolerance in config.guard_tolerances.items():
        problems = [
            p
            for p in (
                _check_metric_present("challenger", challenger, name),
                _check_metric_present("champion", champion, name),
            )
            if p
        ]
        if problems:
            for problem in problems:
                _add(failures, problem)
            continue
        new, old = float(challenger[name]), float(champion[name])
        regression = -_improvement(name, new, old)
        direction = "lower is better" if name in LOWER_IS_BETTER else "higher is better"
        if regression > tolerance + _EPSILON:
            failures.append(
                f"guard {name} regressed by {regression:.4f} ({old:.4f} -> {new:.4f}, {direction}), "
                f"tolerance {tolerance:.4f}"
            )
        else:
            passes.append(f"guard {name} {old:.4f} -> {new:.4f} within tolerance {tolerance:.4f}")
