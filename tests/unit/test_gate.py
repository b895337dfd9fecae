"""The promotion gate as a decision table (pure: no MLflow)."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import pytest

from lifeboat.registry.gate import GateConfig, GateDecision, decide
from lifeboat.settings import Settings

pytestmark = pytest.mark.unit

CONFIG = GateConfig(
    min_roc_auc=0.80,
    min_accuracy=0.75,
    primary_metric="roc_auc",
    min_improvement=0.005,
    accuracy_tolerance=0.02,
    recall_tolerance=0.05,
    brier_tolerance=0.01,
    parity_tolerance=1e-5,
)
CHAMPION = {
    "roc_auc": 0.840,
    "pr_auc": 0.800,
    "accuracy": 0.800,
    "precision": 0.780,
    "recall": 0.700,
    "f1": 0.740,
    "brier": 0.150,
    "log_loss": 0.460,
}
GOOD_PARITY = 2e-7


def metrics(**changes: float) -> dict[str, float]:
    """The champion's metrics with some values changed."""
    return {**CHAMPION, **changes}


# (id, challenger, champion, parity, passed, substrings that must appear in the reasons)
CASES: list[tuple[str, dict[str, float], dict[str, float] | None, float | None, bool, list[str]]] = [
    ("first run passes the floors", metrics(), None, GOOD_PARITY, True, ["roc_auc 0.8400 >= floor 0.8000"]),
    (
        "first run below the roc_auc floor",
        metrics(roc_auc=0.79),
        None,
        GOOD_PARITY,
        False,
        ["roc_auc 0.7900 < floor 0.8000"],
    ),
    (
        "first run below the accuracy floor",
        metrics(accuracy=0.74),
        None,
        GOOD_PARITY,
        False,
        ["accuracy 0.7400 < floor 0.7500"],
    ),
    (
        "better challenger is promoted",
        metrics(roc_auc=0.850),
        CHAMPION,
        GOOD_PARITY,
        True,
        ["improvement +0.0100 >= required +0.0050"],
    ),
    (
        "exactly the required improvement is enough",
        metrics(roc_auc=0.845),
        CHAMPION,
        GOOD_PARITY,
        True,
        ["improvement +0.0050 >= required +0.0050"],
    ),
    (
        "equal challenger is rejected",
        metrics(),
        CHAMPION,
        GOOD_PARITY,
        False,
        ["equal to the champion: no improvement"],
    ),
    (
        "worse challenger is rejected",
        metrics(roc_auc=0.820),
        CHAMPION,
        GOOD_PARITY,
        False,
        ["improvement -0.0200 < required +0.0050"],
    ),
    (
        "improvement below the required margin",
        metrics(roc_auc=0.843),
        CHAMPION,
        GOOD_PARITY,
        False,
        ["improvement +0.0030 < required +0.0050"],
    ),
    (
        "floors apply even when the champion is worse",
        metrics(roc_auc=0.79),
        metrics(roc_auc=0.70),
        GOOD_PARITY,
        False,
        ["roc_auc 0.7900 < floor 0.8000"],
    ),
    (
        "accuracy guard regression",
        metrics(roc_auc=0.850, accuracy=0.770),
        CHAMPION,
        GOOD_PARITY,
        False,
        ["guard accuracy regressed by 0.0300 (0.8000 -> 0.7700"],
    ),
    (
        "accuracy regression within tolerance",
        metrics(roc_auc=0.850, accuracy=0.785),
        CHAMPION,
        GOOD_PARITY,
        True,
        ["guard accuracy 0.8000 -> 0.7850 within tolerance 0.0200"],
    ),
    (
        "recall guard regression",
        metrics(roc_auc=0.850, recall=0.640),
        CHAMPION,
        GOOD_PARITY,
        False,
        ["guard recall regressed by 0.0600 (0.7000 -> 0.6400"],
    ),
    (
        "brier guard regression (higher brier is worse)",
        metrics(roc_auc=0.850, brier=0.165),
        CHAMPION,
        GOOD_PARITY,
        False,
        ["guard brier regressed by 0.0150 (0.1500 -> 0.1650, lower is better)"],
    ),
    (
        "a much lower brier is an improvement, not a regression",
        metrics(roc_auc=0.850, brier=0.100),
        CHAMPION,
        GOOD_PARITY,
        True,
        ["guard brier 0.1500 -> 0.1000 within tolerance"],
    ),
    (
        "parity beyond tolerance",
        metrics(roc_auc=0.850),
        CHAMPION,
        1e-3,
        False,
        ["parity max abs diff 0.001 > tolerance 1e-05"],
    ),
    (
        "parity missing on a first run",
        metrics(),
        None,
        None,
        False,
        ["parity max abs diff is missing", "not servable"],
    ),
    ("parity NaN", metrics(roc_auc=0.850), CHAMPION, math.nan, False, ["parity max abs diff is nan"]),
    (
        "NaN challenger metric",
        metrics(roc_auc=math.nan),
        CHAMPION,
        GOOD_PARITY,
        False,
        ["challenger roc_auc is nan, not a finite number"],
    ),
    (
        "NaN in a metric no rule compares still rejects",
        metrics(roc_auc=0.850, log_loss=math.nan),
        CHAMPION,
        GOOD_PARITY,
        False,
        ["challenger log_loss is nan"],
    ),
    (
        "NaN champion metric cannot be compared",
        metrics(roc_auc=0.850),
        metrics(roc_auc=math.nan),
        GOOD_PARITY,
        False,
        ["champion roc_auc is nan"],
    ),
    (
        "missing challenger metric",
        {k: v for k, v in CHAMPION.items() if k != "recall"},
        CHAMPION,
        GOOD_PARITY,
        False,
        ["challenger metric recall is missing"],
    ),
]


@pytest.mark.parametrize(
    ("challenger", "champion", "parity", "passed", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_gate_table(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    parity: float | None,
    passed: bool,
    expected: list[str],
) -> None:
    decision = decide(challenger, champion, parity, CONFIG)

    assert decision.passed is passed, decision.reasons
    assert decision.decision == ("promote" if passed else "reject")
    for text in expected:
        assert any(text in reason for reason in decision.reasons), (text, decision.reasons)


def test_first_run_is_judged_on_floors_and_parity_only() -> None:
    # Far below anything a champion would accept, but above the floors: with no champion that is enough.
    decision = decide(
        metrics(roc_auc=0.801, accuracy=0.751, recall=0.1, brier=0.3), None, GOOD_PARITY, CONFIG
    )

    assert decision.passed
    assert decision.champion is None
    assert decision.deltas == {}
    assert decision.notes == ["no champion: judged on the floors and parity only"]


def test_multiple_failures_are_all_reported() -> None:
    challenger = metrics(roc_auc=0.70, accuracy=0.70, recall=0.50)
    decision = decide(challenger, CHAMPION, None, CONFIG)

    assert not decision.passed
    assert decision.reasons == [
        "roc_auc 0.7000 < floor 0.8000",
        "accuracy 0.7000 < floor 0.7500",
        "roc_auc 0.7000 vs champion 0.8400: improvement -0.1400 < required +0.0050",
        "guard accuracy regressed by 0.1000 (0.8000 -> 0.7000, higher is better), tolerance 0.0200",
        "guard recall regressed by 0.2000 (0.7000 -> 0.5000, higher is better), tolerance 0.0500",
        "parity max abs diff is missing: the serving artifact is not proven to reproduce the training "
        "pipeline (not servable)",
    ]


def test_passed_decision_lists_every_passing_check() -> None:
    decision = decide(metrics(roc_auc=0.850), CHAMPION, GOOD_PARITY, CONFIG)

    assert decision.passed
    # two floors, the improvement, three guards, parity
    assert len(decision.reasons) == 7


def test_lower_is_better_primary_metric() -> None:
    config = GateConfig(primary_metric="brier", min_improvement=0.005)

    better = decide(metrics(brier=0.140), CHAMPION, GOOD_PARITY, config)
    worse = decide(metrics(brier=0.152), CHAMPION, GOOD_PARITY, config)

    assert better.passed, better.reasons
    assert not worse.passed
    assert any("brier 0.1520 vs champion 0.1500: improvement -0.0020" in r for r in worse.reasons)


def test_equal_is_rejected_even_when_no_margin_is_required() -> None:
    config = dataclasses.replace(CONFIG, min_improvement=0.0)

    assert not decide(metrics(), CHAMPION, GOOD_PARITY, config).passed
    assert decide(metrics(roc_auc=0.8401), CHAMPION, GOOD_PARITY, config).passed


def test_a_negative_requirement_accepts_equal_and_bounded_regression() -> None:
    config = dataclasses.replace(CONFIG, min_improvement=-0.01)

    assert decide(metrics(), CHAMPION, GOOD_PARITY, config).passed
    assert decide(metrics(roc_auc=0.832), CHAMPION, GOOD_PARITY, config).passed
    worse = decide(metrics(roc_auc=0.829), CHAMPION, GOOD_PARITY, config)
    assert not worse.passed
    assert any("improvement -0.0110 < required -0.0100" in r for r in worse.reasons)


def test_deltas_are_challenger_minus_champion() -> None:
    decision = decide(metrics(roc_auc=0.850, brier=0.140), CHAMPION, GOOD_PARITY, CONFIG)

    assert decision.deltas["roc_auc"] == pytest.approx(0.010)
    assert decision.deltas["brier"] == pytest.approx(-0.010)
    assert set(decision.deltas) == set(CHAMPION)


def test_context_is_recorded_but_never_changes_the_decision() -> None:
    plain = decide(metrics(roc_auc=0.79), None, GOOD_PARITY, CONFIG)
    with_context = decide(
        metrics(roc_auc=0.79),
        None,
        GOOD_PARITY,
        CONFIG,
        notes=["champion version 3 cannot be loaded"],
        compared_on="holdout of 178 rows",
        challenger_version="4",
        champion_version="3",
        champion_unservable=True,
    )

    assert plain.passed is with_context.passed is False
    assert plain.reasons == with_context.reasons
    assert with_context.notes == ["champion version 3 cannot be loaded"]


def _tags(decision: GateDecision) -> dict[str, Any]:
    tags = decision.to_tags()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()), tags
    return tags


def test_to_tags_with_a_champion_are_flat_strings_with_every_number() -> None:
    challenger = metrics(roc_auc=0.850, brier=0.140)
    decision = decide(
        challenger,
        CHAMPION,
        GOOD_PARITY,
        CONFIG,
        compared_on="holdout of 178 rows",
        challenger_version="5",
        champion_version="4",
    )
    tags = _tags(decision)

    assert tags["gate.decision"] == "promote"
    assert json.loads(tags["gate.reasons"]) == decision.reasons
    assert tags["gate.compared_on"] == "holdout of 178 rows"
    assert tags["gate.challenger_version"] == "5"
    assert tags["gate.champion_version"] == "4"
    assert tags["gate.champion_unservable"] == "false"
    assert float(tags["gate.parity_max_abs_diff"]) == GOOD_PARITY
    for name, value in challenger.items():
        assert float(tags[f"gate.challenger.{name}"]) == value
        assert float(tags[f"gate.champion.{name}"]) == CHAMPION[name]
    assert float(tags["gate.delta.roc_auc"]) == pytest.approx(0.010)
    assert float(tags["gate.delta.brier"]) == pytest.approx(-0.010)
    assert tags["gate.primary_metric"] == "roc_auc"
    assert float(tags["gate.min_improvement"]) == 0.005
    assert float(tags["gate.floor.roc_auc"]) == 0.80
    assert float(tags["gate.floor.accuracy"]) == 0.75
    assert float(tags["gate.tolerance.brier"]) == 0.01
    assert float(tags["gate.parity_tolerance"]) == 1e-5


def test_to_tags_of_a_rejected_first_run() -> None:
    decision = decide(metrics(roc_auc=0.79), None, None, CONFIG)
    tags = _tags(decision)

    assert tags["gate.decision"] == "reject"
    assert tags["gate.champion_version"] == "none"
    assert tags["gate.parity_max_abs_diff"] == "missing"
    assert not [key for key in tags if key.startswith(("gate.champion.", "gate.delta."))]
    assert json.loads(tags["gate.notes"]) == ["no champion: judged on the floors and parity only"]
    assert len(json.loads(tags["gate.reasons"])) == 2


def test_long_reasons_are_truncated_to_fit_a_tag() -> None:
    decision = decide(metrics(), None, GOOD_PARITY, CONFIG, notes=["x" * 20_000])

    assert len(decision.to_tags()["gate.notes"]) <= 5000


def test_config_from_settings() -> None:
    settings = Settings(
        gate_min_roc_auc=0.9,
        gate_min_accuracy=0.8,
        gate_min_improvement=0.01,
        gate_primary_metric="pr_auc",
        gate_guard_accuracy_tolerance=0.03,
        gate_guard_recall_tolerance=0.04,
        gate_guard_brier_tolerance=0.02,
        parity_tolerance=1e-4,
    )

    config = GateConfig.from_settings(settings)

    assert config == GateConfig(
        min_roc_auc=0.9,
        min_accuracy=0.8,
        primary_metric="pr_auc",
        min_improvement=0.01,
        accuracy_tolerance=0.03,
        recall_tolerance=0.04,
        brier_tolerance=0.02,
        parity_tolerance=1e-4,
    )
    assert config.floors == {"roc_auc": 0.9, "accuracy": 0.8}
    assert config.guard_tolerances == {"accuracy": 0.03, "recall": 0.04, "brier": 0.02}


def test_a_dataset_spec_overrides_the_thresholds_it_sets() -> None:
    from lifeboat.dataset.models import Gate

    settings = Settings(gate_min_roc_auc=0.8, gate_min_accuracy=0.75, parity_tolerance=1e-5)
    overrides = Gate(min_roc_auc=0.85, primary_metric="pr_auc").overrides()

    config = GateConfig.from_settings(settings, overrides)

    assert (config.min_roc_auc, config.primary_metric) == (0.85, "pr_auc")
    assert (config.min_accuracy, config.parity_tolerance) == (0.75, 1e-5)  # not in the spec: the settings'
    assert GateConfig.from_settings(settings, {}) == GateConfig.from_settings(settings)
