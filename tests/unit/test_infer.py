"""Drafting a dataset spec from a table (lifeboat.dataset.infer): types, ranges, nullability, the label and
its positive value, features, refusals, and the draft round-tripping through load_spec and
check_against_data."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lifeboat.dataset.encoder import encode, fit
from lifeboat.dataset.infer import (
    DEFAULT_MODELS,
    InferenceError,
    column_type,
    infer_column,
    infer_label,
    infer_spec,
    render_yaml,
    widened_range,
)
from lifeboat.dataset.spec import check_against_data, load_spec
from lifeboat.dataset.validation import validate_csv

pytestmark = pytest.mark.unit


def strings(values: list[object]) -> pd.Series:
    """A column as the CSV reader gives it: text, None for an empty cell."""
    return pd.Series([None if v is None else str(v) for v in values], dtype=object)


def as_csv(frame: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    """The frame written as CSV, and read back as the inference and the validation read it (text cells)."""
    text = frame.to_csv(index=False)
    return text, pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""])


@pytest.fixture
def people() -> pd.DataFrame:
    """200 rows of every column type, with gaps, an id and a yes/no label."""
    rng = np.random.default_rng(0)
    n = 200
    age = rng.integers(18, 80, n).astype(object)
    age[::17] = None
    return pd.DataFrame(
        {
            "person_id": np.arange(1000, 1000 + n),
            "age": age,
            "income": np.round(rng.uniform(10.0, 110.0, n), 2),
            "city": rng.choice(["Paris", "Lyon", "Nice"], n),
            "member": rng.choice(["true", "false"], n),
            "comment": [f"free text number {i}" for i in range(n)],
            "bought": rng.choice(["yes", "no"], n),
        }
    )


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ([1, 2, 3, None], "integer"),
        (["1.0", "2.0", "-3"], "integer"),
        ([0.5, 1, 2.25], "numeric"),
        (["true", "False", None, "TRUE"], "boolean"),
        (["a", "b"] * 50, "categorical"),
        ([f"t{i}" for i in range(100)], "text"),
        ([None, None], "text"),
        (["1", "2", "x"] * 40, "categorical"),
        (["inf", "1"] * 50, "categorical"),
    ],
)
def test_column_types(values: list[object], kind: str) -> None:
    assert column_type(strings(values), rows=len(values)) == kind


def test_categorical_needs_few_values_relative_to_rows() -> None:
    values = strings([f"c{i % 10}" for i in range(100)])
    assert column_type(values, rows=100) == "text"  # 10 distinct > 5 % of 100 rows
    assert column_type(values, rows=200) == "categorical"  # 10 <= 5 % of 200
    many = strings([f"c{i % 60}" for i in range(10_000)])
    assert column_type(many, rows=10_000) == "text"  # 60 > 50 distinct values


@pytest.mark.parametrize(
    ("low", "high", "integer", "expected"),
    [
        (17, 90, True, {"min": 9, "max": 98}),  # 10 % of 73 = 7.3 each side, rounded outwards
        (1, 99, True, {"min": 0, "max": 109}),  # never below 0 for non-negative data
        (0, 4356, True, {"min": 0, "max": 4792}),
        (-5, 5, True, {"min": -6, "max": 6}),
        (0.42, 80.0, False, {"min": 0.0, "max": 88.0}),
        (10.0, 10.0, False, {"min": 9.0, "max": 11.0}),  # no span: 10 % of the value
        (0.0, 0.0, True, {"min": 0, "max": 1}),
    ],
)
def test_ranges_are_widened_by_a_tenth_of_the_span(
    low: float, high: float, integer: bool, expected: dict[str, float]
) -> None:
    got = widened_range(low, high, integer)
    assert got == expected
    assert got["min"] <= low
    assert got["max"] >= high


def test_a_numeric_column_gets_a_range_and_nullability() -> None:
    column = infer_column("age", strings([20, None, 30, 40]), rows=4)
    assert column.spec == {
        "name": "age",
        "type": "integer",
        "nullable": True,
        "range": {"min": 18, "max": 42},
    }
    assert column.note == "1 of 4 rows missing"
    solid = infer_column("age", strings([20, 30]), rows=2)
    assert "nullable" not in solid.spec
    assert solid.note == ""


def test_a_categorical_column_gets_its_sorted_vocabulary() -> None:
    column = infer_column("city", strings(["Nice", "Lyon", "Paris"] * 40), rows=120)
    assert column.spec == {"name": "city", "type": "categorical", "vocabulary": ["Lyon", "Nice", "Paris"]}


def test_a_text_column_is_ignored_with_a_note() -> None:
    column = infer_column("comment", strings([f"t{i}" for i in range(30)]), rows=30)
    assert column.spec == {"name": "comment", "type": "text", "role": "ignored"}
    assert "30 distinct values in 30 rows" in column.note
    assert "ignored" in column.note


@pytest.mark.parametrize(
    ("values", "positive", "entry_type", "typed"),
    [
        ([0, 1, 1], None, "integer", 1),
        (["1.0", "0.0"], None, "integer", 1),
        (["true", "false"], None, "boolean", True),
        (["No", "Yes", "Yes"], None, "categorical", "Yes"),
        (["cat", "dog"], "dog", "categorical", "dog"),
        ([1, 2], "2", "integer", 2),
        ([0, 1], "0", "integer", 0),
    ],
)
def test_label_values_and_positive(
    values: list[object], positive: str | None, entry_type: str, typed: object
) -> None:
    entry, chosen = infer_label("y", strings(values), len(values), positive)
    assert entry["type"] == entry_type
    assert entry["role"] == "label"
    assert chosen == typed
    assert type(chosen) is type(typed)


def test_a_label_of_other_values_needs_the_positive_one() -> None:
    with pytest.raises(
        InferenceError, match=r"label 'y' takes the values \['cat', 'dog'\].*--positive VALUE"
    ):
        infer_label("y", strings(["cat", "dog"]), 2)
    with pytest.raises(
        InferenceError, match=r"--positive 'bird' is not a value of the label 'y': \['cat', 'dog'\]"
    ):
        infer_label("y", strings(["cat", "dog"]), 2, positive="bird")


@pytest.mark.parametrize(
    ("values", "found"),
    [(["a", "b", "c"], "found 3: ['a', 'b', 'c']"), (["a", "a"], "found 1: ['a']"), ([None], "found 0: []")],
)
def test_a_label_without_two_values_is_refused(values: list[object], found: str) -> None:
    with pytest.raises(InferenceError) as info:
        infer_label("outcome", strings(values), len(values))
    assert str(info.value) == f"the label 'outcome' must take exactly two values, {found}"


def test_the_draft_of_a_mixed_table(people: pd.DataFrame) -> None:
    _, frame = as_csv(people)
    draft = infer_spec(frame, "shop", "bought", id_column="person_id")
    spec = draft.spec
    columns = {c["name"]: c for c in spec["columns"]}
    assert columns["person_id"] == {"name": "person_id", "type": "integer", "role": "id"}
    assert columns["age"]["nullable"] is True
    assert columns["age"]["type"] == "integer"
    assert columns["income"]["type"] == "numeric"
    assert columns["income"]["range"]["min"] >= 0
    assert columns["city"]["vocabulary"] == ["Lyon", "Nice", "Paris"]
    assert columns["member"]["type"] == "boolean"
    assert columns["comment"]["role"] == "ignored"
    assert "comment" in draft.notes
    assert spec["label"] == {"column": "bought", "positive": "yes"}
    assert spec["id_column"] == "person_id"
    assert spec["derived"] == [{"name": "age_missing", "transform": "missing_indicator", "column": "age"}]
    assert spec["features"] == [
        {"column": "age", "impute": "median"},
        {"column": "age_missing"},
        {"column": "income", "impute": "median"},
        {"column": "city", "encoding": "onehot", "unknown": "other"},
        {"column": "member", "impute": "median"},
    ]
    assert spec["models"] == DEFAULT_MODELS
    assert spec["response"] == {"prediction": "prediction", "probability": "probability"}
    assert spec["schedule"] == "0 2 * * *"
    first = people.iloc[0]
    assert spec["example"]["person_id"] == 1000
    assert spec["example"]["city"] == first["city"]
    assert "bought" not in spec["example"]


def test_the_written_draft_round_trips(people: pd.DataFrame, tmp_path: Path) -> None:
    text, frame = as_csv(people)
    draft = infer_spec(frame, "shop", "bought", id_column="person_id")
    path = tmp_path / "dataset.yaml"
    path.write_text(render_yaml(draft, "DRAFT: review it\nsecond line"))
    assert path.read_text().startswith("# DRAFT: review it\n# second line\n")
    assert "  # comment: text (200 distinct values in 200 rows)" in path.read_text()
    spec = load_spec(path)
    assert spec.name == "shop"
    assert spec.label.positive == "yes"
    check_against_data(spec, pd.read_csv(io.StringIO(text)), path)
    encoder = fit(spec, pd.read_csv(io.StringIO(text)))
    matrix = encode(encoder, pd.read_csv(io.StringIO(text)))
    assert matrix.shape == (200, 1 + 1 + 1 + 4 + 1)
    assert np.isfinite(matrix).all()
    assert list(encoder.feature_names) == spec.feature_names


def test_the_renderer_keeps_yaml_words_as_text(tmp_path: Path) -> None:
    frame = pd.DataFrame({"answer": ["yes", "no", "on", "off"] * 30, "y": [0, 1] * 60})
    draft = infer_spec(frame.astype(str), "words", "y")
    path = tmp_path / "dataset.yaml"
    path.write_text(render_yaml(draft, "draft"))
    spec = load_spec(path)
    assert spec.columns_by_name["answer"].vocabulary == ["no", "off", "on", "yes"]


@pytest.mark.parametrize(
    ("label", "id_column", "message"),
    [
        ("Bought", None, "no label column 'Bought' in the data; its columns are: a, b, y"),
        ("y", "key", "no id column 'key' in the data; its columns are: a, b, y"),
        ("y", "y", "'y' cannot be both the label and the id column"),
    ],
)
def test_unknown_columns_are_refused_with_the_columns(
    label: str, id_column: str | None, message: str
) -> None:
    frame = pd.DataFrame({"a": ["1", "2"], "b": ["x", "y"], "y": ["0", "1"]})
    with pytest.raises(InferenceError) as info:
        infer_spec(frame, "d", label, id_column=id_column)
    assert str(info.value) == message


def test_tables_a_spec_cannot_hold_are_refused() -> None:
    with pytest.raises(InferenceError, match=r"rename \['sepal length'\]"):
        infer_spec(pd.DataFrame({"sepal length": ["1"], "y": ["0"]}), "d", "y")
    with pytest.raises(InferenceError, match="no rows"):
        infer_spec(pd.DataFrame({"a": [], "y": []}), "d", "y")
    only_text = pd.DataFrame({"note": [f"n{i}" for i in range(10)], "y": ["0", "1"] * 5})
    with pytest.raises(InferenceError, match="no column can be a feature"):
        infer_spec(only_text, "d", "y")


@pytest.mark.parametrize(
    ("labels", "positive", "expected"),
    [
        (["0", "1"], None, 1),
        (["true", "false"], None, True),
        (["True", "False"], None, True),
        (["no", "yes"], None, "yes"),
        (["cat", "dog"], "dog", "dog"),
        (["1", "2"], "2", 2),
    ],
)
def test_every_kind_of_label_round_trips(
    labels: list[str], positive: str | None, expected: object, tmp_path: Path
) -> None:
    frame = pd.DataFrame({"x": [str(i) for i in range(40)], "y": labels * 20})
    text, cells = as_csv(frame)
    path = tmp_path / "dataset.yaml"
    path.write_text(render_yaml(infer_spec(cells, "kinds", "y", positive=positive), "draft"))
    spec = load_spec(path)
    assert spec.label.positive == expected
    check_against_data(spec, pd.read_csv(io.StringIO(text)), path)
    csv = tmp_path / "train.csv"
    csv.write_text(text)
    summary = validate_csv(spec, csv)
    assert summary.positive_rate == pytest.approx(0.5)
