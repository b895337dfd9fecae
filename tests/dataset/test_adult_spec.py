"""data/adult/dataset.yaml: a valid spec that agrees with its 48,842 rows and encodes them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lifeboat.dataset.encoder import encode, fit
from lifeboat.dataset.infer import infer_spec
from lifeboat.dataset.models import Column, DatasetSpec
from lifeboat.dataset.spec import check_against_data, load_spec
from lifeboat.dataset.validation import validate_csv

pytestmark = pytest.mark.unit

ADULT = Path(__file__).resolve().parents[2] / "data" / "adult"
ROWS = 48_842
NUMERIC = ["age", "education_num", "capital_gain", "capital_loss", "hours_per_week"]
#: Vocabulary sizes of the categorical columns (data/adult/README.md, "Profile"); each one-hot group has one
#: more column, ``<column>_other``.
CATEGORIES = {
    "workclass": 8,
    "education": 16,
    "marital_status": 7,
    "occupation": 14,
    "relationship": 6,
    "race": 5,
    "sex": 2,
    "native_country": 41,
}


@pytest.fixture(scope="module")
def adult_spec() -> DatasetSpec:
    return load_spec(ADULT / "dataset.yaml")


@pytest.fixture(scope="module")
def adult_frame() -> pd.DataFrame:
    path = ADULT / "raw" / "train.csv"
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `dvc pull data/adult/raw/train.csv.dvc`")
    return pd.read_csv(path)


def test_the_spec_describes_adult(adult_spec: DatasetSpec) -> None:
    assert adult_spec.name == "adult"
    assert adult_spec.registered_model_name == "adult"
    assert (adult_spec.label.column, adult_spec.label.positive) == ("income_over_50k", 1)
    assert adult_spec.id_column is None
    assert adult_spec.schedule == "0 3 * * *"
    assert (adult_spec.response.prediction, adult_spec.response.probability) == ("prediction", "probability")
    assert set(adult_spec.models) == {"lr", "rf", "gbt"}
    assert adult_spec.input_columns == [
        "age",
        "workclass",
        "education",
        "education_num",
        "marital_status",
        "occupation",
        "relationship",
        "race",
        "sex",
        "capital_gain",
        "capital_loss",
        "hours_per_week",
        "native_country",
    ]
    nullable = sorted(c.name for c in adult_spec.columns if c.nullable)
    assert nullable == ["native_country", "occupation", "workclass"]


def test_the_spec_agrees_with_the_data(adult_spec: DatasetSpec, adult_frame: pd.DataFrame) -> None:
    assert len(adult_frame) == ROWS
    assert list(adult_frame.columns) == [c.name for c in adult_spec.columns]
    check_against_data(adult_spec, adult_frame, ADULT / "dataset.yaml")
    summary = validate_csv(adult_spec, ADULT / "raw" / "train.csv")
    assert summary.rows == ROWS
    assert summary.missing["workclass"] == 2799
    assert summary.positive_rate == pytest.approx(11_687 / ROWS)


def test_the_example_is_a_real_row(adult_spec: DatasetSpec, adult_frame: pd.DataFrame) -> None:
    first = adult_frame.iloc[0].to_dict()
    assert {k: first[k] for k in adult_spec.example} == adult_spec.example


def test_the_encoder_fits_and_encodes_every_row(adult_spec: DatasetSpec, adult_frame: pd.DataFrame) -> None:
    encoder = fit(adult_spec, adult_frame)
    matrix = encode(encoder, adult_frame)
    # every category gets an "other" column for unknown values, except race, whose vocabulary has "Other"
    width = len(NUMERIC) + sum(size + (name != "race") for name, size in CATEGORIES.items())
    assert matrix.shape == (ROWS, width) == (ROWS, 111)
    assert "race_Other" in encoder.feature_names
    assert "race_other" not in encoder.feature_names
    assert matrix.dtype == np.float32
    assert np.isfinite(matrix).all()
    assert list(encoder.feature_names) == adult_spec.feature_names
    names = list(encoder.feature_names)
    # a one-hot group has exactly one 1 per row; missing workclass goes to workclass_other
    group = [i for i, n in enumerate(names) if n.startswith("workclass_")]
    assert (matrix[:, group].sum(axis=1) == 1).all()
    other = names.index("workclass_other")
    assert matrix[:, other].sum() == adult_frame["workclass"].isna().sum()
    assert matrix[:, names.index("age")].min() == 17


def test_the_inferred_draft_agrees_with_the_spec(adult_spec: DatasetSpec) -> None:
    """`lifeboat dataset init` on Adult's CSV infers the columns written by hand (descriptions aside)."""
    cells = pd.read_csv(ADULT / "raw" / "train.csv", dtype=str, keep_default_na=False, na_values=[""])
    draft = infer_spec(cells, "adult", "income_over_50k")
    written = [c.model_dump(exclude={"description"}, exclude_defaults=True) for c in adult_spec.columns]
    inferred = [Column.model_validate(c).model_dump(exclude_defaults=True) for c in draft.spec["columns"]]
    assert inferred == written
    features = [f.model_dump(exclude_defaults=True) for f in adult_spec.features]
    by_column = sorted(draft.spec["features"], key=lambda f: f["column"])
    assert by_column == sorted(features, key=lambda f: f["column"])  # the spec puts the numbers first
    assert draft.spec["example"] == adult_spec.example
