"""Request ids: in every answer and its ``X-Request-ID`` header, kept from a valid client id, one per row
(``<id>-<row>`` in batches), and stored in the prediction log (single, batch, v1 and v2 routes)."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from lifeboat.monitoring.prediction_log import read_window
from serving.request_ids import is_valid, new_id, row_ids
from tests.serving.serving_support import StoreRef

pytestmark = pytest.mark.integration

PASSENGER = {
    "Pclass": 1,
    "Sex": "female",
    "Age": 47.0,
    "SibSp": 1,
    "Parch": 0,
    "Embarked": "C",
    "Fare": 71.28,
}
OTHER = {"Pclass": 3, "Sex": "male", "Age": 22.0, "SibSp": 0, "Parch": 0, "Embarked": "S", "Fare": 7.25}
GENERATED = re.compile(r"[0-9a-f]{12}7[0-9a-f]{3}[89ab][0-9a-f]{15}")  # UUIDv7, 32 hex digits
V1 = "/v1/datasets/titanic"


def v2_request(rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    kinds = {"Pclass": "INT64", "Sex": "BYTES", "Age": "FP64", "SibSp": "INT64", "Parch": "INT64"}
    inputs = [
        {"name": name, "shape": [len(rows)], "datatype": kind, "data": [r[name] for r in rows]}
        for name, kind in kinds.items()
    ]
    return {"inputs": inputs, **extra}


@pytest.fixture
def client(make_client: Callable[..., Any], champion_store: StoreRef) -> Any:
    """A fresh app with its own prediction log."""
    return make_client(champion_store.tracking_uri)


def logged_ids(client: Any) -> list[str | None]:
    serving = client.app.state.serving
    assert serving.prediction_log.flush()
    return read_window(serving.settings.prediction_log_path)["request_id"].tolist()


def test_valid_ids_and_batch_row_ids() -> None:
    assert all(is_valid(v) for v in ("a", "req-1.2_3:x", "A" * 128))
    assert not any(is_valid(v) for v in (None, "", "A" * 129, "has space", "é", "a/b", "x\ny"))
    assert row_ids("abc", 3) == ["abc-0", "abc-1", "abc-2"]


def test_generated_ids_are_uuid7_in_time_order() -> None:
    ids = [new_id() for _ in range(1000)]
    assert all(GENERATED.fullmatch(i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert uuid.UUID(ids[0]).version == 7
    stamps = [int(i[:12], 16) for i in ids]  # milliseconds: ordered, near now
    assert stamps == sorted(stamps)
    assert abs(stamps[-1] - time.time() * 1000) < 60_000


def test_single_prediction_has_a_generated_id_in_body_header_and_log(client: Any) -> None:
    first = client.post("/predict", json=PASSENGER)
    second = client.post("/predict", json=PASSENGER)
    assert first.status_code == second.status_code == 200
    ids = [r.json()["request_id"] for r in (first, second)]
    assert [r.headers["X-Request-ID"] for r in (first, second)] == ids
    assert all(GENERATED.fullmatch(i) for i in ids)
    assert ids[0] != ids[1]  # unique across requests
    assert logged_ids(client) == ids


def test_a_valid_client_id_is_kept_on_both_lanes(client: Any) -> None:
    fast = client.post("/predict", json=PASSENGER, headers={"X-Request-ID": "client:42"})
    # a Content-Type with parameters goes through FastAPI's declared route instead of the fast lane
    declared = client.post(
        "/predict",
        content=b'{"Pclass": 3, "Sex": "male", "SibSp": 0, "Parch": 0}',
        headers={"X-Request-ID": "client.43", "Content-Type": "application/json; charset=utf-8"},
    )
    assert (fast.json()["request_id"], fast.headers["X-Request-ID"]) == ("client:42", "client:42")
    assert (declared.json()["request_id"], declared.headers["X-Request-ID"]) == ("client.43", "client.43")
    assert logged_ids(client) == ["client:42", "client.43"]


@pytest.mark.parametrize("sent", ["has space", "x" * 129, "semi;colon", ""])
def test_an_invalid_client_id_is_replaced_not_refused(client: Any, sent: str) -> None:
    response = client.post("/predict", json=PASSENGER, headers={"X-Request-ID": sent})
    assert response.status_code == 200
    assert GENERATED.fullmatch(response.json()["request_id"])
    assert response.headers["X-Request-ID"] == response.json()["request_id"]


def test_batch_rows_get_id_dash_row(client: Any) -> None:
    sent = client.post(
        "/predict/batch", json={"passengers": [PASSENGER, OTHER, PASSENGER]}, headers={"X-Request-ID": "b7"}
    )
    assert sent.status_code == 200
    assert sent.headers["X-Request-ID"] == "b7"
    assert [p["request_id"] for p in sent.json()["predictions"]] == ["b7-0", "b7-1", "b7-2"]
    generated = client.post("/predict/batch", json={"passengers": [PASSENGER, OTHER]})
    base = generated.headers["X-Request-ID"]
    assert GENERATED.fullmatch(base)
    assert [p["request_id"] for p in generated.json()["predictions"]] == [f"{base}-0", f"{base}-1"]
    assert logged_ids(client) == ["b7-0", "b7-1", "b7-2", f"{base}-0", f"{base}-1"]


def test_v1_routes_carry_request_ids(client: Any) -> None:
    single = client.post(f"{V1}/predict", json=PASSENGER, headers={"X-Request-ID": "v1-single"})
    assert single.status_code == 200, single.text
    assert single.headers["X-Request-ID"] == "v1-single"
    assert single.json()["predictions"][0]["request_id"] == "v1-single"
    batch = client.post(f"{V1}/predict/batch", json={"records": [PASSENGER, OTHER]})
    assert batch.status_code == 200, batch.text
    base = batch.headers["X-Request-ID"]
    assert [p["request_id"] for p in batch.json()["predictions"]] == [f"{base}-0", f"{base}-1"]
    assert logged_ids(client) == ["v1-single", f"{base}-0", f"{base}-1"]


def test_v2_infer_echoes_its_id_and_logs_id_dash_row(client: Any) -> None:
    own = client.post("/v2/models/titanic/infer", json=v2_request([PASSENGER, OTHER], id="oip-1"))
    assert own.status_code == 200, own.text
    assert own.json()["id"] == own.headers["X-Request-ID"] == "oip-1"
    from_header = client.post(
        "/v2/models/titanic/infer", json=v2_request([OTHER]), headers={"X-Request-ID": "hdr-9"}
    )
    assert from_header.json()["id"] == from_header.headers["X-Request-ID"] == "hdr-9"
    generated = client.post("/v2/models/titanic/infer", json=v2_request([PASSENGER]))
    base = generated.json()["id"]
    assert GENERATED.fullmatch(base)
    assert generated.headers["X-Request-ID"] == base
    odd = client.post("/v2/models/titanic/infer", json=v2_request([PASSENGER], id="an id with spaces"))
    assert odd.json()["id"] == "an id with spaces"  # echoed as the protocol says; not a header value
    assert "X-Request-ID" not in odd.headers
    assert logged_ids(client) == ["oip-1-0", "oip-1-1", "hdr-9-0", f"{base}-0", "an id with spaces-0"]


def test_openapi_documents_the_header(client: Any) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/predict",
        "/predict/batch",
        "/v1/datasets/{dataset}/predict",
        "/v2/models/{dataset}/infer",
    ):
        operation = paths[path]["post"]
        assert "X-Request-ID" in {p["name"] for p in operation.get("parameters", [])}, path
        assert "X-Request-ID" in operation["responses"]["200"]["headers"], path
    prediction = client.get("/openapi.json").json()["components"]["schemas"]["PredictionOut"]
    assert "request_id" in prediction["required"]
