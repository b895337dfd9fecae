"""``POST /v1/datasets/{dataset}/feedback`` in-process: its own token (503 unset, 401 missing or wrong), JSON,
CSV and multipart bodies, the counts, resends, conflicts (409 naming the ids), invalid labels (422 naming the
row and value), unknown datasets and media types; and, with the shared champion, labels of real predictions.

Most tests need no model: the feedback endpoint only reads the prediction log, so their apps start without
a registry and the log is written directly.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from lifeboat.monitoring.feedback import read_labels
from tests.serving.serving_support import StoreRef, free_port
from tests.support.http_stub import http_stub

pytestmark = pytest.mark.integration

FEEDBACK_TOKEN = "feedback-tests-token-0123456789"
URL = "/v1/datasets/titanic/feedback"
PASSENGER = {
    "Pclass": 1,
    "Sex": "female",
    "Age": 47.0,
    "SibSp": 1,
    "Parch": 0,
    "Embarked": "C",
    "Fare": 71.28,
}


def bearer(token: str = FEEDBACK_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def body(*pairs: tuple[str, Any]) -> dict[str, Any]:
    return {"labels": [{"request_id": rid, "label": label} for rid, label in pairs]}


@pytest.fixture
def no_registry(make_client: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """Start an app whose registry is down (no model; feedback does not need one)."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    nobody = f"http://127.0.0.1:{free_port()}"

    def start(**overrides: Any) -> Any:
        return make_client(nobody, **{"feedback_token": FEEDBACK_TOKEN, **overrides})

    return start


def log_predictions(client: Any, dataset: str, ids: list[str]) -> None:
    """Write rows with these request ids to a dataset's prediction log, as the server does."""
    log = client.app.state.serving.datasets[dataset].prediction_log
    log.append([dict(PASSENGER) for _ in ids], [0.9] * len(ids), [1] * len(ids), "1", request_ids=ids)
    assert log.flush()


@pytest.fixture
def client(no_registry: Callable[..., Any]) -> Any:
    app = no_registry()
    log_predictions(app, "titanic", [f"req-{i}" for i in range(6)])
    return app


def test_feedback_is_disabled_without_a_token(no_registry: Callable[..., Any]) -> None:
    app = no_registry(feedback_token=None)
    answer = app.post(URL, json=body(("req-0", 1)), headers=bearer())
    assert answer.status_code == 503
    assert answer.json() == {"detail": "feedback is disabled: set LIFEBOAT_FEEDBACK_TOKEN on the server"}


def test_a_missing_or_wrong_token_is_401(client: Any) -> None:
    missing = client.post(URL, json=body(("req-0", 1)))
    assert missing.status_code == 401
    assert missing.json() == {"detail": "missing or malformed 'Authorization: Bearer <token>' header"}
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    for token in (
        "wrong-token-0123456789abcdef",
        "serving-tests-reload-token-0123456789",
    ):  # not the reload one
        wrong = client.post(URL, json=body(("req-0", 1)), headers=bearer(token))
        assert wrong.status_code == 401
        assert wrong.json() == {"detail": "wrong feedback token"}
    assert read_labels(client.app.state.serving.settings.prediction_log_path) == {}


def test_json_labels_are_counted_and_stored(client: Any) -> None:
    sent = body(("req-0", 1), ("req-1", 0), ("req-1", 0), ("not-logged", 1))
    answer = client.post(URL, json=sent, headers=bearer())
    assert answer.status_code == 200
    assert answer.json() == {"dataset": "titanic", "received": 4, "matched": 2, "unknown": 1, "duplicate": 1}
    assert read_labels(client.app.state.serving.settings.prediction_log_path) == {
        "req-0": ("1", 1),
        "req-1": ("0", 0),
    }
    again = client.post(URL, json=sent, headers=bearer())
    assert again.status_code == 200
    assert again.json() == {"dataset": "titanic", "received": 4, "matched": 0, "unknown": 1, "duplicate": 3}


def test_csv_and_multipart_bodies(client: Any) -> None:
    csv_body = "request_id,label\nreq-2,1\nreq-3,0\n"
    answer = client.post(URL, content=csv_body, headers={**bearer(), "Content-Type": "text/csv"})
    assert answer.status_code == 200
    assert answer.json()["matched"] == 2
    upload = client.post(
        URL,
        files={"file": ("labels.csv", "request_id,label\nreq-4,0\nreq-2,1\n", "text/csv")},
        headers=bearer(),
    )
    assert upload.status_code == 200
    assert upload.json() == {"dataset": "titanic", "received": 2, "matched": 1, "unknown": 0, "duplicate": 1}
    no_file = client.post(URL, files={"other": ("x.csv", "request_id,label\n", "text/csv")}, headers=bearer())
    assert no_file.status_code == 422
    assert "file" in no_file.json()["detail"]


def test_a_different_label_is_409_naming_the_ids_and_stores_nothing(client: Any) -> None:
    assert client.post(URL, json=body(("req-0", 1), ("req-1", 1)), headers=bearer()).status_code == 200
    answer = client.post(URL, json=body(("req-5", 1), ("req-1", 0), ("req-0", 0)), headers=bearer())
    assert answer.status_code == 409
    assert answer.json() == {
        "detail": "2 request id(s) already have a different label; nothing was stored: req-0, req-1",
        "conflicting_ids": ["req-0", "req-1"],
        "conflict_count": 2,
    }
    assert "req-5" not in read_labels(client.app.state.serving.settings.prediction_log_path)


def test_an_invalid_label_is_422_naming_the_row_and_value(client: Any) -> None:
    answer = client.post(URL, json=body(("req-0", 1), ("req-1", "survived")), headers=bearer())
    assert answer.status_code == 422
    assert answer.json() == {
        "detail": "1 of 2 label(s) are invalid; nothing was stored: labels[1] label 'survived': not a value "
        "of the label column 'Survived'; expected one of 0, 1",
        "error_count": 1,
        "errors": [
            {
                "row": 1,
                "line": None,
                "field": "label",
                "value": "'survived'",
                "msg": "not a value of the label column 'Survived'; expected one of 0, 1",
            }
        ],
    }
    csv_answer = client.post(
        URL, content="request_id,label\nreq-0,1\nreq-1,2\n", headers={**bearer(), "Content-Type": "text/csv"}
    )
    assert csv_answer.status_code == 422
    assert csv_answer.json()["errors"][0] | {"msg": ""} == {
        "row": 1,
        "line": 3,
        "field": "label",
        "value": "'2'",
        "msg": "",
    }
    assert read_labels(client.app.state.serving.settings.prediction_log_path) == {}


def test_malformed_bodies_and_too_many_labels_are_422(no_registry: Callable[..., Any]) -> None:
    app = no_registry(feedback_max_labels=2)
    bad_json = app.post(
        URL, content=b'{"labels": [', headers={**bearer(), "Content-Type": "application/json"}
    )
    assert bad_json.status_code == 422
    assert bad_json.json()["detail"].startswith("the body is not valid JSON: line 1:")
    too_many = app.post(URL, json=body(("a", 1), ("b", 1), ("c", 1)), headers=bearer())
    assert too_many.status_code == 422
    assert too_many.json()["detail"].startswith("3 labels were sent; the maximum per request is 2")


def test_unknown_dataset_media_type_and_size(no_registry: Callable[..., Any]) -> None:
    app = no_registry(max_body_bytes=4096)
    unknown = app.post("/v1/datasets/nope/feedback", json=body(("a", 1)), headers=bearer())
    assert unknown.status_code == 404
    assert "unknown dataset 'nope'" in unknown.json()["detail"]
    text = app.post(URL, content="a,1", headers={**bearer(), "Content-Type": "text/plain"})
    assert text.status_code == 415
    assert "text/plain" in text.json()["detail"]
    large = app.post(URL, json=body(*[(f"id-{i}", 1) for i in range(200)]), headers=bearer())
    assert large.status_code == 413


def test_each_dataset_takes_its_own_labels(client: Any) -> None:
    log_predictions(client, "adult", ["adult-0"])
    adult = client.post(
        "/v1/datasets/adult/feedback", json=body(("adult-0", "1"), ("req-0", 1)), headers=bearer()
    )
    assert adult.status_code == 200
    assert adult.json() == {"dataset": "adult", "received": 2, "matched": 1, "unknown": 1, "duplicate": 0}
    state = client.app.state.serving
    assert read_labels(state.datasets["adult"].settings.prediction_log_path) == {"adult-0": ("1", 1)}
    assert read_labels(state.settings.prediction_log_path) == {}


def test_an_unreadable_log_is_503_and_the_server_goes_on(no_registry: Callable[..., Any]) -> None:
    app = no_registry()
    path = app.app.state.serving.settings.prediction_log_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not a database" * 100)
    answer = app.post(URL, json=body(("req-0", 1)), headers=bearer())
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "5"
    assert answer.json()["detail"].startswith("the prediction log of 'titanic' cannot be written right now (")
    assert app.get("/health").status_code == 200


def test_openapi_documents_the_endpoint(client: Any) -> None:
    operation = client.get("/openapi.json").json()["paths"][URL.replace("titanic", "{dataset}")]["post"]
    assert {"200", "401", "404", "409", "413", "415", "422", "503"} <= set(operation["responses"])
    assert set(operation["requestBody"]["content"]) == {"application/json", "text/csv", "multipart/form-data"}
    assert "LIFEBOAT_FEEDBACK_TOKEN" in operation["responses"]["503"]["description"]
    spec = client.get("/openapi.json").json()
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(spec)))
    assert (
        {"FeedbackOut", "FeedbackConflictOut", "FeedbackInvalidOut"}
        <= refs
        <= set(spec["components"]["schemas"])
    )


def test_labels_of_real_predictions(make_client: Callable[..., Any], champion_store: StoreRef) -> None:
    app = make_client(champion_store.tracking_uri, feedback_token=FEEDBACK_TOKEN)
    batch = app.post("/v1/datasets/titanic/predict/batch", json={"records": [PASSENGER, PASSENGER]})
    single = app.post("/predict", json=PASSENGER)
    assert batch.status_code == single.status_code == 200
    ids = [p["request_id"] for p in batch.json()["predictions"]] + [single.json()["request_id"]]
    assert app.app.state.serving.prediction_log.flush()
    answer = app.post(URL, json=body(*[(rid, 1) for rid in ids]), headers=bearer())
    assert answer.status_code == 200
    assert answer.json() == {"dataset": "titanic", "received": 3, "matched": 3, "unknown": 0, "duplicate": 0}


def test_stored_labels_tell_airflow_and_resent_ones_do_not(no_registry: Callable[..., Any]) -> None:
    """With LIFEBOAT_AIRFLOW_EVENTS_URL, matched labels record one event on the incoming asset (a stand-in
    for Airflow's REST API here; the real one in tests/orchestration/test_retrain_on_feedback.py)."""
    with http_stub() as airflow:
        airflow.answer("POST", "/auth/token", 201, {"access_token": "jwt"})
        airflow.answer(
            "GET",
            "/api/v2/assets?name_pattern=titanic_incoming&limit=100",
            200,
            {"assets": [{"id": 1, "name": "titanic_incoming"}]},
        )
        airflow.answer("POST", "/api/v2/assets/events", 200, {"id": 7})
        app = no_registry(
            airflow_events_url=airflow.url,
            airflow_events_password="events-password-0123456789",
            label_event_interval_seconds=0,
        )
        log_predictions(app, "titanic", ["req-0", "req-1"])
        sender = app.app.state.serving.label_events
        assert app.post(URL, json=body(("req-0", 1), ("req-1", 0)), headers=bearer()).json()["matched"] == 2
        deadline = time.monotonic() + 10
        while sender.events_sent < 1:
            assert time.monotonic() < deadline, airflow.received
            time.sleep(0.05)
        again = app.post(URL, json=body(("req-0", 1), ("nobody", 1)), headers=bearer())
        assert again.json()["matched"] == 0  # a duplicate and an unknown id: nothing new, no event
        time.sleep(0.3)
        posted = [r["json"] for r in airflow.received if r["path"] == "/api/v2/assets/events"]
        assert posted == [{"asset_id": 1, "extra": {"dataset": "titanic", "source": "feedback", "labels": 2}}]
