"""The Open Inference Protocol (KServe v2 REST) on the titanic champion: health, metadata, infer, errors."""

from __future__ import annotations

from typing import Any

import pytest

from tests.serving.serving_support import StoreRef

pytestmark = pytest.mark.integration

ROWS: list[dict[str, Any]] = [
    {"Pclass": 1, "Sex": "female", "Age": 47.0, "SibSp": 1, "Parch": 0, "Embarked": "C", "Fare": 71.28},
    {"Pclass": 3, "Sex": "male", "Age": None, "SibSp": 0, "Parch": 0, "Embarked": None, "Fare": 7.25},
]
TYPES = {"Pclass": "INT64", "Sex": "BYTES", "Age": "FP64", "SibSp": "INT64", "Parch": "INT64"}
TYPES |= {"Embarked": "BYTES", "Fare": "FP64"}


def tensors(rows: list[dict[str, Any]], **overrides: dict[str, Any]) -> dict[str, Any]:
    """An inference request with one tensor per column (MLServer's pandas codec layout)."""
    inputs = [
        {"name": name, "shape": [len(rows)], "datatype": kind, "data": [r[name] for r in rows]}
        for name, kind in TYPES.items()
    ]
    for tensor in inputs:
        tensor.update(overrides.get(tensor["name"], {}))
    return {"id": "request-1", "parameters": {"content_type": "pd"}, "inputs": inputs}


def test_health_live_and_ready(served: Any) -> None:
    live = served.get("/v2/health/live")
    assert (live.status_code, live.json()) == (200, {"live": True})
    # adult has no champion in the test registry: the server is not ready as a whole, titanic is
    assert served.get("/v2/health/ready").status_code == 503
    assert served.get("/v2/models/titanic/ready").status_code == 200


def test_metadata_describes_one_input_tensor_per_column(served: Any, champion_store: StoreRef) -> None:
    response = served.get("/v2/models/titanic")
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "titanic"
    assert body["versions"] == [champion_store.version]
    assert body["platform"] == "onnxruntime_onnx"
    inputs = {t["name"]: (t["datatype"], t["shape"]) for t in body["inputs"]}
    assert set(inputs) == {
        "PassengerId", "Pclass", "Name", "Sex", "Age", "SibSp", "Parch", "Ticket", "Fare", "Cabin", "Embarked"
    }  # fmt: skip
    assert {name: inputs[name][0] for name in TYPES} == TYPES
    assert all(shape == [-1] for _, shape in inputs.values())
    assert body["outputs"] == [
        {"name": "survived", "datatype": "INT64", "shape": [-1]},
        {"name": "probability_survive", "datatype": "FP64", "shape": [-1]},
        {"name": "drift_alerts", "datatype": "BYTES", "shape": [-1]},
    ]
    version = served.get(f"/v2/models/titanic/versions/{champion_store.version}")
    assert version.json() == body
    assert served.get("/v2/models/titanic/versions/999").status_code == 404


def test_infer_answers_what_the_v1_batch_answers(served: Any, champion_store: StoreRef) -> None:
    response = served.post("/v2/models/titanic/infer", json=tensors(ROWS))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "titanic"
    assert body["model_version"] == champion_store.version
    assert body["id"] == "request-1"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert [o["name"] for o in body["outputs"]] == ["survived", "probability_survive", "drift_alerts"]
    assert {o["datatype"] for o in body["outputs"]} == {"INT64", "FP64", "BYTES"}
    assert all(o["shape"] == [2] for o in body["outputs"])
    v1 = served.post("/v1/datasets/titanic/predict/batch", json={"records": ROWS}).json()["predictions"]
    assert outputs["survived"]["data"] == [p["survived"] for p in v1]
    assert outputs["probability_survive"]["data"] == [p["probability_survive"] for p in v1]
    assert outputs["drift_alerts"]["data"] == [p["drift_alerts"] for p in v1]
    # a [N, 1] tensor with nested data, and an output filter, are accepted
    nested = tensors(ROWS, Age={"shape": [2, 1], "data": [[47.0], [None]]})
    nested["outputs"] = [{"name": "probability_survive"}]
    again = served.post("/v2/models/titanic/versions/" + champion_store.version + "/infer", json=nested)
    assert again.status_code == 200, again.text
    assert [o["name"] for o in again.json()["outputs"]] == ["probability_survive"]
    assert again.json()["outputs"][0]["data"] == outputs["probability_survive"]["data"]


@pytest.mark.parametrize(
    ("request_body", "status", "words"),
    [
        (tensors(ROWS, Pclass={"datatype": "FP64"}), 400, ["'Pclass'", "FP64"]),
        (tensors(ROWS, Sex={"datatype": "INT64"}), 400, ["'Sex'", "INT64"]),
        (tensors(ROWS, Age={"shape": [3]}), 400, ["'Age'", "[3]"]),
        (tensors(ROWS, Age={"shape": [2, 2]}), 400, ["'Age'"]),
        (tensors(ROWS, Pclass={"data": [1, 7]}), 400, ["'Pclass'", "row 1", "1, 2, 3"]),
        (tensors(ROWS, Sex={"data": ["female", None]}), 400, ["'Sex'", "row 1"]),
        (tensors(ROWS, SibSp={"data": [1, "0"]}), 400, ["'SibSp'", "row 1"]),
        (tensors(ROWS, Fare={"data": [71.28, 1e6]}), 400, ["'Fare'", "row 1"]),
        (tensors(ROWS, Pclass={"name": "pclass"}), 400, ["unknown input 'pclass'"]),
        ({"inputs": []}, 400, ["inputs"]),
        ({"inputs": tensors(ROWS)["inputs"][1:]}, 400, ["'Pclass'", "Field required"]),
        ({**tensors(ROWS), "outputs": [{"name": "nope"}]}, 400, ["unknown output 'nope'"]),
        ([1, 2], 400, ["JSON object"]),
    ],
)
def test_infer_errors_follow_the_protocol(
    served: Any, request_body: Any, status: int, words: list[str]
) -> None:
    response = served.post("/v2/models/titanic/infer", json=request_body)
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}
    for word in words:
        assert word in response.json()["error"]


def test_infer_refuses_a_body_that_is_not_json(served: Any) -> None:
    response = served.post(
        "/v2/models/titanic/infer", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]
