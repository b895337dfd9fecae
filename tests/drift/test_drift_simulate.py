"""Simulated batches: drift spec parsing, schema-valid batches, determinism, and what each spec changes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lifeboat.data.simulate import (
    CategoryMix,
    DriftSpec,
    MissingValues,
    NumericChange,
    make_batch,
    mix_weights,
    parse_spec,
    replay_rows,
    write_batch,
)
from lifeboat.dataset.schema import BY_NAME, COLUMN_NAMES, validate_csv
from tests.drift.drift_cases import SPEC_EXPECTATIONS, START_ID

pytestmark = pytest.mark.unit


def test_parse_every_kind_of_part() -> None:
    spec = DriftSpec.parse(" Age+15, Fare*3,Sex=male:0.8,Pclass=3:0.7,missing=Age:0.3,Age-2.5 ")
    assert spec.numeric == (
        NumericChange("Age", "+", 15.0),
        NumericChange("Fare", "*", 3.0),
        NumericChange("Age", "+", -2.5),
    )
    assert spec.mixes == (CategoryMix("Sex", "male", 0.8), CategoryMix("Pclass", "3", 0.7))
    assert spec.missing == (MissingValues("Age", 0.3),)
    assert spec.columns == ("Sex", "Pclass", "Age", "Fare")
    assert DriftSpec.parse(str(spec)) == spec


def test_parse_spec_treats_blank_as_no_drift() -> None:
    assert parse_spec(None) is None
    assert parse_spec("  ") is None
    assert parse_spec("Fare*2") == DriftSpec(numeric=(NumericChange("Fare", "*", 2.0),))


@pytest.mark.parametrize(
    ("text", "bad_part", "hint"),
    [
        ("Agee+15", "Agee+15", "not a numeric column"),
        ("Age+15,Sex+1", "Sex+1", "not a numeric column"),
        ("Age+x", "Age+x", "expected COLUMN+N"),
        ("Age/2", "Age/2", "expected COLUMN+N"),
        ("Fare*-1", "Fare*-1", "must not be negative"),
        ("Sex=alien:0.5", "Sex=alien:0.5", "not a value of Sex"),
        ("Pclass=4:0.5", "Pclass=4:0.5", "allowed: 1, 2, 3"),
        ("Sex=male:1.5", "Sex=male:1.5", "between 0 and 1"),
        ("Age=30:0.5", "Age=30:0.5", "not a categorical column"),
        ("missing=Sex:0.3", "missing=Sex:0.3", "cannot be missing"),
        ("missing=Age:2", "missing=Age:2", "between 0 and 1"),
        ("Pclass=3:0.7,Pclass=1:0.5", "Pclass=1:0.5", "add up to more than 1"),
        ("Sex=male:0.5,Sex=male:0.6", "Sex=male:0.6", "given twice"),
    ],
)
def test_parse_errors_name_the_bad_part(text: str, bad_part: str, hint: str) -> None:
    with pytest.raises(ValueError, match="bad drift spec") as excinfo:
        DriftSpec.parse(text)
    assert repr(bad_part) in str(excinfo.value)
    assert hint in str(excinfo.value)


@pytest.mark.parametrize("text", ["", " , ", "Age+15,,Fare*3", "Age+15,"])
def test_parse_errors_for_empty_parts(text: str) -> None:
    with pytest.raises(ValueError, match="empty"):
        DriftSpec.parse(text)


@pytest.mark.parametrize(
    "text",
    [
        None,
        *SPEC_EXPECTATIONS,
        "Age+200,Fare*500,SibSp*30,Parch+40",
        "Age-100,Fare*0",
        "missing=Embarked:0.5,missing=Fare:0.2,missing=Name:1",
    ],
)
def test_batches_pass_schema_validation(train_frame: pd.DataFrame, tmp_path: Path, text: str | None) -> None:
    batch = make_batch(train_frame, 400, parse_spec(text), seed=3, start_id=START_ID)
    path = write_batch(batch, tmp_path / "batch.csv")
    summary = validate_csv(path)
    assert summary.rows == 400
    assert summary.labelled
    assert list(pd.read_csv(path).columns) == [*COLUMN_NAMES, "Survived"]


def test_values_are_clipped_to_the_schema_ranges(train_frame: pd.DataFrame) -> None:
    batch = make_batch(
        train_frame, 500, DriftSpec.parse("Age+200,Fare*500,SibSp*30"), seed=1, start_id=START_ID
    )
    assert batch["Age"].max() == BY_NAME["Age"].maximum
    assert batch["Fare"].max() == BY_NAME["Fare"].maximum
    assert batch["SibSp"].max() == BY_NAME["SibSp"].maximum
    low = make_batch(train_frame, 500, DriftSpec.parse("Age-100"), seed=1, start_id=START_ID)
    assert low["Age"].min() == 0
    assert low["SibSp"].dtype == np.int64


def test_ids_are_fresh_unique_and_start_at_start_id(train_frame: pd.DataFrame) -> None:
    batch = make_batch(train_frame, 1000, None, seed=5, start_id=START_ID)
    ids = batch["PassengerId"].to_numpy()
    assert ids.min() == START_ID
    assert len(np.unique(ids)) == 1000
    assert (ids >= START_ID).all()
    assert not set(ids) & set(train_frame["PassengerId"])


def test_same_seed_same_batch_other_seed_other_batch(train_frame: pd.DataFrame) -> None:
    spec = DriftSpec.parse("Sex=male:0.8,Age+5,missing=Age:0.2")
    first = make_batch(train_frame, 300, spec, seed=9, start_id=START_ID)
    again = make_batch(train_frame, 300, spec, seed=9, start_id=START_ID)
    other = make_batch(train_frame, 300, spec, seed=10, start_id=START_ID)
    pd.testing.assert_frame_equal(first, again)
    assert not first.drop(columns="PassengerId").equals(other.drop(columns="PassengerId"))


def test_rows_are_resampled_from_the_training_passengers(train_frame: pd.DataFrame) -> None:
    batch = make_batch(train_frame, 300, None, seed=2, start_id=START_ID)
    known = set(train_frame["Name"])
    assert set(batch["Name"]) <= known
    assert batch["Name"].nunique() < 300  # drawn with replacement


def test_numeric_changes_move_the_column(train_frame: pd.DataFrame) -> None:
    plain = make_batch(train_frame, 2000, None, seed=4, start_id=START_ID)
    shifted = make_batch(train_frame, 2000, DriftSpec.parse("Age+15"), seed=4, start_id=START_ID)
    scaled = make_batch(train_frame, 2000, DriftSpec.parse("Fare*3"), seed=4, start_id=START_ID)
    assert shifted["Age"].mean() == pytest.approx(plain["Age"].mean() + 15, abs=0.05)
    assert scaled["Fare"].median() == pytest.approx(plain["Fare"].median() * 3, rel=1e-3)
    pd.testing.assert_series_equal(shifted["Sex"], plain["Sex"])


def test_category_mix_reaches_its_share_and_keeps_labels_plausible(train_frame: pd.DataFrame) -> None:
    batch = make_batch(train_frame, 5000, DriftSpec.parse("Sex=male:0.8"), seed=6, start_id=START_ID)
    assert (batch["Sex"] == "male").mean() == pytest.approx(0.8, abs=0.02)
    # Rows are drawn whole: survival within each sex stays what it was, so overall survival drops.
    for sex in ("male", "female"):
        train_rate = train_frame.loc[train_frame["Sex"] == sex, "Survived"].mean()
        assert batch.loc[batch["Sex"] == sex, "Survived"].mean() == pytest.approx(train_rate, abs=0.03)
    assert batch["Survived"].mean() < train_frame["Survived"].mean() - 0.05


def test_two_mixes_are_matched_jointly(train_frame: pd.DataFrame) -> None:
    spec = DriftSpec.parse("Sex=male:0.8,Pclass=3:0.7,Embarked=C:0.3")
    weights = mix_weights(train_frame, spec.mixes)
    assert weights.sum() == pytest.approx(1.0)
    assert weights[(train_frame["Sex"] == "male").to_numpy()].sum() == pytest.approx(0.8, abs=1e-6)
    assert weights[(train_frame["Pclass"] == 3).to_numpy()].sum() == pytest.approx(0.7, abs=1e-6)
    assert weights[(train_frame["Embarked"] == "C").to_numpy()].sum() == pytest.approx(0.3, abs=1e-6)


def test_several_values_of_one_column(train_frame: pd.DataFrame) -> None:
    weights = mix_weights(train_frame, DriftSpec.parse("Pclass=3:0.5,Pclass=1:0.4").mixes)
    pclass = train_frame["Pclass"].to_numpy()
    assert weights[pclass == 3].sum() == pytest.approx(0.5)
    assert weights[pclass == 1].sum() == pytest.approx(0.4)
    assert weights[pclass == 2].sum() == pytest.approx(0.1)


def test_missing_blanks_an_exact_share_of_rows(train_frame: pd.DataFrame) -> None:
    plain = make_batch(train_frame, 1000, None, seed=8, start_id=START_ID)
    blanked = make_batch(
        train_frame, 1000, DriftSpec.parse("missing=Age:0.3,missing=Embarked:0.1"), seed=8, start_id=START_ID
    )
    newly_missing = blanked["Age"].isna() & plain["Age"].notna()
    assert blanked["Age"].isna().sum() >= 300
    assert newly_missing.sum() == pytest.approx(300 * plain["Age"].notna().mean(), abs=40)
    assert blanked["Embarked"].isna().sum() >= 100


def test_make_batch_rejects_bad_arguments(train_frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="at least one row"):
        make_batch(train_frame, 0, None, seed=1, start_id=START_ID)
    with pytest.raises(ValueError, match="start_id"):
        make_batch(train_frame, 10, None, seed=1, start_id=0)
    with pytest.raises(ValueError, match="lacks required column"):
        make_batch(train_frame.drop(columns="Sex"), 10, None, seed=1, start_id=START_ID)


def test_replay_rows_are_json_ready_passengers(raw_test_csv: Path) -> None:
    rows = replay_rows(raw_test_csv, 200, DriftSpec.parse("missing=Age:0.5"), seed=1)
    assert len(rows) == 200
    assert all(list(r) == list(COLUMN_NAMES) for r in rows)
    json.dumps(rows, allow_nan=False)  # NaN would make this raise
    ages = [r["Age"] for r in rows]
    assert ages.count(None) >= 100
    assert all(a is None or (isinstance(a, float) and not math.isnan(a)) for a in ages)
    assert all(isinstance(r["PassengerId"], int) for r in rows)
    assert min(r["PassengerId"] for r in rows) == 1310  # after Kaggle's largest test id, 1309
    assert replay_rows(raw_test_csv, 200, DriftSpec.parse("missing=Age:0.5"), seed=1) == rows
