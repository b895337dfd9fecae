"""The shared feature encoding: titles, imputation, encoding invariants, drift sentences, spec round trip."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lifeboat.dataset.features import (
    ENCODING_VERSION,
    FEATURE_NAMES,
    NO_DRIFT,
    FeatureSpec,
    FeatureSpecError,
    drift_alerts,
    encode,
    fit_feature_spec,
    title_of,
)

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return pd.read_csv(Path(__file__).resolve().parents[2] / "data" / "titanic" / "raw" / "train.csv")


@pytest.fixture(scope="module")
def spec(train: pd.DataFrame) -> FeatureSpec:
    return fit_feature_spec(train)


def passenger(**overrides: object) -> dict[str, list[object]]:
    row: dict[str, object] = {
        "PassengerId": 1,
        "Pclass": 3,
        "Name": "Braund, Mr. Owen Harris",
        "Sex": "male",
        "Age": 22.0,
        "SibSp": 1,
        "Parch": 0,
        "Ticket": "A/5 21171",
        "Fare": 7.25,
        "Cabin": None,
        "Embarked": "S",
    }
    row.update(overrides)
    return {k: [v] for k, v in row.items()}


def feature(matrix: np.ndarray, name: str) -> float:
    return float(matrix[0, FEATURE_NAMES.index(name)])


@pytest.mark.parametrize(
    ("name", "sex", "age", "title"),
    [
        ("Braund, Mr. Owen Harris", "male", 22.0, "Mr"),
        ("Heikkinen, Miss. Laina", "female", 26.0, "Miss"),
        ("Aubart, Mme. Leontine Pauline", "female", 24.0, "Mrs"),
        ("Duff Gordon, Lady. (Lucille Christiana Sutherland)", "female", 48.0, "Rare"),
        ("Rothes, the Countess. of (Lucy Noel Martha Dyer-Edwards)", "female", 33.0, "Rare"),
        ("Palsson, Master. Gosta Leonard", "male", 2.0, "Master"),
        (None, "male", 8.0, "Master"),
        (None, "male", math.nan, "Mr"),
        (None, "female", 40.0, "Mrs"),
        (None, "female", math.nan, "Miss"),
        ("No title at all", "female", 12.0, "Miss"),
    ],
)
def test_title_of(name: str | None, sex: str, age: float, title: str) -> None:
    assert title_of(name, sex, age) == title


def test_fitted_statistics_match_the_training_data(spec: FeatureSpec, train: pd.DataFrame) -> None:
    assert spec.stats.age_overall == pytest.approx(train["Age"].median())
    assert spec.stats.age_by_title["Master"] < 10 < spec.stats.age_by_title["Mr"]
    assert spec.stats.fare_by_pclass["1"] > spec.stats.fare_by_pclass["2"] > spec.stats.fare_by_pclass["3"]
    assert spec.stats.embarked_mode == "S"
    assert spec.reference.ranges["Age"] == (pytest.approx(0.42), 80.0)
    assert spec.reference.categories["Sex"] == ["female", "male"]
    assert spec.reference.rows == 891


def test_encode_shape_dtype_and_no_nans(spec: FeatureSpec, train: pd.DataFrame) -> None:
    matrix = encode(train, spec)
    assert matrix.shape == (891, len(FEATURE_NAMES))
    assert matrix.dtype == np.float32
    assert not np.isnan(matrix).any()


def test_encode_imputes_age_by_title(spec: FeatureSpec) -> None:
    matrix = encode(passenger(Age=None, Name="Palsson, Master. Gosta Leonard"), spec)
    assert feature(matrix, "age") == pytest.approx(spec.stats.age_by_title["Master"])
    assert feature(matrix, "age_missing") == 1.0
    assert feature(matrix, "is_child") == 1.0


def test_encode_imputes_fare_by_class_and_port_by_mode(spec: FeatureSpec) -> None:
    matrix = encode(passenger(Fare=None, Pclass=1, Embarked=None), spec)
    assert feature(matrix, "fare") == pytest.approx(spec.stats.fare_by_pclass["1"], rel=1e-6)
    assert feature(matrix, "embarked_S") == 1.0
    assert feature(matrix, "embarked_C") + feature(matrix, "embarked_Q") == 0.0


def test_encode_derived_family_features(spec: FeatureSpec) -> None:
    matrix = encode(passenger(SibSp=2, Parch=1, Fare=40.0, Cabin="C85", Sex="female", Name="X, Mrs. Y"), spec)
    assert feature(matrix, "family_size") == 4.0
    assert feature(matrix, "is_alone") == 0.0
    assert feature(matrix, "fare_per_person") == pytest.approx(10.0)
    assert feature(matrix, "cabin_known") == 1.0
    assert feature(matrix, "title_Mrs") == 1.0
    assert feature(matrix, "sex_male") == 0.0
    assert feature(matrix, "female_third_class") == 1.0


def test_encode_accepts_frames_dicts_and_missing_optional_columns(
    spec: FeatureSpec, train: pd.DataFrame
) -> None:
    rows = train.head(20)
    from_frame = encode(rows, spec)
    from_dict = encode({c: rows[c].tolist() for c in rows.columns}, spec)
    np.testing.assert_array_equal(from_frame, from_dict)
    without_optional = encode(rows.drop(columns=["Ticket", "Cabin", "PassengerId"]), spec)
    assert without_optional.shape == from_frame.shape


def test_encode_ignores_passenger_id_and_ticket(spec: FeatureSpec) -> None:
    a = encode(passenger(PassengerId=1, Ticket="A/5 21171"), spec)
    b = encode(passenger(PassengerId=99999, Ticket="something else"), spec)
    np.testing.assert_array_equal(a, b)


def test_encode_rows_are_independent(spec: FeatureSpec, train: pd.DataFrame) -> None:
    """Batch encoding gives each row exactly what encoding it alone gives (no cross-row leakage)."""
    batch = encode(train.head(30), spec)
    for i in range(30):
        single = encode(train.iloc[[i]], spec)
        np.testing.assert_array_equal(batch[i], single[0])


def test_drift_alerts_clean_row(spec: FeatureSpec) -> None:
    assert drift_alerts(passenger(), spec) == [NO_DRIFT]


def test_drift_alerts_out_of_range_and_unseen(spec: FeatureSpec) -> None:
    (alert,) = drift_alerts(passenger(Age=95.0, Fare=900.0), spec)
    assert "Age 95 is outside the training range 0.42–80" in alert
    assert "Fare 900 is outside the training range 0–512.329" in alert


def test_drift_alerts_imputed_values_name_feature_and_range(spec: FeatureSpec) -> None:
    (alert,) = drift_alerts(passenger(Age=None, Embarked=None, Name=None), spec)
    assert "Age is missing: imputed 30 (median for title Mr; training range 0.42–80)" in alert
    assert "Embarked is missing" in alert
    assert "Name is missing" in alert


def test_drift_alerts_unseen_category(spec: FeatureSpec, train: pd.DataFrame) -> None:
    only_s = fit_feature_spec(train[train["Embarked"] == "S"])
    (alert,) = drift_alerts(passenger(Embarked="Q"), only_s)
    assert alert == "Embarked 'Q' was never seen in training (seen: S)"


def test_spec_round_trip(tmp_path: Path, spec: FeatureSpec, train: pd.DataFrame) -> None:
    path = tmp_path / "spec.json"
    spec.save(path)
    loaded = FeatureSpec.load(path)
    assert loaded == spec
    np.testing.assert_array_equal(encode(train, loaded), encode(train, spec))


def test_spec_from_another_encoding_version_is_refused(tmp_path: Path, spec: FeatureSpec) -> None:
    data = spec.to_dict()
    data["encoding_version"] = ENCODING_VERSION + 1
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(data))
    with pytest.raises(FeatureSpecError, match="encoding version"):
        FeatureSpec.load(path)


def test_malformed_spec_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text('{"encoding_version": 1}')
    with pytest.raises(FeatureSpecError, match="malformed"):
        FeatureSpec.load(path)


def test_fit_on_no_rows_is_refused(train: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="zero training rows"):
        fit_feature_spec(train.head(0))


def _both_paths(
    columns: dict[str, list[object]] | pd.DataFrame, spec: FeatureSpec
) -> tuple[np.ndarray | None, np.ndarray]:
    """The row-by-row (serving's few rows; None when it refuses the values) and column-wise encodings."""
    from lifeboat.dataset import features

    passengers = features._read(columns)
    try:
        rows: np.ndarray | None = features._encode_rows(passengers, spec)
    except (ZeroDivisionError, ValueError, OverflowError, FloatingPointError):
        rows = None
    with np.errstate(all="ignore"):
        return rows, features._encode_columns(passengers, spec)


def test_row_by_row_encoding_is_bit_identical_to_the_column_wise_one(
    spec: FeatureSpec, train: pd.DataFrame
) -> None:
    test = pd.read_csv(Path(__file__).resolve().parents[2] / "data" / "titanic" / "raw" / "test.csv")
    for frame in (train, test):
        rows, columns = _both_paths(frame, spec)
        assert rows is not None
        assert rows.dtype == columns.dtype == np.float32
        np.testing.assert_array_equal(rows, columns)
        assert rows.tobytes() == columns.tobytes()


@pytest.mark.parametrize(
    ("overrides", "row_by_row"),
    [
        ({"Age": None, "Name": "Sage, Master. Thomas Henry"}, True),
        ({"Age": None, "Name": None, "Sex": "female"}, True),
        ({"Fare": None, "Pclass": 1}, True),
        ({"Fare": None, "Pclass": 7}, True),
        ({"Fare": None, "Pclass": None}, True),
        ({"Embarked": None}, True),
        ({"Embarked": "X"}, True),
        ({"Cabin": "C85", "Sex": "female", "Pclass": 3}, True),
        ({"Age": 0.42, "Fare": 0.0}, True),
        ({"Age": 15.999, "SibSp": 8, "Parch": 6, "Fare": 512.3292}, True),
        ({"Name": "Nobody, Jonkheer. John George", "Age": 38.0}, True),
        ({"Fare": 1e308, "SibSp": 0, "Parch": 0}, True),
        ({"Fare": 7.25, "SibSp": -1, "Parch": 0}, False),  # family 0: numpy's inf
        ({"Fare": -3.0}, False),  # log1p below -1: numpy's NaN
    ],
)
def test_row_by_row_encoding_matches_on_odd_rows(
    spec: FeatureSpec, overrides: dict[str, object], row_by_row: bool
) -> None:
    rows, columns = _both_paths(passenger(**overrides), spec)
    assert (rows is not None) == row_by_row
    if rows is not None:
        assert rows.tobytes() == columns.tobytes()
    with np.errstate(all="ignore"):  # encode() falls back to the column-wise path for the odd ones
        assert encode(passenger(**overrides), spec).tobytes() == columns.tobytes()
