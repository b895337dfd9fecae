"""Failure alerts: the log line always, the webhook when configured; an alert that fails never raises."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from lifeboat.orchestration import alerts
from lifeboat.settings import Settings
from tests.support.http_stub import http_stub

pytestmark = pytest.mark.unit


def context() -> dict[str, object]:
    ti = SimpleNamespace(
        dag_id="titanic_retrain",
        task_id="validate_data",
        run_id="manual__1",
        try_number=2,
        log_url="http://airflow/log",
    )
    return {"task_instance": ti, "exception": ValueError("data/titanic/incoming/b.csv row 4, column Age: -3")}


def test_failure_details_and_text() -> None:
    details = alerts.failure_details(context())
    assert details["task_id"] == "validate_data"
    assert details["try_number"] == "2"
    text = alerts.alert_text(details)
    assert "validate_data of titanic_retrain failed" in text
    assert "row 4, column Age" in text
    assert "http://airflow/log" in text
    long = alerts.failure_details({"exception": RuntimeError("x" * 10_000)})
    assert len(long["error"]) == alerts.MAX_ERROR_CHARS
    assert long["task_id"] == "unknown"


def test_webhook_gets_the_alert(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with http_stub() as stub:
        stub.answer("POST", "/hook", 200, {"ok": True})
        settings = Settings(state_dir=tmp_path, alert_webhook_url=f"{stub.url}/hook")
        with caplog.at_level(logging.ERROR, logger="lifeboat.orchestration.alerts"):
            reached = alerts.notify_failure(context(), settings)
    assert reached == ["log", "webhook"]
    body = stub.received[0]["json"]
    assert body["task_id"] == "validate_data"
    assert "row 4" in body["text"]
    assert any("validate_data of titanic_retrain failed" in r.message for r in caplog.records)


def test_undeliverable_alerts_are_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with http_stub() as stub:
        stub.answer("POST", "/hook", 500, {"detail": "down"})
        settings = Settings(
            state_dir=tmp_path,
            alert_webhook_url=f"{stub.url}/hook",
            alert_emails=["ops@example.org"],
            smtp_host="127.0.0.1",
            smtp_port=9,  # discard port: nothing listens
        )
        with caplog.at_level(logging.ERROR, logger="lifeboat.orchestration.alerts"):
            reached = alerts.notify_failure(context(), settings)
    assert reached == ["log"]
    messages = " ".join(r.message for r in caplog.records)
    assert "could not be posted to the webhook" in messages
    assert "could not be e-mailed" in messages


def test_a_failed_webhook_never_logs_its_url(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The URL of a Slack-style hook is its credential: the log says what failed, never where."""
    secret_path = "/services/T000/B000/very-secret-hook-token"
    with http_stub() as stub:
        stub.answer("POST", secret_path, 404, {"detail": "no such hook"})
        settings = Settings(state_dir=tmp_path, alert_webhook_url=f"{stub.url}{secret_path}")
        assert secret_path not in repr(settings)
        with caplog.at_level(logging.DEBUG):
            reached = alerts.notify_failure(context(), settings)
        unreachable = Settings(state_dir=tmp_path, alert_webhook_url=f"http://127.0.0.1:9{secret_path}")
        with caplog.at_level(logging.DEBUG):
            assert alerts.notify_failure(context(), unreachable) == ["log"]
    assert reached == ["log"]
    messages = [r.getMessage() for r in caplog.records]
    assert "the failure alert could not be posted to the webhook: HTTP 404 Not Found" in messages
    assert "the failure alert could not be posted to the webhook: ConnectionRefusedError" in messages
    assert not [m for m in messages if "very-secret-hook-token" in m]


def test_a_webhook_must_be_an_http_url(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="must be an http:// or https:// URL") as caught:
        Settings(state_dir=tmp_path, alert_webhook_url="file:///etc/secret-hook")
    assert "secret-hook" not in str(caught.value)
