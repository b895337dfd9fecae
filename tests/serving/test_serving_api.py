"""The prediction API in-process (TestClient) against a real MLflow registry on SQLite.

Covers the response contract, batches (JSON, CSV, multipart) matching single predictions row by row, health,
readiness, model info, metrics, OpenAPI docs, the prediction log, starting without a champion or without a
registry, reload (auth, swap, refusal of a broken version) and fleet convergence of two workers.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lifeboat.dataset.features import NO_DRIFT
from lifeboat.monitoring.prediction_log import read_window
from lifeboat.registry.artifact import CANARY_PASSENGER
from tests.serving.serving_support import (
    TOKEN,
    ServingVersions,
    StoreRef,
    auth,
    free_port,
    set_champion,
    without_ids,
)

pytestmark = pytest.mark.integration

CONTRACT_KEYS = {"survived", "probability_survive", "drift_alerts", "model_version", "request_id"}
#: A passenger well inside the training data (no imputation, no unseen category).
ORDINARY = dict(CANARY_PASSENGER)
JSON_ONLY = {"Content-Type": "application/json"}


def metric(client: Any, name: str, **labels: str) -> float:
    """One sample of the app's /metrics (0 when absent)."""
    text = client.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def wait_for(predicate: Any, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


# --- contract -----------------------------------------------------------------------------------------------


def test_predict_answers_the_seed_contract(served: Any, champion_store: StoreRef) -> None:
    response = served.post("/predict", json=ORDINARY)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == CONTRACT_KEYS
    assert body["survived"] in (0, 1)
    assert type(body["survived"]) is int
    assert isinstance(body["probability_survive"], float)
    assert 0.0 <= body["probability_survive"] <= 1.0
    assert round(body["probability_survive"], 3) == body["probability_survive"]
    assert body["survived"] == int(body["probability_survive"] >= 0.5)
    assert body["drift_alerts"] == NO_DRIFT
    assert body["model_version"] == champion_store.version


def test_drift_alerts_name_what_is_off(served: Any) -> None:
    body = served.post("/predict", json={**ORDINARY, "Age": 110.0, "Embarked": None}).json()
    assert "Age 110 is outside the training range" in body["drift_alerts"]
    assert "Embarked is missing" in body["drift_alerts"]


def test_minimal_passenger_is_scored(served: Any) -> None:
    response = served.post("/predict", json={"Pclass": 2, "Sex": "female", "SibSp": 1, "Parch": 2})
    assert response.status_code == 200
    assert "Age is missing" in response.json()["drift_alerts"]


def test_both_lanes_of_predict_answer_the_same_bytes(
    served: Any, test_rows: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plain ``application/json`` takes the fast lane; with a charset, the body goes through the model."""
    from serving.routes import predictions

    lanes: list[bool] = []

    def spy(body: bytes) -> Any:
        passenger = predictions_fast(body)
        lanes.append(passenger is not None)
        return passenger

    predictions_fast = predictions.passenger_from_json_body
    monkeypatch.setattr(predictions, "passenger_from_json_body", spy)
    rows = [*test_rows[:40], {"Pclass": 2, "Sex": "female", "SibSp": 1, "Parch": 2}]
    for i, row in enumerate(rows):
        body = json.dumps(row).encode()
        same_id = {"X-Request-ID": f"lanes-{i}"}
        fast = served.post("/predict", content=body, headers={"Content-Type": "application/json", **same_id})
        declared = served.post(
            "/predict", content=body, headers={"Content-Type": "application/json; charset=utf-8", **same_id}
        )
        assert fast.status_code == declared.status_code == 200
        assert fast.content == declared.content
        assert fast.headers["content-type"] == declared.headers["content-type"]
    assert lanes == [True] * len(rows)  # the fast lane served every plain request, and only those
    refused = served.post("/predict", content=json.dumps({**ORDINARY, "Pclass": "3"}), headers=JSON_ONLY)
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "Pclass"]  # FastAPI's own error, from the model
    assert lanes[-1] is False


def _concurrently(
    app: Any, calls: Any, rows: list[dict[str, Any]], patch: Any = None
) -> tuple[list[Any], list[Any], float]:
    """Post ``rows`` to /predict one after the other, then all at once, in-process (ASGI, one event loop).

    Returns (answers one by one, answers all at once, model calls made by the concurrent requests).
    """
    import asyncio

    import httpx

    async def run() -> tuple[list[Any], list[Any], float]:
        async with app.router.lifespan_context(app):
            if patch is not None:
                patch(app.state.serving.holder.current().model)
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # a 500 is an answer here
            async with httpx.AsyncClient(transport=transport, base_url="http://lifeboat") as client:
                posts = [  # each row its own client id, the same both times: the same bytes
                    (row, {"X-Request-ID": f"row-{i}"}) for i, row in enumerate(rows)
                ]
                alone = [await client.post("/predict", json=row, headers=h) for row, h in posts]
                before = calls(app)
                together = await asyncio.gather(
                    *(client.post("/predict", json=row, headers=h) for row, h in posts)
                )
                return alone, list(together), calls(app) - before

    return asyncio.run(run())


def _model_calls(app: Any) -> float:
    return float(app.state.serving.metrics.predict_model_calls._value.get())


def test_concurrent_single_requests_share_model_calls_and_answer_as_alone(
    champion_store: StoreRef, tmp_path: Path, test_rows: list[dict[str, Any]]
) -> None:
    from serving.app import create_app
    from tests.serving.serving_support import serving_settings

    app = create_app(serving_settings(tmp_path / "state", champion_store.tracking_uri))
    rows = test_rows[:24]
    alone, together, calls = _concurrently(app, _model_calls, rows)
    assert [r.status_code for r in together] == [200] * len(rows)
    assert [r.content for r in together] == [r.content for r in alone]  # the same bytes, row by row
    assert calls <= len(rows) // 4  # requests ready in the same turn were scored together
    window = read_window(app.state.serving.settings.prediction_log_path)
    assert window["PassengerId"].tolist() == [r["PassengerId"] for r in rows] * 2


def test_a_row_that_cannot_be_scored_fails_alone_among_concurrent_requests(
    champion_store: StoreRef, tmp_path: Path, test_rows: list[dict[str, Any]]
) -> None:
    import numpy as np

    from serving.app import create_app
    from tests.serving.serving_support import serving_settings

    def poison(model: Any) -> None:  # the model answers NaN for one passenger
        real = model.predict_with_alerts

        def predict_with_alerts(columns: Any) -> Any:
            scores, alerts = real(columns)
            names = list(columns["Name"])
            return np.where([n == "Poison, Mr. Nan" for n in names], np.nan, scores), alerts

        model.predict_with_alerts = predict_with_alerts

    app = create_app(serving_settings(tmp_path / "state", champion_store.tracking_uri))
    rows = [*test_rows[:3], {**ORDINARY, "Name": "Poison, Mr. Nan"}, *test_rows[3:6]]
    alone, together, _ = _concurrently(app, _model_calls, rows, patch=poison)
    assert [r.status_code for r in alone] == [200, 200, 200, 500, 200, 200, 200]
    assert [r.status_code for r in together] == [r.status_code for r in alone]
    assert together[3].json() == {"detail": "internal server error"}
    assert [r.content for i, r in enumerate(together) if i != 3] == [
        r.content for i, r in enumerate(alone) if i != 3
    ]


def test_json_batch_matches_single_predictions_row_by_row(
    served: Any, test_rows: list[dict[str, Any]]
) -> None:
    rows = test_rows[:80]
    batch = served.post("/predict/batch", json={"passengers": rows})
    assert batch.status_code == 200
    body = batch.json()
    assert body["count"] == len(rows) == len(body["predictions"])
    singles = [served.post("/predict", json=row).json() for row in rows]
    assert without_ids(body["predictions"]) == without_ids(singles)
    assert len({p["probability_survive"] for p in singles}) > 10  # the rows really differ


def test_csv_and_multipart_batches_equal_the_json_batch(
    served: Any, raw_test_csv: Path, test_rows: list[dict[str, Any]]
) -> None:
    data = raw_test_csv.read_bytes()
    as_json = served.post("/predict/batch", json={"passengers": test_rows}).json()
    as_csv = served.post("/predict/batch", content=data, headers={"Content-Type": "text/csv"})
    as_upload = served.post("/predict/batch", files={"file": ("test.csv", data, "text/csv")})
    assert as_csv.status_code == 200
    assert as_upload.status_code == 200
    assert as_json["count"] == len(test_rows) == 418
    assert without_ids(as_csv.json()) == without_ids(as_json)
    assert without_ids(as_upload.json()) == without_ids(as_json)


# --- health, readiness, model info, metrics, docs -----------------------------------------------------------


def test_health_ready_and_model_info(served: Any, champion_store: StoreRef) -> None:
    assert served.get("/health").json()["status"] == "alive"
    ready = served.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["model_version"] == champion_store.version
    assert ready.json()["ready"] is True
    info = served.get("/model")
    assert info.status_code == 200
    body = info.json()
    assert body["model_version"] == champion_store.version
    assert body["model_name"] == champion_store.model_name
    assert len(body["run_id"]) == 32
    assert body["trained_at"].startswith("20")
    assert body["registered_at"].startswith("20")
    assert body["info"]["family"] == "lr"  # the session's champion: `lifeboat train --families lr`
    assert body["gate_decision"] == "promote"
    assert body["metrics"]["roc_auc"] >= 0.8
    assert body["data_fingerprint"]
    assert body["tags"]["parity_max_abs_diff"]


def test_metrics_count_requests_predictions_and_the_version(served: Any, champion_store: StoreRef) -> None:
    before = metric(served, "lifeboat_predictions_total", survived="0") + metric(
        served, "lifeboat_predictions_total", survived="1"
    )
    served.post("/predict/batch", json={"passengers": [ORDINARY] * 3})
    served.post("/predict", json={**ORDINARY, "Age": 110.0})
    after = metric(served, "lifeboat_predictions_total", survived="0") + metric(
        served, "lifeboat_predictions_total", survived="1"
    )
    assert after - before == 4
    assert metric(served, "lifeboat_drift_alerts_total") >= 1
    assert metric(served, "lifeboat_model_info", version=champion_store.version) == 1
    assert metric(served, "lifeboat_model_loaded") == 1
    assert (
        metric(served, "lifeboat_http_requests_total", endpoint="/predict/batch", method="POST", status="200")
        >= 1
    )
    assert (
        metric(
            served,
            "lifeboat_http_request_duration_seconds_count",
            endpoint="/predict",
            method="POST",
            status="200",
        )
        >= 1
    )
    assert metric(served, "lifeboat_model_reloads_total", trigger="startup") == 1
    served.get("/no/such/path")
    assert (
        metric(served, "lifeboat_http_requests_total", endpoint="unmatched", method="GET", status="404") >= 1
    )


def test_openapi_documents_every_endpoint_with_examples(served: Any) -> None:
    spec = served.get("/openapi.json").json()
    paths = spec["paths"]
    assert {"/predict", "/predict/batch", "/health", "/ready", "/model", "/admin/reload", "/metrics"} <= set(
        paths
    )
    predict = paths["/predict"]["post"]
    assert set(predict["requestBody"]["content"]["application/json"]["examples"]) == {
        "first-class woman",
        "minimal",
    }
    assert {"413", "415", "422", "503"} <= set(predict["responses"])
    batch_body = paths["/predict/batch"]["post"]["requestBody"]["content"]
    assert set(batch_body) == {"application/json", "text/csv", "multipart/form-data"}
    assert {"401", "403", "404", "409", "502", "503"} <= set(paths["/admin/reload"]["post"]["responses"])
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(spec)))
    assert refs <= set(spec["components"]["schemas"])  # no dangling reference
    passenger = spec["components"]["schemas"]["PassengerIn"]
    assert passenger["additionalProperties"] is False
    assert passenger["properties"]["Pclass"]["enum"] == [1, 2, 3]
    assert passenger["examples"]


# --- the prediction log -------------------------------------------------------------------------------------


def test_scored_passengers_are_logged_for_drift(
    make_client: Any, champion_store: StoreRef, tmp_path: Path, test_rows: list[dict[str, Any]]
) -> None:
    client = make_client(champion_store.tracking_uri, state_dir=tmp_path / "logged")
    client.post("/predict", json=test_rows[0])
    client.post("/predict/batch", json={"passengers": test_rows[1:6]})
    client.post("/predict", json={"Pclass": 9})  # refused: never logged
    assert client.app.state.serving.prediction_log.flush()
    window = read_window(client.app.state.serving.settings.prediction_log_path)
    assert window["PassengerId"].tolist() == [r["PassengerId"] for r in test_rows[:6]]
    assert window["Name"].tolist() == [r["Name"] for r in test_rows[:6]]
    assert set(window["model_version"]) == {champion_store.version}
    assert window["prediction"].isin([0, 1]).all()
    assert metric(client, "lifeboat_prediction_log_written_rows_total") == 6
    assert 1 <= metric(client, "lifeboat_prediction_log_transactions_total") <= 2  # grouped or not


def test_a_broken_state_folder_never_fails_a_prediction(
    make_client: Any, champion_store: StoreRef, tmp_path: Path
) -> None:
    not_a_folder = tmp_path / "state-is-a-file"
    not_a_folder.write_text("the prediction log and the fleet board cannot live here")
    client = make_client(champion_store.tracking_uri, state_dir=not_a_folder)
    for _ in range(3):
        assert client.post("/predict", json=ORDINARY).status_code == 200
    assert client.post("/predict/batch", json={"passengers": [ORDINARY] * 4}).status_code == 200
    assert client.app.state.serving.prediction_log.flush()
    assert metric(client, "lifeboat_prediction_log_failed_rows_total") == 7
    reload = client.post("/admin/reload", headers=auth())
    assert reload.status_code == 202  # served here, but the other workers cannot be asked
    assert "fleet board is unavailable" in reload.json()["note"]


# --- no champion, no registry -------------------------------------------------------------------------------


def test_without_a_champion_the_server_starts_unready_then_reload_serves(
    make_client: Any, store_copy: StoreRef
) -> None:
    set_champion(store_copy, None)
    client = make_client(store_copy.tracking_uri)
    assert client.get("/health").status_code == 200
    ready = client.get("/ready")
    assert ready.status_code == 503
    assert "champion" in ready.json()["reason"]
    assert ready.json()["model_version"] is None
    predict = client.post("/predict", json=ORDINARY)
    assert predict.status_code == 503
    assert "no model loaded" in predict.json()["detail"]
    assert client.post("/predict/batch", json={"passengers": [ORDINARY]}).status_code == 503
    assert client.get("/model").status_code == 503
    assert client.post("/predict", json={**ORDINARY, "Pclass": "3"}).status_code == 422  # bad input stays 4xx
    missing = client.post("/admin/reload", headers=auth())
    assert missing.status_code == 404
    assert "champion" in missing.json()["detail"]

    set_champion(store_copy, store_copy.version)
    reload = client.post("/admin/reload", headers=auth())
    assert reload.status_code == 200
    assert reload.json() | {"workers": None, "note": None} == {
        "old_version": None,
        "new_version": store_copy.version,
        "changed": True,
        "converged": True,
        "workers": None,
        "note": None,
    }
    assert client.get("/ready").status_code == 200
    assert client.post("/predict", json=ORDINARY).json()["model_version"] == store_copy.version


def test_the_poll_picks_up_a_new_champion(make_client: Any, store_copy: StoreRef) -> None:
    set_champion(store_copy, None)
    client = make_client(store_copy.tracking_uri, registry_poll_seconds=0.2)
    assert client.get("/ready").status_code == 503
    set_champion(store_copy, store_copy.version)
    assert wait_for(lambda: client.get("/ready").status_code == 200, timeout=30)
    assert client.post("/predict", json=ORDINARY).json()["model_version"] == store_copy.version
    assert metric(client, "lifeboat_model_reloads_total", trigger="poll") == 1


def test_registry_down_at_start_the_server_starts_and_retries(
    make_client: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    nobody = f"http://127.0.0.1:{free_port()}"
    with caplog.at_level(logging.ERROR, logger="serving"):
        client = make_client(nobody, registry_poll_seconds=0.2)
    assert client.get("/health").status_code == 200
    ready = client.get("/ready")
    assert ready.status_code == 503
    assert nobody in ready.json()["reason"]
    assert client.post("/predict", json=ORDINARY).status_code == 503
    reload = client.post("/admin/reload", headers=auth())
    assert reload.status_code == 502
    assert nobody in reload.json()["detail"]
    assert any(nobody in r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert wait_for(
        lambda: (
            metric(client, "lifeboat_model_reload_failures_total", trigger="poll", reason="registry") >= 2
        ),
        timeout=30,
    )


def test_registry_back_after_an_outage_is_picked_up_by_the_poll(
    make_client: Any, store_copy: StoreRef
) -> None:
    path = store_copy.tracking_uri.removeprefix("sqlite:///")
    outage = sqlite3.connect(path, isolation_level=None)
    outage.execute("BEGIN EXCLUSIVE")  # every reader now fails with "database is locked"
    try:
        client = make_client(store_copy.tracking_uri, registry_poll_seconds=0.2)
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert "locked" in ready.json()["reason"]
    finally:
        outage.execute("ROLLBACK")
        outage.close()
    assert wait_for(lambda: client.get("/ready").status_code == 200, timeout=60)
    assert client.post("/predict", json=ORDINARY).json()["model_version"] == store_copy.version


# --- reload -------------------------------------------------------------------------------------------------


def test_reload_needs_the_right_bearer_token(make_client: Any, champion_store: StoreRef) -> None:
    client = make_client(champion_store.tracking_uri)
    missing = client.post("/admin/reload")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert client.post("/admin/reload", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    assert client.post("/admin/reload", headers={"Authorization": "Bearer"}).status_code == 401
    assert client.post("/admin/reload", headers={"Authorization": TOKEN}).status_code == 401
    wrong = client.post("/admin/reload", headers=auth(TOKEN[:-1] + "X"))
    assert wrong.status_code == 403
    assert "wrong" in wrong.json()["detail"]
    non_ascii = client.post("/admin/reload", headers={"Authorization": ("Bearer " + "é" * 10).encode()})
    assert non_ascii.status_code == 403
    ok = client.post("/admin/reload", headers=auth())
    assert ok.status_code == 200
    assert ok.json()["changed"] is False
    assert ok.json()["new_version"] == champion_store.version


def test_reload_is_disabled_without_a_configured_token(make_client: Any, champion_store: StoreRef) -> None:
    client = make_client(champion_store.tracking_uri, reload_token=None)
    disabled = client.post("/admin/reload", headers=auth())
    assert disabled.status_code == 503
    assert "LIFEBOAT_RELOAD_TOKEN" in disabled.json()["detail"]


def test_reload_swaps_to_the_new_champion(
    make_client: Any, store_copy: StoreRef, serving_versions: ServingVersions, test_rows: list[dict[str, Any]]
) -> None:
    client = make_client(store_copy.tracking_uri)
    before = client.post("/predict/batch", json={"passengers": test_rows[:50]}).json()
    set_champion(store_copy, serving_versions.alternate)
    reload = client.post("/admin/reload", headers=auth())
    assert reload.status_code == 200
    body = reload.json()
    assert (body["old_version"], body["new_version"], body["changed"], body["converged"]) == (
        store_copy.version,
        serving_versions.alternate,
        True,
        True,
    )
    after = client.post("/predict/batch", json={"passengers": test_rows[:50]}).json()
    assert after["model_version"] == serving_versions.alternate
    assert {p["model_version"] for p in after["predictions"]} == {serving_versions.alternate}
    assert [p["probability_survive"] for p in after["predictions"]] != [
        p["probability_survive"] for p in before["predictions"]
    ]
    assert client.get("/model").json()["model_version"] == serving_versions.alternate
    assert metric(client, "lifeboat_model_info", version=serving_versions.alternate) == 1
    assert metric(client, "lifeboat_model_info", version=store_copy.version) == 0
    again = client.post("/admin/reload", headers=auth()).json()
    assert (again["old_version"], again["new_version"], again["changed"]) == (
        serving_versions.alternate,
        serving_versions.alternate,
        False,
    )


def test_a_broken_champion_is_refused_and_the_old_one_keeps_serving(
    make_client: Any, store_copy: StoreRef, serving_versions: ServingVersions
) -> None:
    client = make_client(store_copy.tracking_uri)
    set_champion(store_copy, serving_versions.broken)
    refused = client.post("/admin/reload", headers=auth())
    assert refused.status_code == 409
    detail = refused.json()["detail"]
    assert "not servable" in detail
    assert f"still serving version {store_copy.version}" in detail
    assert client.post("/predict", json=ORDINARY).json()["model_version"] == store_copy.version
    assert client.get("/ready").json()["model_version"] == store_copy.version
    assert metric(client, "lifeboat_model_reload_failures_total", trigger="admin", reason="artifact") == 1
    # Fixing the alias makes the next reload work again.
    set_champion(store_copy, serving_versions.alternate)
    assert client.post("/admin/reload", headers=auth()).json()["new_version"] == serving_versions.alternate


def test_the_poll_refuses_a_broken_champion_once_and_keeps_serving(
    make_client: Any, store_copy: StoreRef, serving_versions: ServingVersions
) -> None:
    client = make_client(store_copy.tracking_uri, registry_poll_seconds=0.2)
    set_champion(store_copy, serving_versions.broken)
    assert wait_for(
        lambda: (
            metric(client, "lifeboat_model_reload_failures_total", trigger="poll", reason="artifact") == 1
        ),
        timeout=30,
    )
    time.sleep(1.5)  # several more polls: the refused version is not downloaded again
    assert metric(client, "lifeboat_model_reload_failures_total", trigger="poll", reason="artifact") == 1
    ready = client.get("/ready").json()
    assert ready["model_version"] == store_copy.version
    assert "not servable" in ready["reason"]
    assert client.post("/predict", json=ORDINARY).json()["model_version"] == store_copy.version


def test_a_reload_reaches_every_worker_through_the_fleet_board(
    make_client: Any, store_copy: StoreRef, serving_versions: ServingVersions, tmp_path: Path
) -> None:
    shared = tmp_path / "shared-state"  # two apps with one state folder = two workers of one server
    first = make_client(store_copy.tracking_uri, state_dir=shared)
    second = make_client(store_copy.tracking_uri, state_dir=shared)
    assert first.get("/ready").json()["worker"] != second.get("/ready").json()["worker"]
    set_champion(store_copy, serving_versions.alternate)  # polling is off: only the fleet board can tell
    reload = first.post("/admin/reload", headers=auth())
    assert reload.status_code == 200
    body = reload.json()
    assert body["converged"] is True
    assert [w["model_version"] for w in body["workers"]] == [serving_versions.alternate] * 2
    assert second.get("/ready").json()["model_version"] == serving_versions.alternate
    assert second.post("/predict", json=ORDINARY).json()["model_version"] == serving_versions.alternate
    assert metric(second, "lifeboat_model_reloads_total", trigger="fleet") == 1


# --- latency (measured, not asserted) -----------------------------------------------------------------------


def test_measure_in_process_latency(
    served: Any, test_rows: list[dict[str, Any]], record_property: Any
) -> None:
    single: list[float] = []
    for i in range(300):
        started = time.perf_counter()
        response = served.post("/predict", json=test_rows[i % len(test_rows)])
        single.append(time.perf_counter() - started)
        assert response.status_code == 200
    rows = (test_rows * 3)[:1000]
    batch: list[float] = []
    for _ in range(15):
        started = time.perf_counter()
        response = served.post("/predict/batch", json={"passengers": rows})
        batch.append(time.perf_counter() - started)
        assert response.status_code == 200
        assert response.json()["count"] == 1000
    p50_single, p50_batch = statistics.median(single) * 1000, statistics.median(batch) * 1000
    record_property("predict_p50_ms", round(p50_single, 2))
    record_property("batch_1000_p50_ms", round(p50_batch, 1))
    print(f"\nin-process latency: /predict p50 {p50_single:.2f} ms, 1000-row batch p50 {p50_batch:.1f} ms")
