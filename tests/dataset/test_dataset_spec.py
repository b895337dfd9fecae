"""Loading dataset.yaml: Titanic's spec, every refusal (one message naming file and key), the fingerprint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from lifeboat.dataset.features import FEATURE_NAMES
from lifeboat.dataset.models import DatasetSpec
from lifeboat.dataset.schema import COLUMN_NAMES
from lifeboat.dataset.spec import DatasetSpecError, check_against_data, load_spec, parse_spec
from lifeboat.registry.gate import GateConfig
from lifeboat.settings import Settings

pytestmark = pytest.mark.unit


def write_spec(tmp_path: Path, data: Any, name: str = "dataset.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def refusal(tmp_path: Path, data: dict[str, Any]) -> DatasetSpecError:
    path = write_spec(tmp_path, data)
    with pytest.raises(DatasetSpecError) as info:
        load_spec(path)
    assert info.value.file == str(path)
    assert str(info.value).startswith(f"{path}: {info.value.key}: ")
    assert "\n" not in str(info.value)
    return info.value


def column(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in data["columns"] if c["name"] == name)


def test_titanic_spec_describes_todays_platform(titanic_spec: DatasetSpec) -> None:
    assert titanic_spec.name == "titanic"
    assert titanic_spec.registered_model_name == Settings().model_name
    assert titanic_spec.id_column == "PassengerId"
    assert (titanic_spec.label.column, titanic_spec.label.positive) == ("Survived", 1)
    assert titanic_spec.raw_columns == list(COLUMN_NAMES)
    assert titanic_spec.schedule == Settings().retrain_schedule
    assert titanic_spec.response.prediction == "survived"
    assert titanic_spec.response.probability == "probability_survive"
    assert titanic_spec.example["Name"] == "Wilkes, Mrs. James (Ellen Needs)"
    assert titanic_spec.models["lr"] == {"regParam": [0.01, 0.1]}
    assert titanic_spec.models["rf"]["maxDepth"] == [5, 8]
    assert titanic_spec.models["gbt"]["stepSize"] == [0.1, 0.3]
    assert titanic_spec.alert_ranges == ["Age", "Fare", "SibSp", "Parch"]
    assert titanic_spec.alert_categories == ["Pclass", "Sex", "Embarked", "Title"]
    assert titanic_spec.drift_columns == [
        "Age",
        "Fare",
        "SibSp",
        "Parch",
        "Pclass",
        "Sex",
        "Embarked",
        "Title",
    ]
    assert titanic_spec.feature_names == list(FEATURE_NAMES)


def test_feature_names_need_fitting_without_a_declared_vocabulary(titanic_mapping: dict[str, Any]) -> None:
    del titanic_mapping["derived"][0]["vocabulary"]
    assert parse_spec(titanic_mapping).feature_names is None


def test_gate_overrides_are_gate_config_fields(titanic_spec: DatasetSpec) -> None:
    overrides = titanic_spec.gate.overrides()
    assert overrides == {"min_roc_auc": 0.80, "min_accuracy": 0.75}
    config = GateConfig(**{**GateConfig().__dict__, **overrides})
    assert config.min_roc_auc == 0.80


def test_defaults_of_a_minimal_spec() -> None:
    spec = parse_spec(
        {
            "name": "churn",
            "label": {"column": "churned", "positive": "yes"},
            "columns": [
                {"name": "churned", "type": "categorical", "role": "label", "vocabulary": ["yes", "no"]},
                {"name": "plan", "type": "categorical", "vocabulary": ["a", "b"]},
                {"name": "tenure", "type": "numeric", "nullable": True},
            ],
            "features": [{"column": "plan", "encoding": "onehot"}, {"column": "tenure", "impute": "median"}],
        }
    )
    assert spec.registered_model_name == "churn"
    assert spec.response.prediction == "prediction"
    assert spec.response.probability == "probability"
    assert spec.drift_columns == ["plan", "tenure"]
    assert spec.alert_ranges == ["tenure"]
    assert spec.alert_categories == ["plan"]
    assert spec.gate.overrides() == {}


@pytest.mark.parametrize(
    ("break_it", "key", "fragment"),
    [
        (lambda d: d.update(colour="blue"), "colour", "unknown key"),
        (lambda d: column(d, "Age").update(unit="years"), "columns.Age.unit", "unknown key"),
        (lambda d: column(d, "Age").update(type="float"), "columns.Age.type", "'numeric'"),
        (
            lambda d: d["derived"][0].update(transform="soundex"),
            "derived.Title",
            "unknown transform 'soundex'",
        ),
        (lambda d: d["derived"][2].update(by="Titel"), "derived.age", "unknown column 'Titel'"),
        (lambda d: d["features"][0].update(column="Klass"), "features.pclass", "unknown column 'Klass'"),
        (
            lambda d: d["columns"].append({"name": "Age", "type": "numeric"}),
            "columns.Age",
            "duplicate column",
        ),
        (lambda d: d["derived"][1].update(name="age"), "derived.age", "duplicate name 'age'"),
        (lambda d: d["features"].append({"column": "fare"}), "features.fare", "duplicate feature name"),
        (
            lambda d: d["derived"][0].update(pattern="(unclosed"),
            "derived.Title.pattern",
            "regular expression",
        ),
        (lambda d: d["label"].update(column="Age"), "label.column", "role label"),
        (lambda d: d.update(schedule="nightly"), "schedule", "cron"),
        (lambda d: d["models"].update(svm={"C": [1]}), "models", "unknown model families"),
        (lambda d: column(d, "Age").update(range={"min": 5, "max": 1}), "columns.Age.range", "above max"),
        (lambda d: d["features"].append({"column": "Sex", "name": "sex"}), "features.sex", "onehot"),
        (lambda d: d["example"].update(Deck="C"), "example.Deck", "unknown column"),
        (lambda d: d["alerts"]["ranges"].append("PassengerId"), "alerts.ranges", "not a feature column"),
    ],
)
def test_bad_specs_are_refused_naming_the_key(
    tmp_path: Path, titanic_mapping: dict[str, Any], break_it: Any, key: str, fragment: str
) -> None:
    break_it(titanic_mapping)
    error = refusal(tmp_path, titanic_mapping)
    assert error.key == key
    assert fragment in error.message


def test_bad_yaml_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "dataset.yaml"
    path.write_text("name: titanic\ncolumns: [unclosed\n")
    with pytest.raises(DatasetSpecError, match=r"not valid YAML \(line 3"):
        load_spec(path)


def test_a_spec_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetSpecError, match="expected a mapping"):
        load_spec(write_spec(tmp_path, ["name", "titanic"]))


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetSpecError, match="cannot read the file"):
        load_spec(tmp_path / "nope.yaml")


def test_titanic_spec_agrees_with_its_data(titanic_spec: DatasetSpec, train_frame: pd.DataFrame) -> None:
    check_against_data(titanic_spec, train_frame)


@pytest.mark.parametrize(
    ("change", "key", "fragment"),
    [
        (lambda f: f.assign(Survived=f["Survived"].where(f.index > 0, 2)), "label.column", "exactly two"),
        (lambda f: f.assign(Survived=0), "label.column", "exactly two values in the data, found ['0']"),
        (
            lambda f: f.assign(Embarked=f["Embarked"].replace("Q", "X")),
            "columns.Embarked.vocabulary",
            "['X']",
        ),
        (lambda f: f.assign(Pclass=f["Pclass"].replace(3, 4)), "columns.Pclass.vocabulary", "['4']"),
        (lambda f: f.assign(Fare=f["Fare"] * 3), "columns.Fare.range.max", "above 1000"),
        (lambda f: f.assign(Age=f["Age"] - 1), "columns.Age.range.min", "below 0"),
    ],
)
def test_data_that_contradicts_the_spec_is_refused(
    titanic_spec: DatasetSpec, train_frame: pd.DataFrame, change: Any, key: str, fragment: str
) -> None:
    with pytest.raises(DatasetSpecError) as info:
        check_against_data(titanic_spec, change(train_frame.copy()), file="data/titanic/dataset.yaml")
    assert info.value.key == key
    assert fragment in info.value.message


def test_positive_label_must_occur_in_the_data(
    titanic_mapping: dict[str, Any], train_frame: pd.DataFrame
) -> None:
    titanic_mapping["label"]["positive"] = "yes"
    with pytest.raises(DatasetSpecError, match=r"label\.positive"):
        check_against_data(parse_spec(titanic_mapping), train_frame)


def test_fingerprint_ignores_yaml_layout_and_key_order(
    tmp_path: Path, titanic_mapping: dict[str, Any]
) -> None:
    reordered = dict(reversed(list(titanic_mapping.items())))
    reordered["columns"] = [dict(reversed(list(c.items()))) for c in titanic_mapping["columns"]]
    block = tmp_path / "block.yaml"
    block.write_text(yaml.safe_dump(reordered, default_flow_style=False, sort_keys=False))
    flow = tmp_path / "flow.yaml"
    flow.write_text(yaml.safe_dump(titanic_mapping, default_flow_style=True, width=60))
    original = load_spec(Path(__file__).resolve().parents[2] / "data" / "titanic" / "dataset.yaml")
    assert load_spec(block).fingerprint() == load_spec(flow).fingerprint() == original.fingerprint()
    assert len(original.fingerprint()) == 64


def test_fingerprint_changes_with_meaning(titanic_mapping: dict[str, Any], titanic_spec: DatasetSpec) -> None:
    titanic_mapping["derived"][4]["when"]["age"]["lt"] = 18
    assert parse_spec(titanic_mapping).fingerprint() != titanic_spec.fingerprint()


def test_feature_columns_equal_but_for_case_are_refused(titanic_mapping: dict[str, Any]) -> None:
    """Spark column names ignore case: a value "other" next to the unknown bucket ``<prefix>_other`` (or
    any two names differing only in case) cannot both be columns."""
    titanic_mapping["columns"] = [
        {**c, "vocabulary": ["C", "Q", "S", "Other"]} if c["name"] == "Embarked" else c
        for c in titanic_mapping["columns"]
    ]
    titanic_mapping["features"] = [
        {**f, "unknown": "other"} if f["column"] == "Embarked" else f for f in titanic_mapping["features"]
    ]
    with pytest.raises(DatasetSpecError) as caught:
        parse_spec(titanic_mapping, file="titanic.yaml")
    assert str(caught.value) == (
        "titanic.yaml: features: feature columns 'embarked_Other' and 'embarked_other' name the same Spark "
        "column (names ignore case, and characters other than letters, digits and _ become _); rename a "
        "value with the feature's values, or use unknown: ignore instead of other"
    )


def test_onehot_columns_are_identifiers_and_values_that_become_the_same_name_are_refused(
    titanic_mapping: dict[str, Any],
) -> None:
    from lifeboat.dataset.models import onehot_names

    assert onehot_names("work", ["Self-emp-inc", "10th", "a b"], True) == [
        "work_Self_emp_inc",
        "work_10th",
        "work_a_b",
        "work_other",
    ]
    titanic_mapping["columns"] = [
        {**c, "vocabulary": ["C", "Q", "S", "Q-1", "Q 1"]} if c["name"] == "Embarked" else c
        for c in titanic_mapping["columns"]
    ]
    with pytest.raises(
        DatasetSpecError,
        match=r"feature columns 'embarked_Q_1' and 'embarked_Q_1' name the same Spark column",
    ):
        parse_spec(titanic_mapping, file="titanic.yaml")
