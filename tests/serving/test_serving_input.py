"""Strict input: every class of bad input is a 4xx naming the field (or the problem), never a 5xx."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lifeboat.registry.artifact import CANARY_PASSENGER
from tests.serving.serving_support import StoreRef

pytestmark = pytest.mark.integration

GOOD: dict[str, Any] = dict(CANARY_PASSENGER)
JSON = {"Content-Type": "application/json"}


def with_(**changes: Any) -> dict[str, Any]:
    return {**GOOD, **changes}


def without(field: str) -> dict[str, Any]:
    return {k: v for k, v in GOOD.items() if k != field}


def raw_with(field: str, literal: str) -> bytes:
    """GOOD as JSON text with ``field``'s value replaced by a raw literal (NaN, Infinity, huge numbers)."""
    text = json.dumps({**GOOD, field: "__X__"})
    return text.replace('"__X__"', literal).encode()


def fields_named(response: Any) -> set[str]:
    return {str(e["loc"][-1]) for e in response.json()["detail"] if len(e["loc"]) > 1}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (with_(Pclass="3"), "Pclass"),  # strings are not numbers
        (with_(Pclass=3.0), "Pclass"),  # integers must be JSON integers
        (with_(Pclass=True), "Pclass"),  # booleans are not numbers
        (with_(Pclass=4), "Pclass"),
        (with_(Pclass=0), "Pclass"),
        (with_(Pclass=10**30), "Pclass"),
        (without("Pclass"), "Pclass"),
        (with_(Pclass=None), "Pclass"),
        (with_(Sex="Male"), "Sex"),
        (with_(Sex="m"), "Sex"),
        (without("Sex"), "Sex"),
        (with_(Age=-1), "Age"),
        (with_(Age=120.5), "Age"),
        (with_(Age="34"), "Age"),
        (with_(Age=False), "Age"),
        (with_(Age=[34]), "Age"),
        (with_(SibSp=1.5), "SibSp"),
        (with_(SibSp=-1), "SibSp"),
        (with_(SibSp=21), "SibSp"),
        (with_(Parch="0"), "Parch"),
        (without("Parch"), "Parch"),
        (with_(Fare=1000.01), "Fare"),
        (with_(Fare=-0.5), "Fare"),
        (with_(Fare={"amount": 7}), "Fare"),
        (with_(Embarked="X"), "Embarked"),
        (with_(Embarked=""), "Embarked"),
        (with_(Embarked="s"), "Embarked"),
        (with_(Name="x" * 201), "Name"),
        (with_(Name=12), "Name"),
        (with_(Ticket="t" * 65), "Ticket"),
        (with_(Cabin="c" * 65), "Cabin"),
        (with_(PassengerId=0), "PassengerId"),
        (with_(PassengerId="892"), "PassengerId"),
        (with_(Survived=1), "Survived"),  # unknown fields are refused
        (with_(pclass=3), "pclass"),
    ],
)
def test_bad_fields_are_422_naming_the_field(served: Any, payload: dict[str, Any], field: str) -> None:
    response = served.post("/predict", json=payload)
    assert response.status_code == 422
    assert field in fields_named(response)


@pytest.mark.parametrize(
    ("field", "literal"),
    [
        ("Age", "NaN"),
        ("Age", "Infinity"),
        ("Age", "-Infinity"),
        ("Fare", "NaN"),
        ("Fare", "1e400"),
        ("SibSp", "NaN"),
        ("Pclass", "Infinity"),
        ("Name", "NaN"),
    ],
)
def test_nan_and_infinity_literals_are_refused(served: Any, field: str, literal: str) -> None:
    response = served.post("/predict", content=raw_with(field, literal), headers=JSON)
    assert response.status_code == 422
    assert field in fields_named(response)


@pytest.mark.parametrize(
    ("body", "headers", "status", "says"),
    [
        (b"", JSON, 422, "body"),
        (b"   ", JSON, 422, "body"),
        (b"{", JSON, 422, "JSON"),
        (b"[]", JSON, 422, "body"),
        (b"null", JSON, 422, "body"),
        (b'"a passenger"', JSON, 422, "body"),
        (b'{"Pclass": 1' + b"0" * 5000 + b"}", JSON, 400, "parsing"),  # beyond Python's int digit limit
        (b'{"Name": "\xff\xfe"}', JSON, 400, "parsing"),  # not UTF-8
        (json.dumps(GOOD).encode(), {"Content-Type": "text/plain"}, 415, "application/json"),
        (
            json.dumps(GOOD).encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
            415,
            "application/json",
        ),
        (json.dumps(GOOD).encode(), {}, 415, "none"),
    ],
)
def test_malformed_bodies_are_4xx(
    served: Any, body: bytes, headers: dict[str, str], status: int, says: str
) -> None:
    response = served.post("/predict", content=body, headers=headers)
    assert response.status_code == status
    assert says in response.text


def test_a_body_over_the_limit_is_413_declared_or_streamed(
    make_client: Any, champion_store: StoreRef
) -> None:
    client = make_client(champion_store.tracking_uri, max_body_bytes=4096)
    big = json.dumps(with_(Name="x" * 5000)).encode()
    declared = client.post("/predict", content=big, headers=JSON)
    assert declared.status_code == 413
    assert "4096" in declared.json()["detail"]

    def chunks() -> Any:  # no Content-Length: the limit is enforced while the body streams in
        for start in range(0, len(big), 1000):
            yield big[start : start + 1000]

    streamed = client.post("/predict", content=chunks(), headers=JSON)
    assert streamed.status_code == 413
    batch = client.post(
        "/predict/batch",
        content=b"PassengerId,Pclass\n" + b"1,3\n" * 2000,
        headers={"Content-Type": "text/csv"},
    )
    assert batch.status_code == 413
    assert client.post("/predict", json=GOOD).status_code == 200  # the limit leaves normal requests alone


# --- batches ------------------------------------------------------------------------------------------------


def test_a_batch_with_bad_rows_lists_every_row_and_field_and_scores_nothing(served: Any) -> None:
    rows = [GOOD, with_(Age=-3), GOOD, with_(Sex="x", Pclass="1"), GOOD]
    response = served.post("/predict/batch", json={"passengers": rows})
    assert response.status_code == 422
    body = response.json()
    assert body["invalid_rows"] == [1, 3]
    assert {(e["row"], e["field"]) for e in body["errors"]} == {(1, "Age"), (3, "Sex"), (3, "Pclass")}
    assert body["error_count"] == 3
    assert "nothing was scored" in body["detail"]
    assert "predictions" not in body


def test_nan_inside_a_json_batch_is_refused_by_row(served: Any) -> None:
    text = json.dumps({"passengers": [GOOD, {**GOOD, "Fare": "__X__"}]}).replace('"__X__"', "NaN")
    response = served.post("/predict/batch", content=text.encode(), headers=JSON)
    assert response.status_code == 422
    assert [(e["row"], e["field"]) for e in response.json()["errors"]] == [(1, "Fare")]


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        ({"passengers": []}, "no passengers"),
        ([GOOD], '{"passengers": [...]}'),  # one documented shape: the object
        ({"passengers": GOOD}, "malformed"),
        ({"passengers": [GOOD], "limit": 3}, "malformed"),
        ({"rows": [GOOD]}, "malformed"),
    ],
)
def test_malformed_json_batches_are_422(served: Any, payload: Any, says: str) -> None:
    response = served.post("/predict/batch", json=payload)
    assert response.status_code == 422
    assert says in response.json()["detail"]


def test_batches_over_the_row_limit_are_refused(make_client: Any, champion_store: StoreRef) -> None:
    client = make_client(champion_store.tracking_uri, max_batch_rows=5)
    assert client.post("/predict/batch", json={"passengers": [GOOD] * 5}).status_code == 200
    too_many = client.post("/predict/batch", json={"passengers": [GOOD] * 6})
    assert too_many.status_code == 422
    assert "maximum is 5" in too_many.json()["detail"]
    csv = "Pclass,Sex,SibSp,Parch\n" + "3,male,0,0\n" * 6
    assert client.post("/predict/batch", content=csv, headers={"Content-Type": "text/csv"}).status_code == 422


HEADER = "PassengerId,Pclass,Name,Sex,Age,SibSp,Parch,Ticket,Fare,Cabin,Embarked\n"


@pytest.mark.parametrize(
    ("csv", "expected"),
    [
        (HEADER + '1,3,"A, Mr. B",male,abc,0,0,T,7.25,,S\n', {(0, "Age")}),
        (
            HEADER + '1,3,"A, Mr. B",male,22,0,0,T,7.25,,S\n2,4,"C, Mrs. D",unknown,30,0,0,T,8,,S\n',
            {(1, "Pclass"), (1, "Sex")},
        ),
        (HEADER + '1,3,"A, Mr. B",male,nan,0,0,T,inf,,S\n', {(0, "Age"), (0, "Fare")}),
        (HEADER + '1,3,"A, Mr. B",male,22,0.5,0,T,7.25,,S\n', {(0, "SibSp")}),
        (HEADER + '1,3,"A, Mr. B",male,22,0,0,T,7.25,,S,extra\n', {(0, None)}),
        (HEADER + '1,3,"A, Mr. B",male,22,0,0,T,7.25,,X\n', {(0, "Embarked")}),
        (
            HEADER.replace("Sex", "Gender") + '1,3,"A, Mr. B",male,22,0,0,T,7.25,,S\n',
            {(None, "Gender"), (None, "Sex")},
        ),
        (HEADER.strip() + ",Survived\n" + '1,3,"A, Mr. B",male,22,0,0,T,7.25,,S,1\n', {(None, "Survived")}),
    ],
)
def test_bad_csv_cells_are_422_by_row_and_field(
    served: Any, csv: str, expected: set[tuple[Any, Any]]
) -> None:
    response = served.post("/predict/batch", content=csv.encode(), headers={"Content-Type": "text/csv"})
    assert response.status_code == 422
    assert {(e["row"], e["field"]) for e in response.json()["errors"]} == expected


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"", "empty"),
        (b"\xff\xfe\x00not text", "UTF-8"),
        (HEADER.encode(), "no passengers"),
    ],
)
def test_unreadable_csv_bodies_are_422(served: Any, body: bytes, says: str) -> None:
    response = served.post("/predict/batch", content=body, headers={"Content-Type": "text/csv"})
    assert response.status_code == 422
    assert says in response.json()["detail"]


def test_a_csv_with_empty_cells_is_scored(served: Any) -> None:
    csv = HEADER + '1,3,"A, Mr. B",male,,0,0,,,,\n2,1,,female,38,1,0,PC 17599,71.28,C85,C\n'
    response = served.post("/predict/batch", content=csv.encode(), headers={"Content-Type": "text/csv"})
    assert response.status_code == 200
    first, second = response.json()["predictions"]
    assert "Age is missing" in first["drift_alerts"]
    assert "Embarked is missing" in first["drift_alerts"]
    assert second["survived"] == 1


def test_wrong_batch_content_types_are_415_or_422(served: Any) -> None:
    csv = HEADER + '1,3,"A, Mr. B",male,22,0,0,T,7.25,,S\n'
    plain = served.post("/predict/batch", content=csv.encode(), headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415
    assert "text/csv" in plain.json()["detail"]
    assert served.post("/predict/batch", content=csv.encode()).status_code == 415
    wrong_field = served.post("/predict/batch", files={"upload": ("t.csv", csv.encode(), "text/csv")})
    assert wrong_field.status_code == 422
    assert "'file'" in wrong_field.json()["detail"]
    form = served.post("/predict/batch", data={"file": csv})  # a urlencoded form is not a CSV upload
    assert form.status_code == 415
    text_field = served.post(
        "/predict/batch", data={"file": csv}, files={"other": ("o.txt", b"x", "text/plain")}
    )
    assert text_field.status_code == 422
    assert "'file'" in text_field.json()["detail"]


def test_no_bad_input_ever_produced_a_5xx(served: Any) -> None:
    """Runs last in this module: the served app's metrics hold every request the tests above sent."""
    text = served.get("/metrics").text
    lines = [line for line in text.splitlines() if line.startswith("lifeboat_http_requests_total{")]
    assert any('status="422"' in line for line in lines)
    assert [line for line in lines if 'status="5' in line] == []
