"""One server, every dataset: the v1 routes, 404/422/503 per dataset, reload and metrics by dataset.

The shared app (``served``) hosts every dataset under data/ (titanic and adult): titanic's champion is the
session's real one, adult has no champion in the test registry, so it is "not ready" on its own routes while
titanic serves.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lifeboat.registry.artifact import CANARY_PASSENGER
from lifeboat.settings import Settings, SettingsError
from tests.serving.serving_support import TOKEN, StoreRef, auth, without_ids

pytestmark = pytest.mark.integration

GOOD: dict[str, Any] = dict(CANARY_PASSENGER)
MINIMAL: dict[str, Any] = {"Pclass": 3, "Sex": "male", "SibSp": 0, "Parch": 0}
V1 = "/v1/datasets/titanic"
CSV = (
    "PassengerId,Pclass,Name,Sex,Age,SibSp,Parch,Ticket,Fare,Cabin,Embarked\n"
    '892,3,"Kelly, Mr. James",male,34.5,0,0,330911,7.8292,,Q\n'
    "893,1,,female,47,1,0,,71.28,C85,C\n"
)


def with_(**changes: Any) -> dict[str, Any]:
    return {**GOOD, **changes}


def without(field: str) -> dict[str, Any]:
    return {k: v for k, v in GOOD.items() if k != field}


def sample(client: Any, name: str, **labels: str) -> float | None:
    """One sample of /metrics (None when absent)."""
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


# --- v1 predictions -----------------------------------------------------------------------------------------


def test_v1_predict_answers_the_batch_shape_with_the_specs_field_names(served: Any) -> None:
    single = served.post("/predict", json=GOOD)
    answer = served.post(f"{V1}/predict", json=GOOD)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"model_version", "count", "predictions"}
    assert body["count"] == 1
    # titanic's spec names the fields survived / probability_survive: the same answer as /predict
    assert without_ids(body["predictions"]) == [without_ids(single.json())]
    assert body["model_version"] == single.json()["model_version"]


def test_v1_batch_json_csv_and_multipart_agree_with_single_records(served: Any) -> None:
    rows = [GOOD, MINIMAL]
    batch = served.post(f"{V1}/predict/batch", json={"records": rows})
    assert batch.status_code == 200, batch.text
    assert batch.json()["count"] == 2
    singles = [served.post(f"{V1}/predict", json=r).json()["predictions"][0] for r in rows]
    assert without_ids(batch.json()["predictions"]) == without_ids(singles)
    as_csv = served.post(f"{V1}/predict/batch", content=CSV, headers={"Content-Type": "text/csv"})
    upload = served.post(f"{V1}/predict/batch", files={"file": ("rows.csv", CSV, "text/csv")})
    assert as_csv.status_code == upload.status_code == 200, as_csv.text + upload.text
    assert without_ids(as_csv.json()) == without_ids(upload.json())
    assert as_csv.json()["count"] == 2
    legacy = served.post("/predict/batch", content=CSV, headers={"Content-Type": "text/csv"}).json()
    assert without_ids(as_csv.json()["predictions"]) == without_ids(legacy["predictions"])


@pytest.mark.parametrize(
    ("payload", "field", "kind"),
    [
        (with_(Pclass="3"), "Pclass", "int_type"),  # a string is not an integer
        (with_(Pclass=3.0), "Pclass", "int_type"),  # integers must be JSON integers
        (with_(SibSp=True), "SibSp", "int_type"),  # booleans are not numbers
        (with_(Age="34"), "Age", "float_type"),  # a string is not a number
        (with_(Age=121), "Age", "less_than_equal"),  # out of range
        (with_(SibSp=-1), "SibSp", "greater_than_equal"),
        (with_(Pclass=4), "Pclass", "value_error"),  # out of the vocabulary
        (with_(Sex="Male"), "Sex", "literal_error"),
        (with_(Sex=None), "Sex", "literal_error"),  # null where the column is not nullable
        (without("Parch"), "Parch", "missing"),
        (with_(Survived=1), "Survived", "extra_forbidden"),  # the label is not an input
        (with_(Deck="C"), "Deck", "extra_forbidden"),
        (with_(Name="x" * 201), "Name", "string_too_long"),
    ],
)
def test_v1_bad_input_is_a_422_naming_the_field(served: Any, payload: Any, field: str, kind: str) -> None:
    response = served.post(f"{V1}/predict", json=payload)
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert [(e["loc"], e["type"]) for e in errors] == [(["body", field], kind)]


def test_v1_nan_and_broken_json_are_422_never_5xx(served: Any) -> None:
    nan = json.dumps({**GOOD, "Age": "__X__"}).replace('"__X__"', "NaN")
    response = served.post(f"{V1}/predict", content=nan, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "Age"]
    broken = served.post(f"{V1}/predict", content=b"{", headers={"Content-Type": "application/json"})
    assert broken.status_code == 422
    assert broken.json()["detail"][0]["type"] == "json_invalid"
    assert (
        served.post(f"{V1}/predict", content=b"a", headers={"Content-Type": "text/plain"}).status_code == 415
    )


def test_id_and_ignored_columns_are_optional(served: Any) -> None:
    # PassengerId (role id) and Ticket (role ignored) may be left out, as /predict allows
    response = served.post(f"{V1}/predict", json={k: v for k, v in GOOD.items() if k != "PassengerId"})
    assert response.status_code == 200, response.text


def test_v1_batch_422_lists_every_invalid_row_and_field(served: Any) -> None:
    rows = [GOOD, with_(Age=-3), without("Sex"), GOOD]
    response = served.post(f"{V1}/predict/batch", json={"records": rows})
    assert response.status_code == 422
    body = response.json()
    assert body["invalid_rows"] == [1, 2]
    assert {(e["row"], e["field"]) for e in body["errors"]} == {(1, "Age"), (2, "Sex")}
    assert served.post(f"{V1}/predict/batch", json={"passengers": rows}).status_code == 422
    assert served.post(f"{V1}/predict/batch", json={"records": []}).status_code == 422
    bad_csv = CSV.replace("PassengerId", "Passenger")
    response = served.post(f"{V1}/predict/batch", content=bad_csv, headers={"Content-Type": "text/csv"})
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"Passenger"}


# --- 404 and 503 by dataset ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/v1/datasets/nosuch/predict"),
        ("post", "/v1/datasets/nosuch/predict/batch"),
        ("get", "/v2/models/nosuch"),
        ("get", "/v2/models/nosuch/ready"),
        ("post", "/v2/models/nosuch/infer"),
    ],
)
def test_an_unknown_dataset_is_a_404_naming_the_hosted_ones(served: Any, method: str, path: str) -> None:
    response = getattr(served, method)(path, **({"json": GOOD} if method == "post" else {}))
    assert response.status_code == 404
    body = response.json()
    message = body.get("detail") or body.get("error")
    assert message == "unknown dataset 'nosuch'; this server hosts titanic, adult"


def test_a_dataset_without_a_champion_is_not_ready_while_titanic_serves(served: Any) -> None:
    response = served.post("/v1/datasets/adult/predict", json={"age": 40})
    assert response.status_code == 503
    assert "adult@champion" in response.json()["detail"]
    assert served.post("/v1/datasets/adult/predict/batch", json={"records": [{}]}).status_code == 503
    assert served.get("/v2/models/adult/ready").status_code == 503
    assert served.get("/v2/models/adult/ready").json() == {"name": "adult", "ready": False}
    assert served.get("/v2/models/adult").status_code == 503
    assert "error" in served.get("/v2/models/adult").json()
    assert served.get("/v2/health/ready").json() == {"ready": False, "not_ready": ["adult"]}
    # titanic is unaffected
    assert served.post(f"{V1}/predict", json=GOOD).status_code == 200
    assert served.get("/ready").status_code == 200
    assert served.get("/v2/models/titanic/ready").json() == {"name": "titanic", "ready": True}


# --- reload and metrics by dataset --------------------------------------------------------------------------


def test_reload_takes_a_dataset_by_query_or_body(make_client: Any, champion_store: StoreRef) -> None:
    client = make_client(champion_store.tracking_uri)
    adult = client.post("/admin/reload?dataset=adult", headers=auth())
    assert adult.status_code == 404
    assert "adult@champion" in adult.json()["detail"]
    titanic = client.post("/admin/reload", json={"dataset": "titanic"}, headers=auth())
    assert titanic.status_code == 200, titanic.text
    assert titanic.json()["new_version"] == champion_store.version
    default = client.post("/admin/reload", headers=auth())  # no dataset: the default one, as before
    assert default.status_code == 200
    unknown = client.post("/admin/reload?dataset=nosuch", headers=auth())
    assert unknown.status_code == 404
    assert "titanic, adult" in unknown.json()["detail"]
    bad = client.post("/admin/reload", content=b"[1]", headers={**auth(), "Content-Type": "application/json"})
    assert bad.status_code == 400
    assert client.post("/admin/reload?dataset=adult", headers=auth(TOKEN + "x")).status_code == 403
    assert sample(client, "lifeboat_model_reload_failures_total", dataset="adult", trigger="admin") == 1
    assert sample(client, "lifeboat_model_reloads_total", dataset="titanic", trigger="admin") is None
    assert sample(client, "lifeboat_model_reloads_total", dataset="titanic", trigger="startup") == 1


def test_metrics_carry_a_dataset_label(served: Any, champion_store: StoreRef) -> None:
    before = sample(served, "lifeboat_predict_model_calls_total", dataset="titanic") or 0
    assert served.post(f"{V1}/predict", json=GOOD).status_code == 200
    assert (sample(served, "lifeboat_predict_model_calls_total", dataset="titanic") or 0) >= before + 1
    assert sample(served, "lifeboat_model_loaded", dataset="titanic") == 1
    assert sample(served, "lifeboat_model_loaded", dataset="adult") == 0
    version = champion_store.version
    assert sample(served, "lifeboat_model_info", dataset="titanic", version=version) == 1
    assert sample(served, "lifeboat_predictions_total", dataset="adult", survived="1") == 0
    assert sample(served, "lifeboat_prediction_log_written_rows_total", dataset="adult") is not None


# --- which datasets a server hosts --------------------------------------------------------------------------


def test_serving_datasets_setting(tmp_path: Path) -> None:
    for name in ("titanic", "adult", "extra"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "dataset.yaml").write_text("name: x\n")
    settings = Settings(data_root=tmp_path)
    assert settings.served_datasets() == ["titanic", "adult", "extra"]
    assert Settings(data_root=tmp_path, serving_datasets="adult").served_datasets() == ["titanic", "adult"]
    assert Settings(
        data_root=tmp_path, dataset="adult", serving_datasets="extra, adult"
    ).served_datasets() == [
        "adult",
        "extra",
    ]
    with pytest.raises(SettingsError, match="'Bad-Name'"):
        Settings(data_root=tmp_path, serving_datasets="adult,Bad-Name").served_datasets()


def test_a_server_hosts_only_the_chosen_datasets(make_client: Any, champion_store: StoreRef) -> None:
    client = make_client(champion_store.tracking_uri, serving_datasets="titanic")
    assert client.get("/v2/health/ready").json() == {"ready": True}
    response = client.post("/v1/datasets/adult/predict", json={})
    assert response.status_code == 404
    assert response.json()["detail"] == "unknown dataset 'adult'; this server hosts titanic"


def test_the_environments_model_name_belongs_to_the_default_dataset_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LIFEBOAT_MODEL_NAME", "titanic-from-env")
    monkeypatch.delenv("LIFEBOAT_DATASET", raising=False)
    settings = Settings()
    assert settings.model_name == "titanic-from-env"
    adult = settings.for_dataset("adult")
    assert (adult.model_name, adult.experiment_name) == ("adult", "adult-retrain")
    assert adult.prediction_log_path == settings.state_dir / "adult" / "predictions.sqlite"
