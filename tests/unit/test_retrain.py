"""The DAG's step functions that need no Spark or Airflow run: parameters, decisions, the reload client."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from lifeboat.orchestration import pipeline, retrain
from lifeboat.orchestration.results import DriftStep, GateStep, PulledData, SparkPlan
from lifeboat.settings import Settings
from tests.support.http_stub import http_stub

pytestmark = pytest.mark.unit

TOKEN = "unit-test-reload-token-0123456789"


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(state_dir=tmp_path / "state", **overrides)


# --- parameters ---


def test_params_default_to_the_settings(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, model_families=["lr", "gbt"], gate_min_improvement=0.01)
    params = retrain.RunParams.from_params({}, settings)
    assert params == retrain.RunParams(("lr", "gbt"), 0.01, False, False)
    applied = params.apply(settings)
    assert applied.model_families == ["lr", "gbt"]
    assert applied.gate_min_improvement == 0.01


def test_params_from_the_trigger_form(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    params = retrain.RunParams.from_params(
        {
            "families": ["RF", "lr", "rf"],
            "required_improvement": "-0.02",
            "dry_run": "true",
            "retrain_without_changes": True,
        },
        settings,
    )
    assert params.families == ("rf", "lr")
    assert params.required_improvement == -0.02
    assert params.dry_run is True
    assert params.retrain_without_changes is True
    assert params.apply(settings).gate_min_improvement == -0.02
    assert retrain.RunParams.from_params({"families": "lr, gbt"}, settings).families == ("lr", "gbt")
    assert params.as_dict()["families"] == ["rf", "lr"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"families": ["xgboost"]}, "families must be"),
        ({"families": ["lr", "svm"]}, "svm"),
        ({"required_improvement": "a lot"}, "must be a number"),
        ({"required_improvement": math.nan}, r"\[-1, 1\]"),
        ({"required_improvement": 3}, r"\[-1, 1\]"),
        ({"dry_run": "maybe"}, "dry_run must be true or false"),
        ({"retrain_without_changes": 1}, "retrain_without_changes"),
    ],
)
def test_bad_params_are_refused_with_the_field_named(
    tmp_path: Path, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(retrain.BadRunParams, match=message):
        retrain.RunParams.from_params(params, make_settings(tmp_path))


def test_folder_name_of_an_airflow_run_id() -> None:
    name = retrain.folder_name("manual__2026-11-27T05:18:09.261293+00:00")
    assert name == "manual__2026-11-27T05_18_09.261293_00_00"
    assert retrain.folder_name("scheduled__x/../../etc") == "scheduled__x_.._.._etc"
    assert "/" not in retrain.folder_name("a/b")
    with pytest.raises(retrain.RetrainError):
        retrain.folder_name("///")


# --- decisions ---


def pulled_data(champion: str | None, new_data: bool) -> PulledData:
    return PulledData(
        files=["train.csv"],
        rows=891,
        data_fingerprint="b" if new_data else "a",
        champion_version=champion,
        champion_data_fingerprint="a" if champion else None,
        new_data=new_data,
    )


NEW = pulled_data("3", True)
SAME = pulled_data("3", False)
DRIFT = DriftStep(name="r", status="drift", dataset_drift=True, drifted_columns=["Age"], message="drift")
NO_DRIFT = DriftStep(name="r", status="no_drift", dataset_drift=False, message="no drift")
SKIPPED = DriftStep(name="r", status="skipped", dataset_drift=False, message="no batch")


@pytest.mark.parametrize(
    ("pulled", "drift", "force", "policy", "expected"),
    [
        (pulled_data(None, True), SKIPPED, False, "retrain_on_drift", True),
        (SAME, NO_DRIFT, True, "retrain_on_drift", True),
        (NEW, DRIFT, False, "retrain_on_drift", True),
        (NEW, NO_DRIFT, False, "retrain_on_drift", False),
        (SAME, DRIFT, False, "retrain_on_drift", False),
        (SAME, SKIPPED, False, "retrain_on_drift", False),
        (NEW, NO_DRIFT, False, "report_only", True),
        (SAME, DRIFT, False, "report_only", False),
        (SAME, NO_DRIFT, False, "always", True),
    ],
)
def test_decide_training(
    tmp_path: Path, pulled: PulledData, drift: DriftStep, force: bool, policy: str, expected: bool
) -> None:
    settings = make_settings(tmp_path, drift_policy=policy)
    params = retrain.RunParams.from_params({"retrain_without_changes": force}, settings)
    decision = retrain.decide_training(settings, params, pulled, drift)
    assert decision.train is expected
    assert decision.reason


@pytest.mark.parametrize("policy", ["retrain_on_drift", "report_only"])
def test_an_edited_spec_is_a_reason_to_retrain(tmp_path: Path, policy: str) -> None:
    settings = make_settings(tmp_path, drift_policy=policy)
    params = retrain.RunParams.from_params({}, settings)
    edited = SAME.model_copy(update={"spec_fingerprint": "f" * 64, "champion_spec_fingerprint": "e" * 64})
    decision = retrain.decide_training(settings, params, edited, NO_DRIFT)
    assert decision.train is True
    assert decision.reason == (
        "the dataset spec changed since champion v3 was trained (fingerprint eeeeeeeeeeee -> ffffffffffff)"
    )
    same_spec = SAME.model_copy(update={"spec_fingerprint": "f" * 64, "champion_spec_fingerprint": "f" * 64})
    assert retrain.decide_training(settings, params, same_spec, NO_DRIFT).train is False
    # A champion trained before specs existed (no tag) is not retrained for that alone.
    untagged = SAME.model_copy(update={"spec_fingerprint": "f" * 64})
    assert retrain.decide_training(settings, params, untagged, NO_DRIFT).train is False


def gate_step(passed: bool, dry_run: bool) -> GateStep:
    return GateStep(
        model_name="m",
        version="2",
        passed=passed,
        promoted=False,
        dry_run=dry_run,
        champion_version="1",
        reasons=[],
    )


def test_promotion_branch() -> None:
    assert retrain.promotion_branch(gate_step(True, False), "promote", "skip") == "promote"
    assert retrain.promotion_branch(gate_step(True, True), "promote", "skip") == "skip"
    assert retrain.promotion_branch(gate_step(False, False), "promote", "skip") == "skip"


def test_step_results_round_trip_through_xcom_and_refuse_unknown_keys() -> None:
    from pydantic import ValidationError

    for result in (NEW, DRIFT, SKIPPED, gate_step(True, False)):
        pushed = result.to_xcom()
        assert json.loads(json.dumps(pushed)) == pushed
        assert type(result).model_validate(pushed) == result
    with pytest.raises(ValidationError, match="new_dta"):
        PulledData.model_validate({**NEW.to_xcom(), "new_dta": True})
    with pytest.raises(ValidationError, match="status"):
        DriftStep.model_validate({**DRIFT.to_xcom(), "status": "maybe"})


def test_fail_without_retry_turns_listed_errors_into_airflow_fail_exceptions() -> None:
    from airflow.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="row 3"), retrain.fail_without_retry(ValueError):
        raise ValueError("bad cell at row 3")
    with pytest.raises(KeyError), retrain.fail_without_retry(ValueError):
        raise KeyError("not listed: retried as usual")


def test_plan_spark_jobs(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    params = retrain.RunParams.from_params({"families": ["lr"]}, settings)
    plan = retrain.plan_spark_jobs(settings, "manual__2026-01-01T00:00:00+00:00", params)
    run_dir = Path(plan.run_dir)
    assert run_dir.is_dir()
    assert run_dir.parent == (tmp_path / "state" / "titanic" / "runs").resolve()
    assert plan.preprocess_args[plan.preprocess_args.index("--output") + 1] == str(run_dir / "preprocess")
    train_args = plan.train_args
    assert train_args[train_args.index("--families") + 1] == "lr"
    assert train_args[train_args.index("--input") + 1] == str(run_dir / "preprocess")
    assert Path(plan.train_application).is_file()
    assert SparkPlan.model_validate(json.loads(json.dumps(plan.to_xcom()))) == plan  # XCom-ready


# --- promotion from a recorded decision ---


def write_gate(settings: Settings, run: str, **fields: Any) -> Path:
    path = pipeline.gate_path(settings, run)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "run_id": run,
        "model_name": settings.model_name,
        "version": "2",
        "passed": True,
        "dry_run": False,
        "champion_version": "1",
        "reasons": ["ok"],
    }
    path.write_text(json.dumps({**record, **fields}))
    return path


def test_promote_run_refuses_a_missing_rejected_or_dry_run_decision(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with pytest.raises(pipeline.PipelineError, match="no gate decision"):
        pipeline.promote_run(settings, "r0")
    write_gate(settings, "r1", passed=False, reasons=["ROC-AUC 0.70 is below the floor 0.80"])
    with pytest.raises(pipeline.PipelineError, match=r"rejected by the gate: ROC-AUC 0\.70"):
        pipeline.promote_run(settings, "r1")
    path = write_gate(settings, "r2", dry_run=True)
    with pytest.raises(pipeline.PipelineError, match="dry run"):
        pipeline.promote_run(settings, "r2")
    assert json.loads(path.read_text()).get("promoted") is None  # untouched
    # A file naming another model, or another version than the run's gate judged, promotes nothing.
    write_gate(settings, "r5", model_name="someone-elses-model")
    with pytest.raises(pipeline.PipelineError, match="names model 'someone-elses-model', but this dataset's"):
        pipeline.promote_run(settings, "r5")
    write_gate(settings, "r6", version="7")
    with pytest.raises(pipeline.PipelineError, match="names version 7, but the run's gate judged version 2"):
        pipeline.promote_run(settings, "r6", "2")


def test_evaluate_run_without_training_output_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(pipeline.PipelineError, match="no training summary"):
        pipeline.evaluate_run(make_settings(tmp_path), "never-trained")


def test_a_malformed_gate_record_is_refused_naming_file_and_key(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    path = write_gate(settings, "r3", passed="perhaps")
    with pytest.raises(
        pipeline.PipelineError, match=r"gate\.json is not a gate decision: passed: Input should"
    ):
        pipeline.promote_run(settings, "r3")
    path.write_text(json.dumps({"model_name": settings.model_name}))
    with pytest.raises(pipeline.PipelineError, match=r"is not a gate decision: run_id: Field required"):
        pipeline.promote_run(settings, "r3")


def test_a_training_summary_without_a_version_is_not_gated(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    folder = pipeline.run_dir(settings, "r4") / "train"
    folder.mkdir(parents=True)
    summary = {
        "run_id": "r4",
        "dataset": "titanic",
        "dataset_spec_fingerprint": "f" * 64,
        "model_name": "titanic-survival",
        "version": None,
        "registered": False,
        "family": "lr",
        "params": {},
        "cv": {"roc_auc": 0.8},
        "cv_by_family": {},
        "cv_sample": {},
        "holdout": {"roc_auc": 0.8},
        "parity": {"max_abs_diff": 1e-7, "tolerance": 1e-5},
        "spark_model_uri": "runs:/x/spark",
        "serving_model_uri": "runs:/x/serving",
        "data_fingerprint": "d" * 64,
        "preprocess_dir": "/p",
        "durations_seconds": {"total": 1.0},
    }
    (folder / "train_summary.json").write_text(json.dumps(summary))
    with pytest.raises(pipeline.PipelineError, match="registered no model version"):
        pipeline.evaluate_run(settings, "r4")
    (folder / "train_summary.json").write_text(json.dumps({**summary, "holdout": {"roc_auc": "high"}}))
    with pytest.raises(
        pipeline.PipelineError, match=r"train_summary\.json is not a training summary: holdout\.roc_auc"
    ):
        pipeline.evaluate_run(settings, "r4")


# --- reload_serving ---


def serving_settings(tmp_path: Path, url: str, token: str | None = TOKEN) -> Settings:
    return make_settings(
        tmp_path, serving_url=url, reload_token=SecretStr(token) if token else None, reload_wait_seconds=1.5
    )


def test_reload_then_wait_for_the_new_version(tmp_path: Path) -> None:
    with http_stub() as stub:
        stub.answer("POST", "/admin/reload?dataset=titanic", 200, {"old_version": "1", "new_version": "2"})
        stub.answer("GET", "/v2/models/titanic", 200, {"name": "titanic", "versions": ["2"]})
        result = retrain.reload_serving(serving_settings(tmp_path, stub.url), "2", poll_seconds=0.05)
    assert result.served_version == "2"
    post = stub.received[0]
    assert post["headers"]["Authorization"] == f"Bearer {TOKEN}"


def test_reload_names_the_dataset_and_waits_for_its_own_version(tmp_path: Path) -> None:
    """Another dataset's champion: the reload and the wait are about that dataset, not the default one."""
    with http_stub() as stub:
        stub.answer("POST", "/admin/reload?dataset=adult", 200, {"new_version": "3"})
        stub.answer("GET", "/v2/models/adult", 200, {"name": "adult", "versions": ["3"]})
        stub.answer("GET", "/v2/models/titanic", 200, {"name": "titanic", "versions": ["1"]})
        settings = serving_settings(tmp_path, stub.url).for_dataset("adult")
        result = retrain.reload_serving(settings, "3", poll_seconds=0.05)
    assert result.served_version == "3"
    assert [r["path"] for r in stub.received] == ["/admin/reload?dataset=adult", "/v2/models/adult"]


def test_reload_accepted_but_another_version_served_times_out_naming_it(tmp_path: Path) -> None:
    with http_stub() as stub:
        stub.answer("POST", "/admin/reload?dataset=titanic", 202, {"new_version": "2"})
        stub.answer("GET", "/v2/models/titanic", 200, {"name": "titanic", "versions": ["1"]})
        expected = r"does not serve titanic version 2.*serves version 1"
        with pytest.raises(retrain.ServingReloadError, match=expected):
            retrain.reload_serving(serving_settings(tmp_path, stub.url), "2", poll_seconds=0.05)


@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        (401, retrain.ReloadRefused, "refused the reload token"),
        (403, retrain.ReloadRefused, "refused the reload token"),
        (409, retrain.ServingReloadError, "did not reload .409: refused: the champion is not servable"),
        (502, retrain.ServingReloadError, "did not reload .502"),
    ],
)
def test_reload_errors(tmp_path: Path, status: int, error: type[Exception], message: str) -> None:
    with http_stub() as stub:
        detail = {"detail": "refused: the champion is not servable"}
        stub.answer("POST", "/admin/reload?dataset=titanic", status, detail)
        with pytest.raises(error, match=message):
            retrain.reload_serving(serving_settings(tmp_path, stub.url), "2", poll_seconds=0.05)


def test_reload_of_a_server_that_is_down(tmp_path: Path) -> None:
    with http_stub() as stub:
        url = stub.url
    with pytest.raises(retrain.ServingReloadError, match="cannot reach the prediction server"):
        retrain.reload_serving(serving_settings(tmp_path, url), "2", poll_seconds=0.05)


def test_reload_without_a_token_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(retrain.ServingReloadError, match="LIFEBOAT_RELOAD_TOKEN is not set"):
        retrain.reload_serving(serving_settings(tmp_path, "http://127.0.0.1:9", token=None), "2")


@pytest.mark.parametrize(
    ("user", "requested_by", "recorded"),
    [
        ("admin", "", "admin"),
        ("admin", "admin", "admin"),
        ("admin", "alice", "admin (on behalf of alice)"),
        (None, "alice", "airflow (on behalf of alice)"),
        ("  ", None, "airflow"),
    ],
)
def test_the_rollback_actor_is_the_real_user(
    user: str | None, requested_by: str | None, recorded: str
) -> None:
    assert retrain.rollback_actor(user, requested_by) == recorded
