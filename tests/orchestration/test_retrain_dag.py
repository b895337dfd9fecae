"""The retraining and rollback DAGs on the real stack: airflow standalone + MLflow server + uvicorn on
loopback, Spark local, DVC; runs triggered through Airflow's REST API v2 with a token from /auth/token.

The tests share one stack and run in file order: first run (promotes) → unchanged data (gate rejects) →
dry run (never promotes) → nothing new (no training) → corrupt batch (fails at validate_data) → rollback
(of the version test_faults.py promoted while the server was down: the ``promoted_with_server_down``
fixture) → a drifted batch added with ``lifeboat new-batch`` starts a run by itself (an asset event).
"""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from lifeboat.orchestration.retrain import folder_name
from lifeboat.registry.artifact import CANARY_PASSENGER
from tests.conftest import REPO_ROOT
from tests.orchestration.conftest import RETRAIN, ROLLBACK, LiveStack
from tests.support.dvc_repo import init_repo

pytestmark = pytest.mark.integration

SEED_KEYS = {"survived", "probability_survive", "drift_alerts"}


def predict(stack: LiveStack) -> dict[str, Any]:
    response = httpx.post(f"{stack.urls['serving']}/predict", json=CANARY_PASSENGER, timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) >= SEED_KEYS
    return body


def xcom(stack: LiveStack, run: dict[str, Any], task_id: str) -> Any:
    return stack.client.xcom(RETRAIN, run["dag_run_id"], task_id)


def version_tags(stack: LiveStack, version: str) -> dict[str, str]:
    from mlflow import MlflowClient

    uri = stack.urls["mlflow"]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    found = client.get_model_version(stack.settings.model_name, version)
    return dict(found.tags)


def test_first_run_trains_promotes_and_the_server_serves_it(
    live_stack: LiveStack, first_run: dict[str, Any]
) -> None:
    tasks = first_run["tasks"]
    assert tasks.pop("no_promotion") == "skipped"
    assert set(tasks.values()) == {"success"}, tasks
    pulled = xcom(live_stack, first_run, "pull_data")
    assert pulled["rows"] == 891
    assert pulled["new_data"] is True
    gate = xcom(live_stack, first_run, "evaluate_gate")
    assert gate["passed"] is True
    assert gate["champion_version"] is None
    # the promotion is an event on the titanic_champion asset, with the version (other DAGs can follow it)
    events = live_stack.client.request(
        "GET",
        "/api/v2/assets/events",
        params={"source_dag_id": RETRAIN, "source_run_id": first_run["dag_run_id"]},
    ).json()["asset_events"]
    assert [(e["name"], e["source_task_id"], e["extra"]["version"]) for e in events] == [
        ("titanic_champion", "promote", first_run["champion"])
    ]
    # `lifeboat up` made the pool its promote task runs in (Airflow never schedules a task without it)
    pool = live_stack.client.pool("lifeboat_titanic_registry")
    assert pool is not None
    assert pool["slots"] == 1
    champion = first_run["champion"]
    assert champion == gate["version"]
    assert first_run["served"] == champion
    assert set(first_run["prediction"]) >= SEED_KEYS
    assert first_run["prediction"]["model_version"] == champion
    assert version_tags(live_stack, champion)["gate.decision"] == "promote"


def test_monitoring_and_models_pages_need_an_airflow_login(
    live_stack: LiveStack, first_run: dict[str, Any]
) -> None:
    base = live_stack.urls["airflow"]
    name = folder_name(first_run["dag_run_id"])
    token = live_stack.client.token()
    auth = {"Authorization": f"Bearer {token}"}
    listing = httpx.get(f"{base}/lifeboat/monitoring", headers=auth, timeout=30)
    assert listing.status_code == 200, listing.text
    assert name in listing.text
    report = httpx.get(f"{base}/lifeboat/monitoring/{name}", headers=auth, timeout=30)
    assert report.status_code == 200
    assert "<html" in report.text.lower()
    models = httpx.get(f"{base}/lifeboat/models", headers=auth, timeout=30)
    assert models.status_code == 200
    assert live_stack.settings.model_name in models.text
    for path in (
        "/lifeboat/monitoring",
        f"/lifeboat/monitoring/{name}",
        "/lifeboat/drift",
        "/lifeboat/models",
    ):
        anonymous = httpx.get(f"{base}{path}", timeout=30, follow_redirects=False)
        assert anonymous.status_code == 401, (path, anonymous.status_code)  # "Not authenticated"
        forged = httpx.get(
            f"{base}{path}", headers={"Authorization": "Bearer forged.token.value"}, timeout=30
        )
        assert forged.status_code == 403, (path, forged.status_code)  # "Invalid JWT token"


def test_the_rest_api_and_the_ui_api_refuse_anonymous_and_forged_requests(live_stack: LiveStack) -> None:
    base = live_stack.urls["airflow"]
    runs_before = len(live_stack.client.runs(RETRAIN))
    forged = {"Authorization": "Bearer forged.token.value"}
    for path in ("/api/v2/dags", f"/api/v2/dags/{RETRAIN}/dagRuns", "/api/v2/variables", "/ui/dags"):
        anonymous = httpx.get(f"{base}{path}", timeout=30)
        assert anonymous.status_code == 401, (path, anonymous.status_code)
        refused = httpx.get(f"{base}{path}", headers=forged, timeout=30)
        assert refused.status_code == 403, (path, refused.status_code)  # "Invalid JWT token"
    trigger = httpx.post(f"{base}/api/v2/dags/{RETRAIN}/dagRuns", json={"logical_date": None}, timeout=30)
    assert trigger.status_code == 401
    wrong = httpx.post(
        f"{base}/auth/token", json={"username": "admin", "password": live_stack.password + "x"}, timeout=30
    )
    assert wrong.status_code == 401
    assert "access_token" not in wrong.text
    assert len(live_stack.client.runs(RETRAIN)) == runs_before  # nothing was triggered


def test_unchanged_data_is_rejected_by_the_gate_and_the_decision_recorded(
    live_stack: LiveStack, first_run: dict[str, Any]
) -> None:
    before = live_stack.champion()
    run = live_stack.trigger_and_wait(RETRAIN, {"retrain_without_changes": True})
    assert run["state"] == "success"
    assert run["tasks"]["train"] == "success"
    assert run["tasks"]["promote"] == "skipped"
    assert run["tasks"]["reload_serving"] == "skipped"
    assert run["tasks"]["no_promotion"] == "success"
    gate = xcom(live_stack, run, "evaluate_gate")
    assert gate["passed"] is False
    assert gate["champion_version"] == before
    assert gate["reasons"]
    assert live_stack.champion() == before
    assert live_stack.served_version() == before
    tags = version_tags(live_stack, gate["version"])
    assert tags["gate.decision"] == "reject"
    assert tags["gate.champion_version"] == before


def test_a_dry_run_never_promotes_even_a_passing_challenger(
    live_stack: LiveStack, first_run: dict[str, Any]
) -> None:
    before = live_stack.champion()
    conf = {"retrain_without_changes": True, "dry_run": True, "required_improvement": -1.0}
    run = live_stack.trigger_and_wait(RETRAIN, conf)
    assert run["state"] == "success"
    gate = xcom(live_stack, run, "evaluate_gate")
    assert gate["passed"] is True, gate  # a regression of up to 1.0 is accepted: the gate itself passes
    assert gate["dry_run"] is True
    assert run["tasks"]["promote"] == "skipped"
    assert live_stack.champion() == before
    assert live_stack.served_version() == before


def test_nothing_new_means_no_training(live_stack: LiveStack, first_run: dict[str, Any]) -> None:
    run = live_stack.trigger_and_wait(RETRAIN, {})
    assert run["state"] == "success"
    assert run["tasks"]["decide_training"] == "success"
    for task_id in ("plan_spark_jobs", "preprocess", "train", "evaluate_gate", "promote"):
        assert run["tasks"][task_id] == "skipped", task_id
    assert xcom(live_stack, run, "pull_data")["new_data"] is False


def write_corrupt_batch(raw: Path, target: Path, bad_row: int) -> None:
    with raw.open(newline="") as source:
        rows = list(csv.DictReader(source))[:20]
    rows[bad_row - 1]["Age"] = "-5"
    with target.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_a_corrupt_batch_fails_at_validate_data_and_nothing_changes(
    live_stack: LiveStack, first_run: dict[str, Any]
) -> None:
    before = live_stack.champion()
    batch = live_stack.incoming / "batch_corrupt.csv"
    write_corrupt_batch(REPO_ROOT / "data" / "titanic" / "raw" / "train.csv", batch, bad_row=4)
    try:
        run = live_stack.trigger_and_wait(RETRAIN, {"retrain_without_changes": True})
    finally:
        batch.unlink()
    assert run["state"] == "failed"
    assert run["tasks"]["validate_data"] == "failed"
    for task_id in ("preprocess", "train", "evaluate_gate", "promote", "reload_serving"):
        assert run["tasks"][task_id] in ("upstream_failed", "skipped", None), (task_id, run["tasks"])
    log = live_stack.client.task_log(RETRAIN, run["dag_run_id"], "validate_data", try_number=1)
    assert "batch_corrupt.csv" in log
    assert "Age" in log
    tries = [
        t for t in live_stack.client.task_states(RETRAIN, run["dag_run_id"]) if t.task_id == "validate_data"
    ]
    assert tries[0].try_number == 1  # bad data is not retried
    assert live_stack.champion() == before
    assert predict(live_stack)["model_version"] == before


def test_rollback_restores_the_previous_champion_and_the_server_serves_it(
    live_stack: LiveStack, first_run: dict[str, Any], promoted_with_server_down: dict[str, Any]
) -> None:
    # The newer champion is the one promoted while the server was down (tests/orchestration/conftest.py):
    # one training run fewer than promoting another one here; nothing promoted since.
    original = promoted_with_server_down["before"]
    newer = promoted_with_server_down["promoted"]["version"]
    assert original == first_run["champion"]
    assert newer != original
    assert live_stack.champion() == newer
    assert live_stack.served_version() == newer

    run = live_stack.trigger_and_wait(
        ROLLBACK, {"reason": "integration test rollback", "requested_by": "pytest"}
    )
    assert run["state"] == "success", run
    assert live_stack.champion() == original
    assert live_stack.served_version() == original
    assert predict(live_stack)["model_version"] == original
    tags = version_tags(live_stack, original)
    assert run["triggering_user_name"] == "admin"
    # The free-text field is recorded beside the real user, never instead of it.
    assert tags["rollback.by"] == "admin (on behalf of pytest)"
    assert tags["rollback.reason"] == "integration test rollback"
    assert tags["rollback.role"] == "restored"


def test_rollback_without_a_reason_is_refused(live_stack: LiveStack, first_run: dict[str, Any]) -> None:
    from lifeboat.orchestration.airflow_api import AirflowApiError

    with pytest.raises(AirflowApiError, match="reason"):
        live_stack.client.trigger(ROLLBACK, {"requested_by": "pytest"})


def test_a_drifted_batch_added_with_the_cli_starts_a_run_by_itself_that_retrains(
    live_stack: LiveStack, first_run: dict[str, Any]
) -> None:
    """`lifeboat new-batch` (validate, DVC add + push, an event on titanic_incoming) → a run starts without
    a trigger → its drift report names the drifted columns → it trains → the gate decides. Last in the file:
    the batch stays, so the data is new for whatever follows."""
    root = live_stack.incoming.parent
    init_repo(root)  # the stack's incoming folder inside a DVC repository with a local remote, as in data/
    before = live_stack.run_ids(RETRAIN)
    added = live_stack.lifeboat(
        "new-batch", "--rows", "400", "--drift", "Age+15,Fare*3", "--seed", "5", "--name", "b.csv"
    )
    assert added.returncode == 0, added.stderr[-3000:]
    assert re.search(r"asset event \d+ on titanic_incoming: titanic_retrain starts a run", added.stdout), (
        added.stdout
    )
    run = live_stack.wait_for_new_run(RETRAIN, before, "the asset event")
    assert run["state"] == "success", run

    events = live_stack.client.request(
        "GET", f"/api/v2/dags/{RETRAIN}/dagRuns/{run['dag_run_id']}/upstreamAssetEvents"
    ).json()["asset_events"]
    batch = live_stack.incoming / "b.csv"
    assert [(e["name"], e["extra"]["batch"], e["extra"]["rows"]) for e in events] == [
        ("titanic_incoming", "b.csv", 400)
    ]
    assert events[0]["extra"]["md5"] == hashlib.md5(batch.read_bytes()).hexdigest()
    drift = xcom(live_stack, run, "drift_report")
    assert drift["status"] == "drift"
    assert {"Age", "Fare"} <= set(drift["drifted_columns"])
    assert xcom(live_stack, run, "decide_training") is True  # the short-circuit's value: go on
    decision = live_stack.client.xcom(RETRAIN, run["dag_run_id"], "decide_training", key="decision")
    assert decision["train"] is True
    assert decision["rule"] == "drift_policy"  # Titanic's spec has no retrain rules: LIFEBOAT_DRIFT_POLICY
    assert decision["reason"].startswith("policy 'retrain_on_drift': drift detected (")
    gate = xcom(live_stack, run, "evaluate_gate")
    assert isinstance(gate["passed"], bool)
    assert gate["reasons"]
