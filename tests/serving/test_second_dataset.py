"""A second dataset (adult) served beside titanic by one server: v1 and Open Inference Protocol routes.

adult's champion is a small scikit-learn ONNX model fitted on its spec's encoder (tests/support/models.py),
registered as ``adult`` in a copy of the serving test store that also holds titanic's real champion.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lifeboat.dataset.spec import load_spec
from lifeboat.monitoring.prediction_log import log_columns, read_window
from lifeboat.settings import Settings
from tests.serving.serving_support import (
    CHAMPION,
    REPO_ROOT,
    StoreRef,
    copy_store,
    serving_settings,
    without_ids,
)
from tests.support.models import mlflow_store, register_sklearn_version

pytestmark = pytest.mark.integration

ADULT_SPEC = REPO_ROOT / "data" / "adult" / "dataset.yaml"


@pytest.fixture(scope="module")
def two_datasets(champion_store: StoreRef, tmp_path_factory: pytest.TempPathFactory) -> StoreRef:
    """A store with titanic's champion and an adult champion (version ``1`` of the model ``adult``)."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("two-datasets")
    store = copy_store(champion_store, root / "store")
    settings = Settings(state_dir=root, mlflow_tracking_uri=store.tracking_uri, experiment_name="adult-tests")
    frame = pd.read_csv(REPO_ROOT / "data" / "adult" / "raw" / "train.csv", nrows=4000)
    with mlflow_store(settings) as uri:
        version = register_sklearn_version("adult", frame, spec=load_spec(ADULT_SPEC))
        MlflowClient(uri, uri).set_registered_model_alias("adult", CHAMPION, version)
    return store


@pytest.fixture(scope="module")
def client(two_datasets: StoreRef, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from serving.app import create_app

    settings = serving_settings(tmp_path_factory.mktemp("served-two"), two_datasets.tracking_uri)
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def example() -> dict[str, Any]:
    return dict(load_spec(ADULT_SPEC).example)


def test_both_datasets_are_ready(client: Any) -> None:
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/models/adult/ready").json() == {"name": "adult", "ready": True}
    assert client.get("/ready").json()["model_name"] == "titanic-serving-test"  # /ready: the default dataset


def test_adult_predict_answers_with_the_specs_field_names(client: Any, example: dict[str, Any]) -> None:
    response = client.post("/v1/datasets/adult/predict", json=example)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model_version"], body["count"]) == ("1", 1)
    (result,) = body["predictions"]
    assert set(result) == {"prediction", "probability", "drift_alerts", "model_version", "request_id"}
    assert 0 <= result["probability"] <= 1
    assert result["prediction"] == (1 if result["probability"] >= 0.5 else 0)
    assert result["drift_alerts"] == "No drift detected"


def test_adult_batch_json_csv_and_multipart_agree(client: Any, example: dict[str, Any]) -> None:
    rows = pd.read_csv(REPO_ROOT / "data" / "adult" / "raw" / "train.csv", nrows=6)
    rows = rows.drop(columns=["income_over_50k"])
    records = [{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in rows.to_dict("records")]
    batch = client.post("/v1/datasets/adult/predict/batch", json={"records": records})
    assert batch.status_code == 200, batch.text
    assert batch.json()["count"] == 6
    single = client.post("/v1/datasets/adult/predict", json=records[0]).json()["predictions"][0]
    assert without_ids(batch.json()["predictions"][0]) == without_ids(single)
    text = rows.to_csv(index=False)
    as_csv = client.post(
        "/v1/datasets/adult/predict/batch", content=text, headers={"Content-Type": "text/csv"}
    )
    upload = client.post("/v1/datasets/adult/predict/batch", files={"file": ("adult.csv", text, "text/csv")})
    assert without_ids(as_csv.json()) == without_ids(upload.json()) == without_ids(batch.json())


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"age": "39"}, "age"),
        ({"hours_per_week": 40.5}, "hours_per_week"),
        ({"sex": "male"}, "sex"),
        ({"marital_status": None}, "marital_status"),
        ({"capital_loss": 99999}, "capital_loss"),
        ({"income_over_50k": 0}, "income_over_50k"),
    ],
)
def test_adult_bad_input_is_a_422_naming_the_field(
    client: Any, example: dict[str, Any], changes: dict[str, Any], field: str
) -> None:
    response = client.post("/v1/datasets/adult/predict", json={**example, **changes})
    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["detail"]] == [["body", field]]


def test_adult_titanic_records_are_refused(client: Any) -> None:
    response = client.post("/v1/datasets/adult/predict", json={"Pclass": 3, "Sex": "male"})
    assert response.status_code == 422
    assert {"Pclass", "Sex", "age"} <= {e["loc"][-1] for e in response.json()["detail"]}


def test_adult_open_inference_metadata_and_infer(client: Any, example: dict[str, Any]) -> None:
    metadata = client.get("/v2/models/adult").json()
    inputs = {t["name"]: t["datatype"] for t in metadata["inputs"]}
    assert inputs["age"] == "INT64"
    assert inputs["workclass"] == "BYTES"
    assert "income_over_50k" not in inputs
    assert [o["name"] for o in metadata["outputs"]] == ["prediction", "probability", "drift_alerts"]
    request = {
        "inputs": [
            {"name": name, "shape": [1], "datatype": inputs[name], "data": [value]}
            for name, value in example.items()
        ]
    }
    response = client.post("/v2/models/adult/infer", json=request)
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o["data"] for o in response.json()["outputs"]}
    v1 = client.post("/v1/datasets/adult/predict", json=example).json()["predictions"][0]
    assert outputs == {
        "prediction": [v1["prediction"]],
        "probability": [v1["probability"]],
        "drift_alerts": [v1["drift_alerts"]],
    }
    assert response.json()["model_version"] == "1"


def test_predictions_are_counted_and_logged_per_dataset(client: Any, example: dict[str, Any]) -> None:
    assert client.post("/v1/datasets/adult/predict", json=example).status_code == 200
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for s in family.samples:
            if s.name == "lifeboat_predictions_total":
                counts[s.labels["dataset"]] = counts.get(s.labels["dataset"], 0) + s.value
    assert counts["adult"] >= 1
    served = client.app.state.serving.datasets["adult"]
    assert served.prediction_log.flush()
    assert served.prediction_log.stats().written >= 1
    assert Path(served.settings.prediction_log_path).parent.name == "adult"
    window = read_window(served.settings.prediction_log_path, columns=log_columns(load_spec(ADULT_SPEC)))
    logged = window.iloc[-1]
    assert {c: logged[c] for c in example} == example
    assert "PassengerId" not in window.columns
    assert logged["model_version"] == "1"


def test_adult_requests_feed_its_drift_report(client: Any, tmp_path: Path) -> None:
    from lifeboat.monitoring.checks import run_drift

    served = client.app.state.serving.datasets["adult"]
    rows = pd.read_csv(REPO_ROOT / "data" / "adult" / "raw" / "train.csv", skiprows=range(1, 8001), nrows=400)
    records = [
        {k: (None if pd.isna(v) else v) for k, v in r.items() if k != "income_over_50k"}
        for r in rows.to_dict("records")
    ]
    response = client.post("/v1/datasets/adult/predict/batch", json={"records": records})
    assert response.status_code == 200, response.text
    assert served.prediction_log.flush()
    settings = served.settings.model_copy(update={"reports_dir": tmp_path})
    summary = run_drift(settings, source="requests", name="adult-requests")
    assert summary.current_rows >= 400
    assert summary.status == "no_drift", summary.message
    assert list(summary.columns)[:2] == ["age", "education_num"]
    assert "sex" in summary.columns
    assert (tmp_path / "adult-requests.html").is_file()
