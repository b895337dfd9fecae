"""The server's asset events for stored labels (serving/label_events.py), against a loopback HTTP stand-in
for Airflow's REST API: what is sent, the rate limit, and that a refusing or absent Airflow never hurts the
server nor shows the password. The real Airflow takes these events in
tests/orchestration/test_retrain_on_feedback.py."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from lifeboat.settings import Settings
from serving.label_events import LabelEvents
from tests.support.http_stub import Stub, http_stub

pytestmark = pytest.mark.unit

PASSWORD = "label-events-password-0123456789"
ASSETS = "/api/v2/assets?name_pattern=titanic_incoming&limit=100"


@pytest.fixture
def airflow() -> Iterator[Stub]:
    with http_stub() as stub:
        stub.answer("POST", "/auth/token", 201, {"access_token": "jwt-123"})
        stub.answer("GET", ASSETS, 200, {"assets": [{"id": 4, "name": "titanic_incoming"}]})
        stub.answer("POST", "/api/v2/assets/events", 200, {"id": 99, "asset_id": 4})
        yield stub


def wait_for(condition: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the background send did not happen"
        time.sleep(0.02)


def events(stub: Stub) -> list[dict[str, Any]]:
    return [r for r in stub.received if r["path"] == "/api/v2/assets/events"]


def test_stored_labels_send_one_event_with_the_count(airflow: Stub) -> None:
    sender = LabelEvents(airflow.url, "lifeboat-feedback", PASSWORD, interval=60)
    sender.labels_stored("titanic", 250)
    wait_for(lambda: sender.events_sent == 1)
    login, lookup, event = airflow.received
    assert login["json"] == {"username": "lifeboat-feedback", "password": PASSWORD}
    assert lookup["path"] == ASSETS
    assert lookup["headers"]["Authorization"] == "Bearer jwt-123"
    assert event["json"] == {
        "asset_id": 4,
        "extra": {"dataset": "titanic", "source": "feedback", "labels": 250},
    }
    assert event["headers"]["Authorization"] == "Bearer jwt-123"
    assert sender.last_event == {"id": 99, "asset_id": 4}
    sender.close()


def test_labels_within_the_interval_are_gathered_into_one_later_event(airflow: Stub) -> None:
    sender = LabelEvents(airflow.url, "lifeboat-feedback", PASSWORD, interval=1.0)
    sender.labels_stored("titanic", 5)
    wait_for(lambda: sender.events_sent == 1)
    first_sent = time.monotonic()
    for count in (3, 4, 2):
        sender.labels_stored("titanic", count)
    time.sleep(0.3)
    assert sender.events_sent == 1  # not yet: the interval has not passed
    wait_for(lambda: sender.events_sent == 2)
    assert time.monotonic() - first_sent >= 0.9
    assert [e["json"]["extra"]["labels"] for e in events(airflow)] == [5, 9]
    time.sleep(1.2)
    assert sender.events_sent == 2  # nothing more was stored: no event
    sender.close()


def test_no_event_for_nothing_stored_and_none_after_close(airflow: Stub) -> None:
    sender = LabelEvents(airflow.url, "lifeboat-feedback", PASSWORD, interval=0.5)
    sender.labels_stored("titanic", 0)
    sender.labels_stored("titanic", 1)
    wait_for(lambda: sender.events_sent == 1)
    sender.labels_stored("titanic", 1)  # deferred ...
    sender.close()  # ... and cancelled: the labels are stored, the next scheduled run measures them
    time.sleep(0.8)
    assert sender.events_sent == 1
    sender.labels_stored("titanic", 1)
    time.sleep(0.3)
    assert len(events(airflow)) == 1


@pytest.mark.parametrize(
    ("route", "status", "body", "logged"),
    [
        (
            ("POST", "/auth/token"),
            401,
            {"detail": "Invalid credentials"},
            "(AirflowEventError: login as 'lifeboat-feedback': HTTP 401",
        ),
        (("GET", ASSETS), 200, {"assets": []}, "Airflow has no asset titanic_incoming"),
        (("POST", "/api/v2/assets/events"), 403, {"detail": "Forbidden"}, "recording an event on"),
    ],
)
def test_a_refusing_airflow_is_logged_without_the_password(
    airflow: Stub,
    caplog: pytest.LogCaptureFixture,
    route: tuple[str, str],
    status: int,
    body: Any,
    logged: str,
) -> None:
    airflow.answer(*route, status, body)
    sender = LabelEvents(airflow.url, "lifeboat-feedback", PASSWORD, interval=60)
    with caplog.at_level(logging.WARNING, logger="serving.label_events"):
        sender.labels_stored("titanic", 3)
        wait_for(lambda: any(logged in r.getMessage() for r in caplog.records))
    assert sender.events_sent == 0
    assert "labels of titanic stored, but Airflow at" in caplog.text
    assert PASSWORD not in caplog.text
    sender.close()


def test_an_unreachable_airflow_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with http_stub() as gone:
        url = gone.url  # a loopback port nobody listens on once the block ends
    sender = LabelEvents(url, "lifeboat-feedback", PASSWORD, interval=60)
    with caplog.at_level(logging.WARNING, logger="serving.label_events"):
        sender.labels_stored("titanic", 3)
        wait_for(lambda: "Airflow at" in caplog.text)
    assert "(ConnectionError: " in caplog.text
    assert "Connection refused" in caplog.text
    assert PASSWORD not in caplog.text
    sender.close()


def test_settings_configure_the_sender() -> None:
    assert LabelEvents.from_settings(Settings()) is None  # no URL: no events
    sender = LabelEvents.from_settings(
        Settings(
            airflow_events_url="http://127.0.0.1:8080/",
            airflow_events_password=PASSWORD,
            label_event_interval_seconds=5,
        )
    )
    assert sender is not None
    assert (sender.url, sender.user, sender.password, sender.interval) == (
        "http://127.0.0.1:8080",
        "lifeboat-feedback",
        PASSWORD,
        5.0,
    )
    assert PASSWORD not in repr(sender)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"airflow_events_url": "http://127.0.0.1:8080"}, "LIFEBOAT_AIRFLOW_EVENTS_PASSWORD is not"),
        ({"airflow_events_url": "ftp://airflow", "airflow_events_password": PASSWORD}, "http:// or https://"),
        ({"label_event_interval_seconds": -1}, "greater than or equal to 0"),
    ],
)
def test_bad_event_settings_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**values)
