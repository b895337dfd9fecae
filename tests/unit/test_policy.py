"""A dataset's retraining rules (spec ``retrain``): each rule's verdict with its numbers, the first that
fires decides; the alerts monitoring sends whether or not a retraining follows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from lifeboat.dataset.models import PerformanceRule, Retrain
from lifeboat.dataset.spec import DatasetSpecError, load_spec
from lifeboat.monitoring.policy import LiveFigures, PolicyInputs, evaluate
from lifeboat.orchestration import monitor_steps, retrain
from lifeboat.orchestration.results import DriftStep, PerformanceStep, PulledData
from lifeboat.settings import Settings
from tests.conftest import REPO_ROOT
from tests.support.http_stub import http_stub

pytestmark = pytest.mark.unit

DRIFT = {"status": "drift", "dataset_drift": True, "drifted_columns": ["Age", "Fare"], "share_drifted": 0.4}
NO_DRIFT = {"status": "no_drift", "dataset_drift": False, "drifted_columns": [], "share_drifted": 0.1}
HOLDOUT = {"holdout_accuracy": 0.84, "holdout_roc_auc": 0.88}
RULES = Retrain(
    min_new_rows=500, performance=PerformanceRule(metric="accuracy", max_drop=0.05, min_labelled_rows=200)
)


def verdicts(decision: object) -> dict[str, bool]:
    return {v.rule: v.fired for v in decision.verdicts}  # type: ignore[attr-defined]


def test_nothing_fires_on_clean_small_data_and_the_reason_lists_every_rule() -> None:
    decision = evaluate(RULES, PolicyInputs(drift=NO_DRIFT, new_data=True, new_rows=120, holdout=HOLDOUT))
    assert decision.train is False
    assert decision.rule is None
    assert verdicts(decision) == {"performance": False, "drift": False, "new_rows": False, "schedule": False}
    assert "new_rows: 120 new labelled rows since the champion < min_new_rows 500" in decision.reason
    assert "performance: 0 labelled rows < min_labelled_rows 200" in decision.reason


def test_enough_new_rows_retrain_and_the_numbers_are_recorded() -> None:
    decision = evaluate(RULES, PolicyInputs(drift=NO_DRIFT, new_data=True, new_rows=500))
    assert (decision.train, decision.rule) == (True, "new_rows")
    assert decision.reason == "new_rows: 500 new labelled rows since the champion >= min_new_rows 500"
    rows = next(v for v in decision.verdicts if v.rule == "new_rows")
    assert rows.figures == {"new_rows": 500, "min_new_rows": 500}


def test_drift_needs_new_labelled_data_to_learn_it_from() -> None:
    assert evaluate(RULES, PolicyInputs(drift=DRIFT, new_data=True, new_rows=10)).rule == "drift"
    stale = evaluate(RULES, PolicyInputs(drift=DRIFT, new_data=False, new_rows=0))
    assert stale.train is False
    assert "drift: drift in Age, Fare but no new labelled data to learn it from" in stale.reason
    assert evaluate(Retrain(on_drift=False), PolicyInputs(drift=DRIFT, new_data=True)).train is False


@pytest.mark.parametrize(
    ("accuracy", "rows", "fired"),
    [(0.78, 250, True), (0.80, 250, False), (0.70, 199, False)],  # drop 0.06 > 0.05; 0.04; too few rows
)
def test_a_live_drop_beyond_the_margin_over_enough_rows_retrains(
    accuracy: float, rows: int, fired: bool
) -> None:
    live = LiveFigures(labelled_rows=rows, accuracy=accuracy, roc_auc=0.8)
    decision = evaluate(RULES, PolicyInputs(drift=NO_DRIFT, live=live, holdout=HOLDOUT))
    assert decision.train is fired
    verdict = next(v for v in decision.verdicts if v.rule == "performance")
    assert verdict.fired is fired
    assert verdict.figures["holdout"] == 0.84
    if rows >= 200:
        assert verdict.figures["drop"] == pytest.approx(0.84 - accuracy)
    if fired:
        assert decision.reason == (
            "performance: live accuracy 0.7800 over 250 labelled rows vs holdout 0.8400: "
            "drop 0.0600 > max_drop 0.05"
        )


def test_the_schedule_rule_fires_only_for_the_scheduled_run() -> None:
    rules = Retrain(on_schedule=True)
    assert evaluate(rules, PolicyInputs(scheduled=True)).rule == "schedule"
    assert evaluate(rules, PolicyInputs(scheduled=False)).train is False
    assert evaluate(Retrain(), PolicyInputs(scheduled=True)).train is False


def test_the_spec_refuses_a_bad_retrain_section_naming_the_key(tmp_path: Path) -> None:
    spec = yaml.safe_load((REPO_ROOT / "data" / "titanic" / "dataset.yaml").read_text())
    spec["retrain"] = {"min_new_rows": 0}
    path = tmp_path / "dataset.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(DatasetSpecError, match=r"retrain\.min_new_rows"):
        load_spec(path)
    spec["retrain"] = {"performance": {"metric": "f1"}}
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(DatasetSpecError, match=r"retrain\.performance\.metric"):
        load_spec(path)


def spec_with_rules(tmp_path: Path, rules: dict[str, object]) -> Path:
    spec = yaml.safe_load((REPO_ROOT / "data" / "titanic" / "dataset.yaml").read_text())
    spec["retrain"] = rules
    path = tmp_path / "dataset.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


PULLED = PulledData(
    files=["a.csv"],
    rows=1400,
    data_fingerprint="d2",
    champion_version="3",
    champion_data_fingerprint="d1",
    new_data=True,
    new_rows=509,
    champion_holdout=HOLDOUT,
)


def test_the_runs_decision_records_the_rule_and_every_verdict(tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path / "state", dataset_spec=spec_with_rules(tmp_path, {"min_new_rows": 500})
    )
    params = retrain.RunParams.from_params({}, settings)
    drift = DriftStep(name="r", status="no_drift", dataset_drift=False, message="none")
    decision = retrain.decide_training(settings, params, PULLED, drift)
    assert (decision.train, decision.rule) == (True, "new_rows")
    assert [(v["rule"], v["fired"]) for v in decision.verdicts] == [
        ("performance", False),
        ("drift", False),
        ("new_rows", True),
        ("schedule", False),
    ]
    small = PULLED.model_copy(update={"new_rows": 40})
    assert retrain.decide_training(settings, params, small, drift).train is False


def test_live_drift_and_a_performance_drop_alert_even_without_retraining(tmp_path: Path) -> None:
    rules = {
        "on_drift": True,
        "performance": {"metric": "accuracy", "max_drop": 0.05, "min_labelled_rows": 100},
    }
    with http_stub() as stub:
        stub.answer("POST", "/hook", 200, {"ok": True})
        settings = Settings(
            state_dir=tmp_path / "state",
            dataset_spec=spec_with_rules(tmp_path, rules),
            alert_webhook_url=f"{stub.url}/hook",
        )
        params = retrain.RunParams.from_params({}, settings)
        live_drift = DriftStep(
            name="r",
            status="drift",
            dataset_drift=True,
            drifted_columns=["Sex"],
            share_drifted=0.3,
            message="drift",
            current_source="requests: last 400 within 24 h (log.db)",
        )
        live = retrain.decide_training(
            settings, params, PULLED.model_copy(update={"new_data": False}), live_drift
        )
        assert live.train is False  # drift in live traffic, no new labelled data: nothing to retrain on
        assert monitor_steps.alert_on_monitoring(settings, live_drift, live) == ["live_drift"]
        dropped = retrain.decide_training(
            settings,
            params,
            PULLED.model_copy(update={"new_data": False}),
            DriftStep(name="r", status="no_drift", dataset_drift=False, message="none"),
            live=LiveFigures(labelled_rows=300, accuracy=0.70),
        )
        assert (dropped.train, dropped.rule) == (True, "performance")
        quiet = DriftStep(name="r", status="no_drift", dataset_drift=False, message="none")
        ok = PerformanceStep(
            name="p", status="ok", message="live accuracy 0.8300: drop 0.01 <= max_drop 0.05"
        )
        assert monitor_steps.alert_on_monitoring(settings, quiet, dropped, ok) == []
        degraded = PerformanceStep(
            name="p",
            status="degraded",
            message=(
                "live accuracy 0.7000 over 300 labelled rows vs holdout 0.8400: drop 0.1400 > max_drop 0.05"
            ),
            model_version="3",
            labelled_rows=300,
            accuracy=0.70,
            metric="accuracy",
            drop=0.14,
        )
        assert monitor_steps.alert_on_monitoring(settings, quiet, dropped, degraded) == ["performance_drop"]
    bodies = [r["json"] for r in stub.received]
    assert [(b["kind"], b["dataset"]) for b in bodies] == [
        ("live_drift", "titanic"),
        ("performance_drop", "titanic"),
    ]
    assert bodies[0]["text"].startswith(
        "lifeboat: titanic: drift in live traffic (Sex); this run: no retraining rule fired"
    )
    assert "live accuracy 0.7000 over 300 labelled rows vs holdout 0.8400" in bodies[1]["text"]
    assert json.loads(bodies[1]["figures"])["drop"] == 0.14


def test_without_retrain_rules_a_live_performance_drop_retrains_with_the_default_rule(tmp_path: Path) -> None:
    """Titanic's spec has no retrain section: the global drift policy, and the default performance rule
    (accuracy, max_drop 0.05, at least 200 labelled rows)."""
    settings = Settings(state_dir=tmp_path / "state")
    params = retrain.RunParams.from_params({}, settings)
    quiet = DriftStep(name="r", status="no_drift", dataset_drift=False, message="none")
    same = PULLED.model_copy(update={"new_data": False})
    dropped = retrain.decide_training(
        settings, params, same, quiet, live=LiveFigures(labelled_rows=300, accuracy=0.70)
    )
    assert (dropped.train, dropped.rule) == (True, "performance")
    assert "drop 0.1400 > max_drop 0.05" in dropped.reason
    few = retrain.decide_training(
        settings, params, same, quiet, live=LiveFigures(labelled_rows=150, accuracy=0.5)
    )
    assert (few.train, few.rule) == (False, None)
    assert few.reason.startswith("policy 'retrain_on_drift'")
    fine = retrain.decide_training(
        settings, params, same, quiet, live=LiveFigures(labelled_rows=300, accuracy=0.82)
    )
    assert fine.train is False


def test_without_retrain_rules_a_performance_drop_decides_before_the_drift_policy(tmp_path: Path) -> None:
    """Both fire (a drifted new batch and a live drop): the performance rule is the reason, as in a spec's
    policy, where it is checked first."""
    settings = Settings(state_dir=tmp_path / "state")
    params = retrain.RunParams.from_params({}, settings)
    drifted = DriftStep(
        name="r", status="drift", dataset_drift=True, drifted_columns=["Age"], message="drift"
    )
    both = retrain.decide_training(
        settings, params, PULLED, drifted, live=LiveFigures(labelled_rows=300, accuracy=0.70)
    )
    assert (both.train, both.rule) == (True, "performance")
    drift_only = retrain.decide_training(settings, params, PULLED, drifted)
    assert (drift_only.train, drift_only.rule) == (True, "drift_policy")
