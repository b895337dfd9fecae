"""Promotion gate, promotion and rollback against a real MLflow registry on SQLite.

The versions are real ONNX models (tests/support/models.py) of controlled quality, fitted on the rows of
data/titanic/raw/train.csv whose PassengerId is not a multiple of 5; the holdout is the other rows. On that
split:
noise 0 ("good") has ROC-AUC ~0.844, noise 0.5 ("medium") ~0.830 (above the floors, 0.0145 below good),
noise 0.9 ("bad") ~0.56 (below the floors).

Creating an MLflow schema takes 10-20 s, so the module shares one store; each test uses its own model name.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from lifeboat.registry import store as registry
from lifeboat.registry.evaluation import EvaluationError, binary_metrics
from lifeboat.registry.promotion import (
    GateRejected,
    RollbackError,
    StaleDecisionError,
    evaluate_gate,
    promote,
    promote_if_better,
    promote_recorded,
    rollback,
)
from lifeboat.registry.store import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    RegistryError,
    load_serving_model,
    version_by_alias,
)
from lifeboat.registry.summary import model_summary
from lifeboat.settings import Settings
from tests.support.models import artifact_dir, mlflow_store, register_sklearn_version, split_by_passenger_id

pytestmark = pytest.mark.integration

GOOD, MEDIUM, BAD = 0.0, 0.5, 0.9


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings whose MLflow store is one SQLite file (and artifact folder) shared by this module."""
    state = tmp_path_factory.mktemp("registry-sqlite")
    settings = Settings(
        state_dir=state, mlflow_tracking_uri=f"sqlite:///{state / 'mlflow.db'}", experiment_name="gate-tests"
    )
    with mlflow_store(settings):
        yield settings


@pytest.fixture(scope="module")
def split(raw_train_csv: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout) split by PassengerId: the holdout rows are never used to fit."""
    return split_by_passenger_id(pd.read_csv(raw_train_csv))


def register(model_name: str, split: tuple[pd.DataFrame, pd.DataFrame], noise: float) -> str:
    """A new version (alias challenger) with a measured parity tag, as the training job leaves it."""
    train, holdout = split
    return register_sklearn_version(model_name, train, noise=noise, seed=0, parity_rows=holdout)


def alias(model_name: str, name: str) -> str | None:
    found = version_by_alias(model_name, name)
    return None if found is None else str(found.version)


def tags_of(model_name: str, version: str) -> dict[str, str]:
    return dict(MlflowClient().get_model_version(model_name, version).tags)


def holdout_metrics(model_name: str, version: str, holdout: pd.DataFrame, tmp_path: Path) -> dict[str, float]:
    """Metrics of a version on the holdout, computed here independently of the gate."""
    model = load_serving_model(model_name, version, tmp_path / f"check-{version}")
    return binary_metrics(holdout["Survived"].to_numpy(), model.predict_proba(holdout))


def test_first_run_then_bad_and_equal_challengers(
    settings: Settings, split: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    name = "gate-first-run"
    _, holdout = split

    # First run: no champion, the good model passes the floors and parity and becomes champion.
    v1 = register(name, split, GOOD)
    first = promote_if_better(name, v1, holdout, settings)
    assert first.passed, first.reasons
    assert first.champion is None
    assert first.notes == ["no champion: judged on the floors and parity only"]
    assert alias(name, CHAMPION) == v1
    assert alias(name, PREVIOUS_CHAMPION) is None
    v1_tags = tags_of(name, v1)
    assert v1_tags["gate.decision"] == "promote"
    assert v1_tags["gate.champion_version"] == "none"
    assert "promoted_at" in v1_tags
    good_metrics = holdout_metrics(name, v1, holdout, tmp_path)
    assert float(v1_tags["gate.challenger.roc_auc"]) == pytest.approx(good_metrics["roc_auc"], abs=1e-12)
    assert float(v1_tags["gate.parity_max_abs_diff"]) <= settings.parity_tolerance

    # Nothing to roll back to yet.
    with pytest.raises(RollbackError, match=f"cannot roll back {name}: it has no previous_champion"):
        rollback(name, reason="test", actor="pytest")

    # A bad challenger is rejected on the floors; the champion stays; the decision is on the bad version.
    v2 = register(name, split, BAD)
    bad = promote_if_better(name, v2, holdout, settings)
    assert not bad.passed
    assert any(r.startswith("roc_auc ") and "< floor 0.8000" in r for r in bad.reasons), bad.reasons
    assert alias(name, CHAMPION) == v1
    assert alias(name, CHALLENGER) == v2
    v2_tags = tags_of(name, v2)
    assert v2_tags["gate.decision"] == "reject"
    assert json.loads(v2_tags["gate.reasons"]) == bad.reasons
    assert v2_tags["gate.champion_version"] == v1
    assert "promoted_at" not in v2_tags
    # The champion was scored now, on this holdout, by its own artifact.
    assert float(v2_tags["gate.champion.roc_auc"]) == pytest.approx(good_metrics["roc_auc"], abs=1e-12)
    bad_metrics = holdout_metrics(name, v2, holdout, tmp_path)
    assert float(v2_tags["gate.challenger.brier"]) == pytest.approx(bad_metrics["brier"], abs=1e-12)
    assert float(v2_tags["gate.delta.roc_auc"]) == pytest.approx(
        bad_metrics["roc_auc"] - good_metrics["roc_auc"], abs=1e-12
    )

    # A rejected decision can never move an alias.
    with pytest.raises(GateRejected, match=f"{name} version {v2} was rejected"):
        promote(name, v2, bad)
    assert alias(name, CHAMPION) == v1

    # The same data and seed give the same model: equal is not better.
    v3 = register(name, split, GOOD)
    equal = promote_if_better(name, v3, holdout, settings)
    assert not equal.passed
    assert equal.deltas["roc_auc"] == pytest.approx(0.0, abs=1e-12)
    assert any("equal to the champion" in r for r in equal.reasons), equal.reasons
    assert alias(name, CHAMPION) == v1
    assert tags_of(name, v3)["gate.decision"] == "reject"

    # A holdout the gate cannot use is an error, not a decision.
    with pytest.raises(EvaluationError, match="no Survived column"):
        evaluate_gate(name, v3, holdout.drop(columns=["Survived"]), settings)
    with pytest.raises(EvaluationError, match="only one class"):
        evaluate_gate(name, v3, holdout[holdout["Survived"] == 1], settings)
    with pytest.raises(RegistryError, match=f"cannot read {name} version 99"):
        evaluate_gate(name, "99", holdout, settings)


def test_better_challenger_promotion_and_rollback(
    settings: Settings, split: tuple[pd.DataFrame, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "gate-promote-rollback"
    _, holdout = split

    v1 = register(name, split, MEDIUM)
    assert promote_if_better(name, v1, holdout, settings).passed
    v2 = register(name, split, GOOD)
    decision = evaluate_gate(name, v2, holdout, settings)
    assert decision.passed, decision.reasons
    assert decision.deltas["roc_auc"] >= settings.gate_min_improvement
    assert decision.champion_version == v1

    # A decision made against another champion is refused.
    with pytest.raises(StaleDecisionError, match="evaluate the gate again"):
        promote(name, v2, dataclasses.replace(decision, champion_version="42"))
    with pytest.raises(RegistryError, match=f"decision is for {name} version {v2}, not version {v1}"):
        promote(name, v1, decision)

    # If moving the champion alias fails, previous_champion is put back and the champion is untouched.
    real_set_alias = MlflowClient.set_registered_model_alias

    def failing_set_alias(self: MlflowClient, model: str, alias_name: str, version: str) -> None:
        if alias_name == CHAMPION:
            raise MlflowException("simulated registry outage")
        real_set_alias(self, model, alias_name, version)

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", failing_set_alias)
    with pytest.raises(
        RegistryError, match="simulated registry outage; previous_champion was restored to none"
    ):
        promote(name, v2, decision)
    monkeypatch.undo()
    assert alias(name, CHAMPION) == v1
    assert alias(name, PREVIOUS_CHAMPION) is None

    # The real promotion.
    assert promote(name, v2, decision) == v1
    assert alias(name, CHAMPION) == v2
    assert alias(name, PREVIOUS_CHAMPION) == v1
    assert tags_of(name, v2)["promoted_over"] == v1
    assert tags_of(name, v1)["demoted_by_version"] == v2

    # Re-running the tasks (Airflow retries) changes nothing: the champion is compared with the version it
    # replaced, and promoting the champion again is a no-op.
    again = evaluate_gate(name, v2, holdout, settings)
    assert again.passed
    assert again.champion_version == v1
    assert promote(name, v2, again) == v1
    assert (alias(name, CHAMPION), alias(name, PREVIOUS_CHAMPION)) == (v2, v1)

    # Rollback swaps champion and previous_champion; a second rollback rolls forward again.
    assert rollback(name, reason="bad live accuracy", actor="alice") == (v2, v1)
    assert (alias(name, CHAMPION), alias(name, PREVIOUS_CHAMPION)) == (v1, v2)
    restored, demoted = tags_of(name, v1), tags_of(name, v2)
    assert restored["rollback.by"] == demoted["rollback.by"] == "alice"
    assert restored["rollback.reason"] == demoted["rollback.reason"] == "bad live accuracy"
    assert restored["rollback.at"] == demoted["rollback.at"]
    assert (restored["rollback.role"], demoted["rollback.role"]) == ("restored", "demoted")

    assert rollback(name, reason="false alarm", actor="bob") == (v1, v2)
    assert (alias(name, CHAMPION), alias(name, PREVIOUS_CHAMPION)) == (v2, v1)
    assert tags_of(name, v2)["rollback.role"] == "restored"

    with pytest.raises(RollbackError, match="needs a reason and an actor"):
        rollback(name, reason=" ", actor="bob")

    summary = model_summary(name)
    assert summary["exists"] is True
    assert summary[CHAMPION]["version"] == v2
    assert summary[PREVIOUS_CHAMPION]["version"] == v1
    assert summary[CHALLENGER]["version"] == v2
    assert [v["version"] for v in summary["versions"]] == [v2, v1]
    assert summary[CHAMPION]["aliases"] == sorted([CHAMPION, CHALLENGER])
    assert summary[CHAMPION]["gate_decision"] == "promote"
    assert summary[CHAMPION]["gate_reasons"] == again.reasons
    assert summary[CHAMPION]["metrics"]["roc_auc"] == pytest.approx(again.challenger["roc_auc"])
    assert summary[CHAMPION]["rollback"]["by"] == "bob"
    assert summary[CHAMPION]["created_at"].endswith("+00:00")
    assert [v["version"] for v in model_summary(name, last_n=1)["versions"]] == [v2]


def test_unservable_champion_and_challenger(
    settings: Settings, split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    name = "gate-unservable"
    _, holdout = split

    v1 = register(name, split, GOOD)
    assert promote_if_better(name, v1, holdout, settings).passed
    v2 = register(name, split, MEDIUM)
    worse = evaluate_gate(name, v2, holdout, settings)
    assert not worse.passed
    assert "gate.champion.roc_auc" in tags_of(name, v2)

    # The champion's artifact disappears from the artifact store.
    shutil.rmtree(artifact_dir(name, v1))

    # Documented behaviour: an unservable champion is no reason to keep it; the challenger is judged on the
    # floors and parity only, and the decision says why.
    decision = promote_if_better(name, v2, holdout, settings)
    assert decision.passed, decision.reasons
    assert decision.champion_unservable
    assert decision.champion is None
    assert any(f"champion version {v1} cannot be loaded" in note for note in decision.notes), decision.notes
    v2_tags = tags_of(name, v2)
    assert v2_tags["gate.champion_unservable"] == "true"
    assert v2_tags["gate.champion_version"] == v1
    assert not [k for k in v2_tags if k.startswith(("gate.champion.", "gate.delta."))], "stale tags left"
    assert (alias(name, CHAMPION), alias(name, PREVIOUS_CHAMPION)) == (v2, v1)

    # Rolling back onto the broken version is refused before any alias moves.
    with pytest.raises(RollbackError, match=f"to version {v1}: its serving artifact is not servable"):
        rollback(name, reason="test", actor="pytest")
    assert (alias(name, CHAMPION), alias(name, PREVIOUS_CHAMPION)) == (v2, v1)

    # A challenger whose own artifact is gone is rejected (not servable), never promoted.
    v3 = register(name, split, GOOD)
    shutil.rmtree(artifact_dir(name, v3))
    broken = promote_if_better(name, v3, holdout, settings)
    assert not broken.passed
    assert broken.reasons[0].startswith(f"challenger {name} version {v3} cannot be loaded or scored")
    assert tags_of(name, v3)["gate.decision"] == "reject"
    assert alias(name, CHAMPION) == v2


def test_summary_of_an_unknown_model(settings: Settings) -> None:
    summary = model_summary("never-registered")

    assert summary == {
        "model_name": "never-registered",
        "exists": False,
        CHAMPION: None,
        PREVIOUS_CHAMPION: None,
        CHALLENGER: None,
        "versions": [],
    }
    assert registry.version_by_alias("never-registered", CHAMPION) is None


def test_promoting_again_repairs_a_promotion_killed_between_the_two_alias_moves(
    settings: Settings, split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    """Killed after ``previous_champion`` moved but before ``champion`` did: both name the old champion,
    which blocks a rollback; re-running the promotion (the DAG's retry) finishes the move."""
    name = "gate-killed-promotion"
    _, holdout = split
    v1 = register(name, split, MEDIUM)
    assert promote_if_better(name, v1, holdout, settings).passed
    v2 = register(name, split, GOOD)
    decision = evaluate_gate(name, v2, holdout, settings)
    assert decision.passed, decision.reasons

    MlflowClient().set_registered_model_alias(name, PREVIOUS_CHAMPION, v1)  # the first move, then killed
    assert (alias(name, CHAMPION), alias(name, PREVIOUS_CHAMPION)) == (v1, v1)
    with pytest.raises(RollbackError, match=f"{CHAMPION} and {PREVIOUS_CHAMPION} both are {v1}"):
        rollback(name, "blocked by the half-done promotion", "pytest")

    assert promote_recorded(name, v2, decision.champion_version) == v1
    assert (alias(name, CHAMPION), alias(name, PREVIOUS_CHAMPION)) == (v2, v1)
    assert promote_recorded(name, v2, decision.champion_version) == v1  # once more: nothing changes
    assert rollback(name, "works again", "pytest") == (v2, v1)


def test_a_changed_gate_file_promotes_nothing_the_registry_did_not_pass(
    settings: Settings, split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    """Issue 14, finding 3: anyone who can write the shared state folder could set ``passed: true`` (or
    ``dry_run: false``) in a run's gate.json. promote_run trusts only the gate tags of the registry."""
    from lifeboat.orchestration import pipeline
    from lifeboat.registry.store import set_version_tags

    name = "gate-file-tampered"
    own = settings.model_copy(update={"model_name": name})
    rejected = register(name, split, noise=0.0)
    set_version_tags(name, rejected, {"gate.decision": "reject", "gate.champion_version": "none"})
    dry = register(name, split, noise=0.0)
    set_version_tags(
        name, dry, {"gate.decision": "promote", "gate.champion_version": "none", pipeline.DRY_RUN_TAG: "true"}
    )
    untagged = register(name, split, noise=0.0)

    def forged(run: str, version: str) -> None:
        path = pipeline.gate_path(own, run)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"run_id": run, "model_name": name, "version": version, "passed": True, "dry_run": False}
        path.write_text(json.dumps({**record, "champion_version": None, "reasons": ["forged"]}))

    forged("forged-reject", rejected)
    with pytest.raises(pipeline.PipelineError, match=r"records the gate decision 'reject' .* says it passed"):
        pipeline.promote_run(own, "forged-reject")
    forged("forged-dry", dry)
    with pytest.raises(pipeline.PipelineError, match="records a dry-run gate decision"):
        pipeline.promote_run(own, "forged-dry")
    forged("forged-untagged", untagged)
    with pytest.raises(pipeline.PipelineError, match="records no gate decision"):
        pipeline.promote_run(own, "forged-untagged")
    assert alias(name, CHAMPION) is None  # nothing was promoted

    # The registry's own record passes: the promotion goes through, compared with the champion it names.
    set_version_tags(name, untagged, {"gate.decision": "promote", "gate.champion_version": "none"})
    promoted = pipeline.promote_run(own, "forged-untagged")
    assert (promoted.promoted, alias(name, CHAMPION)) == (True, untagged)
