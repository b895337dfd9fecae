"""The spec-driven encoder: bit-identical to today's Titanic encoding, its fast path, persistence, hooks."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lifeboat.dataset import features
from lifeboat.dataset.encoder import (
    ENCODING_VERSION,
    EncoderError,
    FittedEncoder,
    encode,
    encode_with_alerts,
    fit,
)
from lifeboat.dataset.features import FeatureSpec
from lifeboat.dataset.models import DatasetSpec
from lifeboat.dataset.spec import DatasetSpecError, parse_spec

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]

BASE: dict[str, Any] = {
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
ODD_ROWS: list[dict[str, Any]] = [
    {"Age": None, "Name": "Sage, Master. Thomas Henry"},
    {"Age": None, "Name": None, "Sex": "female"},
    {"Age": None, "Name": None, "Sex": "male"},
    {"Age": math.nan, "Name": None, "Sex": None},
    {"Name": ""},
    {"Name": "   "},
    {"Name": "No title at all", "Sex": "female", "Age": 12.0},
    {"Name": "Nobody, Jonkheer. John George", "Age": 38.0},
    {"Name": "X, Dr. Y", "Age": None},
    {"Fare": None, "Pclass": 1},
    {"Fare": None, "Pclass": 7},
    {"Fare": None, "Pclass": None},
    {"Fare": None, "Pclass": 2.5},
    {"Embarked": None},
    {"Embarked": "X"},
    {"Embarked": " C "},
    {"Cabin": "C85", "Sex": "female", "Pclass": 3},
    {"Cabin": "  "},
    {"Age": 0.42, "Fare": 0.0},
    {"Age": 15.999, "SibSp": 8, "Parch": 6, "Fare": 512.3292},
    {"Sex": "other", "Age": 95.0, "Fare": 900.0},
    {"Fare": 1e308, "SibSp": 0, "Parch": 0},
    {"Fare": 7.25, "SibSp": -1, "Parch": 0},  # family size 0: numpy's inf (the fast path steps aside)
    {"Fare": -3.0},  # log1p below -1: numpy's NaN
]


def odd(overrides: dict[str, Any]) -> dict[str, Any]:
    return {**BASE, **overrides}


# --- parity with lifeboat.dataset.features ------------------------------------------------------------


def test_same_feature_names_as_today(fitted: FittedEncoder) -> None:
    assert fitted.feature_names == features.FEATURE_NAMES
    assert len(fitted.feature_names) == 22


def test_same_fitted_statistics_as_today(fitted: FittedEncoder, legacy: FeatureSpec) -> None:
    stats = fitted.statistics
    assert stats.group_tables["age"] == legacy.stats.age_by_title
    assert stats.group_overall["age"] == legacy.stats.age_overall
    assert stats.group_tables["fare"] == legacy.stats.fare_by_pclass
    assert stats.group_overall["fare"] == legacy.stats.fare_overall
    assert stats.modes["embarked"] == legacy.stats.embarked_mode
    assert stats.ranges == legacy.reference.ranges
    assert stats.categories == legacy.reference.categories
    assert stats.rows == legacy.reference.rows


@pytest.mark.parametrize("which", ["train", "test"])
def test_bit_identical_matrices_and_alerts_on_kaggle_rows(
    which: str,
    fitted: FittedEncoder,
    legacy: FeatureSpec,
    train_frame: pd.DataFrame,
    test_frame: pd.DataFrame,
) -> None:
    frame = train_frame if which == "train" else test_frame
    matrix, alerts = encode_with_alerts(fitted, frame)
    old_matrix, old_alerts = features.encode_with_alerts(frame, legacy)
    assert matrix.dtype == np.float32
    assert matrix.shape == (len(frame), 22)
    assert matrix.tobytes() == old_matrix.tobytes()
    assert alerts == old_alerts
    assert sum(a != features.NO_DRIFT for a in alerts) > 0


@pytest.mark.parametrize("overrides", ODD_ROWS, ids=[json.dumps(o) for o in ODD_ROWS])
def test_bit_identical_on_odd_rows(
    overrides: dict[str, Any], fitted: FittedEncoder, legacy: FeatureSpec
) -> None:
    row = {k: [v] for k, v in odd(overrides).items()}
    with np.errstate(all="ignore"):
        matrix, alerts = encode_with_alerts(fitted, row)
        old_matrix, old_alerts = features.encode_with_alerts(row, legacy)
    assert matrix.tobytes() == old_matrix.tobytes()
    assert alerts == old_alerts


def test_bit_identical_on_a_batch_of_odd_rows(fitted: FittedEncoder, legacy: FeatureSpec) -> None:
    batch = pd.DataFrame([odd(o) for o in ODD_ROWS])  # more than 16 rows: the column-wise path
    with np.errstate(all="ignore"):
        matrix, alerts = encode_with_alerts(fitted, batch)
        old_matrix, old_alerts = features.encode_with_alerts(batch, legacy)
    assert matrix.tobytes() == old_matrix.tobytes()
    assert alerts == old_alerts


def test_todays_alert_wording(fitted: FittedEncoder) -> None:
    (alert,) = encode_with_alerts(
        fitted, [odd({"Age": None, "Embarked": None, "Name": None, "Fare": 900.0})]
    )[1]
    assert alert == (
        "Age is missing: imputed 30 (median for title Mr; training range 0.42–80); "
        "Fare 900 is outside the training range 0–512.329; "
        "Embarked is missing: imputed 'S' (the most common port in training); "
        "Name is missing: title inferred as 'Mr' from Sex and Age"
    )
    (alert,) = encode_with_alerts(fitted, [odd({"Pclass": 7, "Sex": "other"})])[1]
    assert alert == (
        "Pclass '7' was never seen in training (seen: 1, 2, 3); "
        "Sex 'other' was never seen in training (seen: female, male)"
    )


# --- one code path, whatever the input and the row count ----------------------------------------------


def test_few_rows_fast_path_equals_the_column_wise_path(
    fitted: FittedEncoder, train_frame: pd.DataFrame
) -> None:
    batch, batch_alerts = encode_with_alerts(fitted, train_frame)  # 891 rows: column-wise
    records = train_frame.to_dict("records")
    for i in range(0, len(records), 16):  # 16 rows at a time: the row-by-row path
        chunk, chunk_alerts = encode_with_alerts(fitted, records[i : i + 16])
        assert chunk.tobytes() == batch[i : i + 16].tobytes()
        assert chunk_alerts == batch_alerts[i : i + 16]


def test_frames_column_mappings_and_records_encode_alike(
    fitted: FittedEncoder, train_frame: pd.DataFrame
) -> None:
    rows = train_frame.head(40)
    from_frame = encode(fitted, rows)
    from_columns = encode(fitted, {c: rows[c].tolist() for c in rows.columns})
    from_records = encode(fitted, rows.to_dict("records"))
    assert from_frame.tobytes() == from_columns.tobytes() == from_records.tobytes()


def test_unused_and_absent_optional_columns_change_nothing(fitted: FittedEncoder) -> None:
    a = encode(fitted, [odd({"PassengerId": 1, "Ticket": "x"})])
    b = encode(fitted, [{k: v for k, v in BASE.items() if k not in ("PassengerId", "Ticket", "Cabin")}])
    assert a.tobytes() == b.tobytes()


def test_fit_on_no_rows_is_refused(titanic_spec: DatasetSpec, train_frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="zero training rows"):
        fit(titanic_spec, train_frame.head(0))


# --- persistence ----------------------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path: Path, fitted: FittedEncoder, titanic_spec: DatasetSpec) -> None:
    path = tmp_path / "encoder.json"
    fitted.save(path)
    loaded = FittedEncoder.load(path, spec=titanic_spec)
    assert loaded == fitted
    assert loaded.fingerprint == titanic_spec.fingerprint()
    rows = [odd(o) for o in ODD_ROWS[:10]]
    assert encode(loaded, rows).tobytes() == encode(fitted, rows).tobytes()
    assert json.loads(path.read_text())["encoding_version"] == ENCODING_VERSION


def test_load_against_another_spec_is_refused(
    tmp_path: Path, fitted: FittedEncoder, titanic_mapping: dict[str, Any]
) -> None:
    path = tmp_path / "encoder.json"
    fitted.save(path)
    titanic_mapping["derived"][4]["when"]["age"]["lt"] = 18
    with pytest.raises(EncoderError, match="fitted for spec"):
        FittedEncoder.load(path, spec=parse_spec(titanic_mapping))


def test_another_encoding_version_is_refused(fitted: FittedEncoder) -> None:
    data = fitted.to_dict()
    data["encoding_version"] = ENCODING_VERSION + 1
    with pytest.raises(EncoderError, match="encoding version"):
        FittedEncoder.from_dict(data)


def test_a_tampered_embedded_spec_is_refused(fitted: FittedEncoder) -> None:
    data = fitted.to_dict()
    data["spec"]["schedule"] = "0 3 * * *"
    with pytest.raises(EncoderError, match="does not match its fingerprint"):
        FittedEncoder.from_dict(data)


def test_unreadable_encoder_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "encoder.json"
    path.write_text("{not json")
    with pytest.raises(EncoderError, match="cannot read"):
        FittedEncoder.load(path)
    path.write_text('{"encoding_version": 1}')
    with pytest.raises(EncoderError, match="malformed"):
        FittedEncoder.load(path)


# --- the escape hatch -----------------------------------------------------------------------------------

HOOK = "tests.dataset.hooks.titanic_derive"


def with_hook(mapping: dict[str, Any], function: str) -> dict[str, Any]:
    mapping["derived"].append(
        {"derive": {"function": function, "outputs": {"hook_family": "numeric", "hook_deck": "categorical"}}}
    )
    mapping["features"].append({"column": "hook_family"})
    mapping["features"].append({"column": "hook_deck", "encoding": "onehot", "unknown": "other"})
    return mapping


def test_derive_hook_adds_features(titanic_mapping: dict[str, Any], train_frame: pd.DataFrame) -> None:
    spec = parse_spec(with_hook(titanic_mapping, f"{HOOK}:family"))
    hooked = fit(spec, train_frame)
    assert hooked.feature_names[:22] == features.FEATURE_NAMES
    assert hooked.feature_names[22] == "hook_family"
    assert hooked.feature_names[23:] == (*(f"hook_deck_{d}" for d in "ABCDEFGT"), "hook_deck_other")
    matrix = encode(hooked, [odd({"SibSp": 2, "Parch": 1, "Cabin": "Z9"})])  # hooks: column-wise always
    assert matrix[0, 22] == 4.0
    assert matrix[0, -1] == 1.0  # deck Z was never seen: "other"
    np.testing.assert_array_equal(matrix[0, 7], matrix[0, 22])  # the built-in family_size agrees


@pytest.mark.parametrize(
    ("function", "fragment"),
    [("tests.dataset.hooks.nowhere:family", "cannot import"), (f"{HOOK}:missing", "has no function")],
)
def test_unloadable_hooks_are_refused_naming_the_key(
    titanic_mapping: dict[str, Any], function: str, fragment: str
) -> None:
    with pytest.raises(DatasetSpecError) as info:
        parse_spec(with_hook(titanic_mapping, function), file="dataset.yaml")
    assert info.value.key == "derived[12].derive.function"
    assert fragment in info.value.message


def test_a_hook_that_forgets_an_output_is_refused(
    titanic_mapping: dict[str, Any], train_frame: pd.DataFrame
) -> None:
    spec = parse_spec(with_hook(titanic_mapping, f"{HOOK}:broken"))
    with pytest.raises(DatasetSpecError, match="did not return the output 'hook_family'"):
        fit(spec, train_frame)


def test_the_encoder_needs_no_yaml_parser_spark_or_airflow() -> None:
    """The server imports the encoder (and loads fitted encoders from JSON) without PyYAML, Spark, Airflow."""
    code = (
        "import sys, lifeboat.dataset.encoder, lifeboat.dataset.validation; "
        "print(sorted(m for m in ('yaml', 'pyspark', 'airflow') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert done.stdout.strip() == "[]"


# --- encoders fitted before the spec model gained keys ------------------------------------------------


def _legacy_fingerprint(spec: dict[str, Any]) -> str:
    """Fingerprints before unset keys were left out: the plain dump, every default written."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def test_an_encoder_fitted_before_a_spec_key_existed_still_loads_with_its_fingerprint(
    fitted: FittedEncoder,
) -> None:
    from lifeboat.dataset.fitted import EncoderError

    data = fitted.to_dict()
    old_spec = {
        k: v for k, v in data["spec"].items() if k != "retrain"
    }  # the model had no `retrain` key then
    old_spec["drift"] = {**old_spec["drift"], "thresholds": {}}  # a key whose default was written out then
    old = {**data, "spec": old_spec, "spec_fingerprint": _legacy_fingerprint(old_spec)}
    loaded = FittedEncoder.from_dict(old)
    assert loaded.fingerprint == old["spec_fingerprint"]  # what the model version's tag recorded
    tampered = {**old, "spec": {**old_spec, "description": "edited after fitting"}}
    with pytest.raises(EncoderError, match="does not match its fingerprint"):
        FittedEncoder.from_dict(tampered)


def test_unset_keys_are_not_part_of_the_fingerprint(titanic_spec: Any) -> None:
    assert '"retrain"' not in titanic_spec.canonical_json()  # the section is not set in the titanic spec
    assert titanic_spec.model_copy(update={"retrain": None}).fingerprint() == titanic_spec.fingerprint()
