"""The Airflow REST client against a stand-in server: login, re-login on 401, GET retries, trigger body."""

from __future__ import annotations

import time
from typing import Any

import pytest

from lifeboat.orchestration import airflow_api
from lifeboat.orchestration.airflow_api import AirflowApiError, AirflowClient
from tests.support.http_stub import http_stub

pytestmark = pytest.mark.unit


def login(stub: Any, token: str = "t1") -> None:
    stub.answer("POST", "/auth/token", 201, {"access_token": token})


def test_wrong_password_is_a_clear_error() -> None:
    with http_stub() as stub:
        stub.answer("POST", "/auth/token", 401, {"detail": "Invalid credentials"})
        with (
            AirflowClient(stub.url, "admin", "wrong") as client,
            pytest.raises(AirflowApiError, match="login as 'admin' failed: HTTP 401: Invalid credentials"),
        ):
            client.dag("titanic_retrain")


def test_trigger_sends_a_null_logical_date_and_the_conf(monkeypatch: pytest.MonkeyPatch) -> None:
    with http_stub() as stub:
        login(stub)
        stub.answer("POST", "/api/v2/dags/d/dagRuns", 200, {"dag_run_id": "manual__1"})
        with AirflowClient(stub.url, "admin", "pw") as client:
            assert client.trigger("d", {"dry_run": True}) == "manual__1"
    body = stub.received[-1]
    assert body["json"] == {"logical_date": None, "conf": {"dry_run": True}}
    assert body["headers"]["Authorization"] == "Bearer t1"


def test_an_expired_token_is_renewed_once() -> None:
    calls = {"n": 0}

    def dag() -> tuple[int, Any]:
        calls["n"] += 1
        return (401, {"detail": "expired"}) if calls["n"] == 1 else (200, {"dag_id": "d"})

    with http_stub() as stub:
        login(stub)
        stub.routes[("GET", "/api/v2/dags/d")] = dag
        with AirflowClient(stub.url, "admin", "pw") as client:
            assert client.dag("d") == {"dag_id": "d"}
    assert [r["path"] for r in stub.received].count("/auth/token") == 2


def test_a_get_that_times_out_is_sent_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(airflow_api, "RETRY_SECONDS", 0.01)
    calls = {"n": 0}

    def slow_then_fine() -> tuple[int, Any]:
        calls["n"] += 1
        if calls["n"] == 1:
            time.sleep(1.0)
        return 200, {"state": "running"}

    with http_stub() as stub:
        login(stub)
        stub.routes[("GET", "/api/v2/dags/d/dagRuns/r")] = slow_then_fine
        with AirflowClient(stub.url, "admin", "pw", timeout=0.3) as client:
            assert client.run("d", "r") == {"state": "running"}
    assert calls["n"] == 2


def test_a_server_that_never_answers_is_an_error_after_the_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(airflow_api, "RETRY_SECONDS", 0.01)
    with http_stub() as stub:
        url = stub.url
    with AirflowClient(url, "admin", "pw", timeout=0.3) as client, pytest.raises(AirflowApiError):
        client.run("d", "r")


def test_wait_for_run_reports_task_changes_until_the_run_ends() -> None:
    states = iter(["running", "success"])
    with http_stub() as stub:
        login(stub)
        stub.routes[("GET", "/api/v2/dags/d/dagRuns/r")] = lambda: (200, {"state": next(states)})
        stub.answer(
            "GET",
            "/api/v2/dags/d/dagRuns/r/taskInstances",
            200,
            {"task_instances": [{"task_id": "pull_data", "state": "success", "try_number": 1}]},
        )
        seen: list[str] = []
        with AirflowClient(stub.url, "admin", "pw") as client:
            run = client.wait_for_run("d", "r", poll=0.01, on_change=lambda t: seen.append(t.task_id))
    assert run["state"] == "success"
    assert seen == ["pull_data"]  # reported once, not on every poll


def test_wait_for_dag_surfaces_the_import_error() -> None:
    with http_stub() as stub:
        login(stub)
        stub.answer(
            "GET",
            "/api/v2/importErrors",
            200,
            {"import_errors": [{"filename": "/dags/titanic_retrain.py", "stack_trace": "SyntaxError: bad"}]},
        )
        with (
            AirflowClient(stub.url, "admin", "pw") as client,
            pytest.raises(AirflowApiError, match=r"does not import.*SyntaxError: bad"),
        ):
            client.wait_for_dag("titanic_retrain", timeout=5, poll=0.01)
