"""A dataset's retraining policy: the rules of its spec's ``retrain`` section, evaluated with their figures.

A run retrains when any rule fires (the first that fires is the run's reason; every rule's verdict and
numbers are recorded):

* ``drift``: the drift report of the new labelled data found dataset drift (and there is new data to learn
  it from);
* ``new_rows``: at least ``min_new_rows`` labelled rows were added since the champion was trained;
* ``performance``: the live metric (predictions joined with their feedback labels) is below the champion's
  holdout figure by more than ``max_drop``, over at least ``min_labelled_rows`` labelled rows;
* ``schedule``: ``on_schedule`` is set and the run is the scheduled one.

A spec without a ``retrain`` section keeps the global ``LIFEBOAT_DRIFT_POLICY``
(:func:`lifeboat.monitoring.drift.should_retrain`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from lifeboat.dataset.models import Retrain


class LiveFigures(BaseModel):
    """Live quality of the served champion over its labelled predictions (None: not measurable)."""

    model_config = ConfigDict(frozen=True)

    labelled_rows: int
    accuracy: float | None = None
    roc_auc: float | None = None


class RuleVerdict(BaseModel):
    """One rule: did it fire, why (a sentence with the numbers), and the numbers themselves."""

    model_config = ConfigDict(frozen=True)

    rule: str
    fired: bool
    detail: str
    figures: dict[str, Any] = {}


class PolicyInputs(BaseModel):
    """What the rules look at: the drift verdict, the new data, the live figures, the kind of run."""

    model_config = ConfigDict(frozen=True)

    drift: Mapping[str, Any] | None = None
    new_data: bool = False
    new_rows: int | None = None
    live: LiveFigures | None = None
    holdout: Mapping[str, float] = {}
    scheduled: bool = False


def _drift_rule(policy: Retrain, inputs: PolicyInputs) -> RuleVerdict:
    drift = dict(inputs.drift or {})
    columns = list(drift.get("drifted_columns") or [])
    figures = {"status": drift.get("status"), "share_drifted": drift.get("share_drifted"), "columns": columns}
    if not policy.on_drift:
        return RuleVerdict(rule="drift", fired=False, detail="on_drift is off", figures=figures)
    if not drift or drift.get("status") in (None, "skipped"):
        return RuleVerdict(rule="drift", fired=False, detail="no drift report", figures=figures)
    if drift.get("status") == "not_enough_data":
        return RuleVerdict(rule="drift", fired=False, detail="not enough data for a verdict", figures=figures)
    if not drift.get("dataset_drift"):
        share = float(drift.get("share_drifted") or 0.0)
        return RuleVerdict(
            rule="drift", fired=False, detail=f"no dataset drift (share {share:.2f})", figures=figures
        )
    if not inputs.new_data:
        detail = f"drift in {', '.join(columns) or 'the data'} but no new labelled data to learn it from"
        return RuleVerdict(rule="drift", fired=False, detail=detail, figures=figures)
    detail = f"drift in the new labelled data: {', '.join(columns) or 'dataset drift'}"
    return RuleVerdict(rule="drift", fired=True, detail=detail, figures=figures)


def _new_rows_rule(policy: Retrain, inputs: PolicyInputs) -> RuleVerdict:
    threshold = policy.min_new_rows
    figures = {"new_rows": inputs.new_rows, "min_new_rows": threshold}
    if threshold is None:
        return RuleVerdict(rule="new_rows", fired=False, detail="min_new_rows is not set", figures=figures)
    if inputs.new_rows is None:
        detail = "the champion records no row count (trained before lifeboat recorded it)"
        return RuleVerdict(rule="new_rows", fired=False, detail=detail, figures=figures)
    fired = inputs.new_rows >= threshold
    relation = ">=" if fired else "<"
    detail = f"{inputs.new_rows} new labelled rows since the champion {relation} min_new_rows {threshold}"
    return RuleVerdict(rule="new_rows", fired=fired, detail=detail, figures=figures)


def _performance_rule(policy: Retrain, inputs: PolicyInputs) -> RuleVerdict:
    rule = policy.performance
    if rule is None:
        return RuleVerdict(rule="performance", fired=False, detail="no performance rule")
    live = inputs.live
    holdout = inputs.holdout.get(f"holdout_{rule.metric}")
    figures: dict[str, Any] = {
        "metric": rule.metric,
        "live": getattr(live, rule.metric) if live else None,
        "holdout": holdout,
        "labelled_rows": live.labelled_rows if live else 0,
        "max_drop": rule.max_drop,
        "min_labelled_rows": rule.min_labelled_rows,
    }
    if live is None or live.labelled_rows < rule.min_labelled_rows:
        rows = live.labelled_rows if live else 0
        detail = f"{rows} labelled rows < min_labelled_rows {rule.min_labelled_rows}"
        return RuleVerdict(rule="performance", fired=False, detail=detail, figures=figures)
    value = figures["live"]
    if value is None or holdout is None:
        detail = f"live {rule.metric} or the champion's holdout figure is not available"
        return RuleVerdict(rule="performance", fired=False, detail=detail, figures=figures)
    drop = float(holdout) - float(value)
    figures["drop"] = round(drop, 6)
    fired = drop > rule.max_drop
    relation = ">" if fired else "<="
    detail = (
        f"live {rule.metric} {value:.4f} over {live.labelled_rows} labelled rows vs holdout {holdout:.4f}: "
        f"drop {drop:.4f} {relation} max_drop {rule.max_drop}"
    )
    return RuleVerdict(rule="performance", fired=fired, detail=detail, figures=figures)


def _schedule_rule(policy: Retrain, inputs: PolicyInputs) -> RuleVerdict:
    if not policy.on_schedule:
        return RuleVerdict(rule="schedule", fired=False, detail="on_schedule is off")
    if not inputs.scheduled:
        return RuleVerdict(rule="schedule", fired=False, detail="not the scheduled run")
    return RuleVerdict(rule="schedule", fired=True, detail="on_schedule: the scheduled run retrains")


class PolicyDecision(BaseModel):
    """Whether the policy retrains, the rule that decided (None: none fired) and every rule's verdict."""

    model_config = ConfigDict(frozen=True)

    train: bool
    rule: str | None
    reason: str
    verdicts: list[RuleVerdict]


def evaluate(policy: Retrain, inputs: PolicyInputs) -> PolicyDecision:
    """Every rule of ``policy`` on ``inputs``; retrain when any fires (the first one is the reason)."""
    verdicts = [
        _performance_rule(policy, inputs),
        _drift_rule(policy, inputs),
        _new_rows_rule(policy, inputs),
        _schedule_rule(policy, inputs),
    ]
    fired = [v for v in verdicts if v.fired]
    if fired:
        return PolicyDecision(
            train=True, rule=fired[0].rule, reason=f"{fired[0].rule}: {fired[0].detail}", verdicts=verdicts
        )
    reason = "no retraining rule fired: " + "; ".join(f"{v.rule}: {v.detail}" for v in verdicts)
    return PolicyDecision(train=False, rule=None, reason=reason, verdicts=verdicts)
