"""Simulated batches of any dataset: Adult (no id), a synthetic spec (nullable integer, boolean), and
Titanic's batches pinned byte for byte (the drift calibration was measured on them)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lifeboat.data.simulate import (
    BatchColumns,
    CategoryMix,
    DriftSpec,
    make_batch,
    mix_weights,
    parse_spec,
    replay_rows,
    write_batch,
)
from lifeboat.dataset.models import DatasetSpec
from lifeboat.dataset.spec import load_spec
from lifeboat.dataset.spec import parse_spec as parse_dataset_spec
from lifeboat.dataset.validation import validate_csv

pytestmark = pytest.mark.unit

DATA = Path(__file__).resolve().parents[2] / "data"

#: sha256 of batches written by the Titanic-only simulate.py (commit 41b0d0a), before it read the spec.
TITANIC_PINS: dict[str | None, str] = {
    None: "003ee224995e4fe7a909f0075e774070be7f90cf925c8776f0b2c54ca77abc04",
    "Age+15,Fare*3,Sex=male:0.8,Pclass=3:0.7,missing=Age:0.3,missing=Embarked:0.2,SibSp+2": (
        "61e5a1faff0af077e7c192982291ad1db76ed46cf7e33420981c10e1728f4ffd"
    ),
}
#: sha256 of ``json.dumps`` of 50 replayed rows of test.csv (same commit).
TITANIC_REPLAY_PIN = "696cd0c8fd338629b568919b4a9877838f2f5027a1bd9a3ea9adaa47297c75b7"


@pytest.fixture(scope="module")
def adult_spec() -> DatasetSpec:
    return load_spec(DATA / "adult" / "dataset.yaml")


@pytest.fixture(scope="module")
def adult_train() -> pd.DataFrame:
    """The first 5000 rows of Adult's training data (enough for every mix below)."""
    return pd.read_csv(DATA / "adult" / "raw" / "train.csv", nrows=5000)


@pytest.fixture(scope="module")
def titanic_spec() -> DatasetSpec:
    return load_spec(DATA / "titanic" / "dataset.yaml")


# --- Titanic stays bit-identical -------------------------------------------------------------------------


@pytest.mark.parametrize("text", list(TITANIC_PINS))
def test_titanic_batches_are_byte_identical_to_the_pinned_ones(
    train_frame: pd.DataFrame, titanic_spec: DatasetSpec, tmp_path: Path, text: str | None
) -> None:
    for dataset in (None, titanic_spec):  # the settings' default dataset, and the spec given explicitly
        batch = make_batch(train_frame, 300, parse_spec(text, dataset), 7, 892, dataset=dataset)
        path = write_batch(batch, tmp_path / "batch.csv", dataset)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == TITANIC_PINS[text]


def test_titanic_replay_rows_are_identical_to_the_pinned_ones(raw_test_csv: Path) -> None:
    spec = DriftSpec.parse("Age-5,Fare*2,Embarked=Q:0.5,missing=Fare:0.1")
    rows = replay_rows(raw_test_csv, 50, spec, 3)
    assert hashlib.sha256(json.dumps(rows).encode()).hexdigest() == TITANIC_REPLAY_PIN


def test_titanic_columns_are_those_of_the_old_schema(titanic_spec: DatasetSpec) -> None:
    columns = BatchColumns.of(titanic_spec)
    assert columns.id_column == "PassengerId"
    assert columns.label == "Survived"
    assert columns.numeric == ("Age", "SibSp", "Parch", "Fare")
    assert columns.categorical == ("Pclass", "Sex", "Embarked")
    assert columns.optional == ("Name", "Age", "Ticket", "Fare", "Cabin", "Embarked")
    assert columns.required == ("PassengerId", "Pclass", "Sex", "SibSp", "Parch")


def test_titanic_start_id_defaults_to_after_the_largest_id(train_frame: pd.DataFrame) -> None:
    batch = make_batch(train_frame, 20, None, seed=1)
    assert batch["PassengerId"].tolist() == list(range(892, 912))


# --- Adult: no id column ----------------------------------------------------------------------------------


def test_adult_columns(adult_spec: DatasetSpec) -> None:
    columns = BatchColumns.of(adult_spec)
    assert columns.id_column is None
    assert columns.label == "income_over_50k"
    assert columns.numeric == ("age", "education_num", "capital_gain", "capital_loss", "hours_per_week")
    assert "income_over_50k" not in columns.categorical
    assert columns.categorical[:2] == ("workclass", "education")
    assert columns.optional == ("workclass", "occupation", "native_country")


@pytest.mark.parametrize(
    "text",
    [
        None,
        "age+10",
        "age-100,hours_per_week*5",
        "capital_gain*1000",
        "sex=Female:0.7",
        "sex=Female:0.7,race=Black:0.3,workclass=Private:0.5",
        "missing=occupation:0.4,missing=native_country:1",
    ],
)
def test_adult_batches_pass_adult_validation_and_have_no_id(
    adult_train: pd.DataFrame, adult_spec: DatasetSpec, tmp_path: Path, text: str | None
) -> None:
    batch = make_batch(adult_train, 400, parse_spec(text, adult_spec), 3, dataset=adult_spec)
    path = write_batch(batch, tmp_path / "batch.csv", adult_spec)
    summary = validate_csv(adult_spec, path, require_label=True)
    assert summary.rows == 400
    assert list(pd.read_csv(path).columns) == [*adult_spec.raw_columns, "income_over_50k"]


def test_adult_start_id_is_ignored_without_an_id_column(
    adult_train: pd.DataFrame, adult_spec: DatasetSpec
) -> None:
    plain = make_batch(adult_train, 50, None, 2, dataset=adult_spec)
    given = make_batch(adult_train, 50, None, 2, 10_000, dataset=adult_spec)
    pd.testing.assert_frame_equal(plain, given)
    assert list(plain.columns) == list(adult_train.columns)


def test_adult_shift_and_scale_move_the_column_within_its_range(
    adult_train: pd.DataFrame, adult_spec: DatasetSpec
) -> None:
    plain = make_batch(adult_train, 2000, None, 4, dataset=adult_spec)
    shifted = make_batch(adult_train, 2000, DriftSpec.parse("age+10", adult_spec), 4, dataset=adult_spec)
    scaled = make_batch(
        adult_train, 2000, DriftSpec.parse("hours_per_week*3", adult_spec), 4, dataset=adult_spec
    )
    assert shifted["age"].dtype == np.int64
    assert (shifted["age"] - plain["age"]).between(0, 10).all()
    assert shifted["age"].max() <= 98  # age's range in data/adult/dataset.yaml
    assert scaled["hours_per_week"].max() == 109
    assert scaled["hours_per_week"].median() == pytest.approx(min(plain["hours_per_week"].median() * 3, 109))
    pd.testing.assert_series_equal(shifted["sex"], plain["sex"])


def test_adult_mix_reaches_its_share(adult_train: pd.DataFrame, adult_spec: DatasetSpec) -> None:
    spec = DriftSpec.parse("sex=Female:0.8,relationship=Wife:0.3", adult_spec)
    assert spec.mixes == (CategoryMix("sex", "Female", 0.8), CategoryMix("relationship", "Wife", 0.3))
    weights = mix_weights(adult_train, spec.mixes, adult_spec)
    assert weights[(adult_train["sex"] == "Female").to_numpy()].sum() == pytest.approx(0.8, abs=1e-6)
    assert weights[(adult_train["relationship"] == "Wife").to_numpy()].sum() == pytest.approx(0.3, abs=1e-6)
    batch = make_batch(adult_train, 5000, spec, 6, dataset=adult_spec)
    assert (batch["sex"] == "Female").mean() == pytest.approx(0.8, abs=0.02)


def test_adult_missing_blanks_an_exact_share(adult_train: pd.DataFrame, adult_spec: DatasetSpec) -> None:
    plain = make_batch(adult_train, 1000, None, 8, dataset=adult_spec)
    blanked = make_batch(
        adult_train, 1000, DriftSpec.parse("missing=workclass:0.3", adult_spec), 8, dataset=adult_spec
    )
    assert blanked["workclass"].isna().sum() >= 300
    assert (blanked["workclass"].isna() & plain["workclass"].notna()).sum() <= 300


@pytest.mark.parametrize(
    ("text", "hint", "listed"),
    [
        ("Age+15", "'Age' is not a numeric column of adult", "numeric columns: age, education_num"),
        ("sex*2", "'sex' is not a numeric column of adult", "capital_loss, hours_per_week"),
        ("age=30:0.5", "'age' is not a categorical column of adult", "categorical columns: workclass"),
        ("income_over_50k=1:0.5", "'income_over_50k' is not a categorical column", "sex, native_country"),
        ("sex=Alien:0.5", "'Alien' is not a value of sex", "allowed: Female, Male"),
        ("missing=age:0.2", "'age' cannot be missing in adult", "workclass, occupation, native_country"),
    ],
)
def test_adult_parse_errors_name_the_column_and_list_the_valid_ones(
    adult_spec: DatasetSpec, text: str, hint: str, listed: str
) -> None:
    with pytest.raises(ValueError, match="bad drift spec") as excinfo:
        DriftSpec.parse(text, adult_spec)
    assert repr(text) in str(excinfo.value)
    assert hint in str(excinfo.value)
    assert listed in str(excinfo.value)


def test_the_default_dataset_is_that_of_the_settings(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("LIFEBOAT_DATASET", "adult")
    assert DriftSpec.parse("age+10").numeric[0].column == "age"
    with pytest.raises(ValueError, match="not a numeric column of adult"):
        DriftSpec.parse("Age+10")


def test_a_spec_of_another_dataset_is_refused_when_applied(
    adult_train: pd.DataFrame, adult_spec: DatasetSpec, titanic_spec: DatasetSpec
) -> None:
    titanic_drift = DriftSpec.parse("Age+15", titanic_spec)
    with pytest.raises(ValueError, match="cannot apply Age\\+15"):
        make_batch(adult_train, 10, titanic_drift, 1, dataset=adult_spec)


def test_adult_replay_rows_have_no_label_and_no_id(adult_spec: DatasetSpec) -> None:
    rows = replay_rows(
        DATA / "adult" / "raw" / "train.csv", 30, DriftSpec.parse("age+5", adult_spec), 1, dataset=adult_spec
    )
    assert len(rows) == 30
    assert all(list(r) == adult_spec.raw_columns for r in rows)
    json.dumps(rows, allow_nan=False)
    assert all(isinstance(r["age"], int) for r in rows)


# --- A synthetic dataset: id, nullable integer, boolean -------------------------------------------------

SHOP = {
    "name": "shop",
    "id_column": "customer",
    "label": {"column": "churned", "positive": "yes"},
    "columns": [
        {"name": "customer", "type": "integer", "role": "id", "range": {"min": 1}},
        {"name": "visits", "type": "integer", "nullable": True, "range": {"min": 0, "max": 50}},
        {"name": "member", "type": "boolean", "nullable": True},
        {"name": "churned", "type": "categorical", "role": "label", "vocabulary": ["yes", "no"]},
    ],
    "features": [{"column": "visits", "impute": "median"}, {"column": "member"}],
}


@pytest.fixture
def shop(tmp_path: Path) -> tuple[DatasetSpec, pd.DataFrame]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "customer": np.arange(1, 201),
            "visits": rng.integers(0, 40, 200),
            "member": rng.choice([True, False], 200),
            "churned": rng.choice(["yes", "no"], 200),
        }
    )
    return parse_dataset_spec(SHOP), frame


def test_a_nullable_integer_column_stays_integer_when_blanked(
    shop: tuple[DatasetSpec, pd.DataFrame], tmp_path: Path
) -> None:
    spec, frame = shop
    batch = make_batch(frame, 100, DriftSpec.parse("missing=visits:0.5,visits+3", spec), 1, dataset=spec)
    assert batch["customer"].tolist() == list(range(201, 301))
    assert batch["visits"].isna().sum() >= 50
    path = write_batch(batch, tmp_path / "shop.csv", spec)
    written = pd.read_csv(path, dtype=str)["visits"].dropna()
    assert written.str.fullmatch(r"\d+").all()  # 7, not 7.0
    assert validate_csv(spec, path, require_label=True).rows == 100


def test_a_blanked_boolean_column_stays_boolean(
    shop: tuple[DatasetSpec, pd.DataFrame], tmp_path: Path
) -> None:
    spec, frame = shop
    batch = make_batch(frame, 100, DriftSpec.parse("missing=member:0.3", spec), 3, dataset=spec)
    path = write_batch(batch, tmp_path / "shop.csv", spec)
    summary = validate_csv(spec, path, require_label=True)
    assert summary.missing["member"] == 30
    assert set(pd.read_csv(path, dtype=str)["member"].dropna()) == {"True", "False"}


def test_a_boolean_mix_takes_true_false_or_1_0(shop: tuple[DatasetSpec, pd.DataFrame]) -> None:
    spec, frame = shop
    assert DriftSpec.parse("member=true:0.9", spec) == DriftSpec.parse("member=1:0.9", spec)
    batch = make_batch(frame, 2000, DriftSpec.parse("member=False:0.9", spec), 2, dataset=spec)
    assert (~batch["member"]).mean() == pytest.approx(0.9, abs=0.03)
    with pytest.raises(ValueError, match="allowed: 0, 1"):
        DriftSpec.parse("member=maybe:0.5", spec)
