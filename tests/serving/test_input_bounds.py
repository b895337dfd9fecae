"""Error collection is bounded (issue 14, finding 1): a header far wider than the columns is refused whole,
unknown keys beyond the listed maximum are refused before validation builds an error per key, and per-row
errors stop being built at the listed maximum while the counts stay exact. The memory figure under
concurrent hostile batches is in tests/proof/test_memory_bounds.py."""

from __future__ import annotations

from typing import Any

import pytest

from lifeboat.registry.artifact import CANARY_PASSENGER
from serving.batch_input import (
    HEADER_SLACK,
    MAX_LISTED_ERRORS,
    BatchInvalid,
    passengers_from_csv,
    passengers_from_json,
)
from tests.serving.serving_support import free_port

GOOD: dict[str, Any] = dict(CANARY_PASSENGER)


def refused(call: Any, *args: Any) -> BatchInvalid:
    with pytest.raises(BatchInvalid) as caught:
        call(*args)
    return caught.value


@pytest.mark.unit
def test_a_header_far_wider_than_the_columns_is_refused_whole() -> None:
    cells = 11 + HEADER_SLACK + 1
    error = refused(passengers_from_csv, (",".join(["x"] * 500_000) + "\n1\n").encode(), 10)
    assert error.summary == (
        "the CSV header has 500000 columns; expected the columns of Kaggle's test.csv (11 columns); "
        "nothing was scored"
    )
    assert [(p.type, p.loc) for p in error.problems] == [("csv_header_too_wide", ("body", "header"))]
    just_over = refused(passengers_from_csv, (",".join(f"c{i}" for i in range(cells)) + "\n").encode(), 10)
    assert just_over.problems[0].type == "csv_header_too_wide"
    # Within the slack, every unknown column is still named, as before.
    named = refused(
        passengers_from_csv, b"Pclass,Sex,Age,SibSp,Parch,Embarked,Fare,Nope1,Nope2\n1,male,3,0,0,S,7\n", 10
    )
    assert [(p.field, p.type) for p in named.problems] == [
        ("Nope1", "extra_forbidden"),
        ("Nope2", "extra_forbidden"),
    ]


@pytest.mark.unit
def test_row_errors_stop_being_listed_at_the_maximum_but_are_all_counted() -> None:
    header = "Pclass,Sex,Age,SibSp,Parch,Embarked,Fare\n"
    bad_row = "9,robot,-1,x,x,Q2,x\n"  # 7 invalid fields
    error = refused(passengers_from_csv, (header + bad_row * 1000).encode(), 1000)
    body = error.body()
    assert body["error_count"] == 7000
    assert len(body["errors"]) == MAX_LISTED_ERRORS
    assert body["invalid_rows"] == list(range(1000))
    assert body["detail"] == "1000 of 1000 passenger(s) are invalid; nothing was scored"
    short = refused(passengers_from_csv, (header + "1,male\n" * 300).encode(), 1000)
    assert (short.body()["error_count"], len(short.body()["errors"])) == (300, MAX_LISTED_ERRORS)
    assert short.body()["invalid_rows"] == list(range(300))


@pytest.mark.unit
def test_many_unknown_keys_are_refused_before_validation_with_exact_counts() -> None:
    wide = {**GOOD, **{f"k{i}": 0 for i in range(50_000)}}
    error = refused(passengers_from_json, {"passengers": [GOOD, wide, wide]}, 10)
    body = error.body()
    assert (
        body["detail"] == "the batch has 100000 unknown keys (2 passenger(s) have some); nothing was scored"
    )
    assert body["error_count"] == 100_000
    assert body["invalid_rows"] == [1, 2]
    assert len(body["errors"]) == MAX_LISTED_ERRORS
    assert body["errors"][0] == {
        "row": 1,
        "field": "k0",
        "msg": "Extra inputs are not permitted",
        "type": "extra_forbidden",
        "loc": ["body", "passengers", 1, "k0"],
    }
    top = refused(passengers_from_json, {"passengers": [GOOD], **{f"t{i}": 1 for i in range(200)}}, 10)
    assert top.body()["error_count"] == 200
    assert top.body()["errors"][0]["loc"] == ["body", "t0"]


@pytest.mark.unit
def test_a_few_unknown_keys_get_the_usual_validation_errors() -> None:
    error = refused(passengers_from_json, {"passengers": [{**GOOD, "Nope": 1}]}, 10)
    assert [(p.row, p.field, p.type) for p in error.problems] == [(0, "Nope", "extra_forbidden")]
    assert error.summary == "1 of 1 passenger(s) are invalid; nothing was scored"


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/predict", marks=pytest.mark.unit),
        pytest.param("/v1/datasets/titanic/predict", marks=pytest.mark.integration),
    ],
)
def test_a_single_record_with_many_unknown_keys_is_a_bounded_422(
    make_client: Any, request: pytest.FixtureRequest, path: str
) -> None:
    """/predict validates before it needs a model; a dataset's route validates against its served model's
    record schema, so it runs with the session's champion."""
    if path == "/predict":
        app = make_client(f"http://127.0.0.1:{free_port()}")
    else:
        app = make_client(request.getfixturevalue("champion_store").tracking_uri)
    wide = {**GOOD, **{f"k{i}": 0 for i in range(20_000)}}
    answer = app.post(path, json=wide)
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert len(detail) == MAX_LISTED_ERRORS
    assert detail[0] == {
        "type": "extra_forbidden",
        "loc": ["body", "k0"],
        "msg": "Extra inputs are not permitted",
    }
    assert detail[-1] == {
        "type": "too_many_errors",
        "loc": ["body"],
        "msg": f"20000 unknown keys in all; {20_000 - MAX_LISTED_ERRORS + 1} more are not listed",
    }
    few = app.post(path, json={**GOOD, "Nope": 1})
    assert few.status_code == 422
    assert [(e["type"], e["loc"]) for e in few.json()["detail"]] == [("extra_forbidden", ["body", "Nope"])]
