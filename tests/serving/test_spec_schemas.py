"""Request validation generated from a dataset spec (serving/spec_schemas.py), on the bundled specs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from lifeboat.dataset.columns import Column
from lifeboat.dataset.spec import load_spec
from serving.schemas import PassengerIn
from serving.spec_schemas import (
    RequestSchema,
    csv_kind,
    legacy_schema,
    schema_from_spec,
    schema_of,
)

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def adult() -> RequestSchema:
    return schema_from_spec(load_spec(REPO / "data" / "adult" / "dataset.yaml"))


@pytest.fixture(scope="module")
def titanic() -> RequestSchema:
    return schema_from_spec(load_spec(REPO / "data" / "titanic" / "dataset.yaml"))


@pytest.fixture(scope="module")
def example() -> dict[str, Any]:
    return dict(load_spec(REPO / "data" / "adult" / "dataset.yaml").example)


def errors(schema: RequestSchema, record: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        schema.validate(record)
    return [(".".join(map(str, e["loc"])), e["type"]) for e in caught.value.errors()]


def test_the_adult_example_is_valid_and_every_column_is_returned(
    adult: RequestSchema, example: dict[str, Any]
) -> None:
    record = adult.validate(example)
    assert record == example
    assert "income_over_50k" not in adult.column_names  # the label is never an input
    assert (adult.response.prediction, adult.response.probability) == ("prediction", "probability")
    nullable = {k: v for k, v in example.items() if k not in ("workclass", "occupation", "native_country")}
    assert adult.validate(nullable)["occupation"] is None


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"age": "39"}, ("age", "int_type")),
        ({"age": 39.0}, ("age", "int_type")),
        ({"age": True}, ("age", "int_type")),
        ({"age": 99}, ("age", "less_than_equal")),
        ({"capital_gain": -1}, ("capital_gain", "greater_than_equal")),
        ({"sex": "male"}, ("sex", "literal_error")),
        ({"sex": None}, ("sex", "literal_error")),
        ({"race": 1}, ("race", "literal_error")),
        ({"income_over_50k": 1}, ("income_over_50k", "extra_forbidden")),
        ({"zip": "02139"}, ("zip", "extra_forbidden")),
    ],
)
def test_adult_bad_values_name_the_field(
    adult: RequestSchema, example: dict[str, Any], changes: dict[str, Any], expected: tuple[str, str]
) -> None:
    assert errors(adult, {**example, **changes}) == [expected]


def test_a_required_column_left_out_is_named(adult: RequestSchema, example: dict[str, Any]) -> None:
    assert errors(adult, {k: v for k, v in example.items() if k != "hours_per_week"}) == [
        ("hours_per_week", "missing")
    ]


def test_titanic_spec_accepts_what_the_seeds_passenger_model_accepts(titanic: RequestSchema) -> None:
    passenger = {"Pclass": 3, "Sex": "male", "SibSp": 0, "Parch": 0}
    assert titanic.validate(passenger) == PassengerIn.model_validate(passenger).model_dump()
    # id (PassengerId) and ignored (Ticket) columns are optional; Name is nullable
    assert titanic.validate({**passenger, "PassengerId": None, "Ticket": None, "Name": None})["Name"] is None
    for bad in ({"Pclass": 4}, {"Pclass": True}, {"Age": float("nan")}, {"Embarked": "X"}):
        with pytest.raises(ValidationError):
            titanic.validate({**passenger, **bad})
        with pytest.raises(ValidationError):
            PassengerIn.model_validate({**passenger, **bad})
    assert legacy_schema("titanic").column_names == titanic.column_names
    assert (titanic.response.prediction, titanic.response.probability) == ("survived", "probability_survive")


def test_a_model_without_a_spec_gets_the_legacy_titanic_schema() -> None:
    class Legacy:
        pass

    schema = schema_of(Legacy(), "titanic")
    assert schema.response.prediction == "survived"
    assert schema.validate({"Pclass": 1, "Sex": "female", "SibSp": 0, "Parch": 0})["Age"] is None


def test_boolean_and_numeric_categorical_columns() -> None:
    columns = (
        Column(name="member", type="boolean"),
        Column(name="grade", type="categorical", vocabulary=[1, 2]),
        Column(name="ratio", type="numeric", nullable=True),
    )
    schema = RequestSchema("toy", columns, load_spec(REPO / "data" / "adult" / "dataset.yaml").response)
    assert schema.validate({"member": True, "grade": 2}) == {"member": True, "grade": 2, "ratio": None}
    assert schema.validate({"member": False, "grade": 1, "ratio": 3})["ratio"] == 3.0
    assert errors(schema, {"member": 1, "grade": 1}) == [("member", "bool_type")]
    assert errors(schema, {"member": True, "grade": "1"})[0][0] == "grade"
    assert errors(schema, {"member": True, "grade": True})[0][0] == "grade"
    assert [csv_kind(c) for c in columns] == ["bool", "int", "float"]
