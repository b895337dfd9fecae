"""Drift reports of any dataset: the spec's drift section decides the columns, their kind, test and threshold
(Adult, the second bundled dataset, and specs with overrides and mistakes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from lifeboat.dataset.spec import load_spec, parse_spec
from lifeboat.monitoring.drift import drift_report, score_columns
from lifeboat.monitoring.drift_frames import analysis_frame
from lifeboat.monitoring.drift_models import DriftError
from lifeboat.monitoring.drift_plan import DriftPlanError, drift_plan, plan_of
from lifeboat.settings import Settings

pytestmark = pytest.mark.unit

ADULT_NUMERICAL = ("age", "education_num", "capital_gain", "capital_loss", "hours_per_week")
ADULT_CATEGORICAL = (
    "workclass",
    "education",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "native_country",
)


@pytest.fixture(scope="module")
def adult_settings() -> Settings:
    return Settings(dataset="adult")


@pytest.fixture(scope="module")
def adult(adult_settings: Settings) -> pd.DataFrame:
    path = adult_settings.raw_data
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `make pull`")
    return pd.read_csv(path)


def test_adult_plan_follows_the_spec(adult_settings: Settings) -> None:
    plan = plan_of(adult_settings)
    assert plan.numerical == ADULT_NUMERICAL
    # Nullable categorical columns need no indicator: a missing value is a category of its own.
    assert plan.categorical == ADULT_CATEGORICAL
    assert plan.id_column is None
    assert plan.derived == ()
    assert {plan.method(c) for c in ADULT_NUMERICAL} == {adult_settings.drift_num_method}
    assert plan.threshold("sex") == adult_settings.drift_cat_threshold
    assert plan.threshold("native_country") == 0.16  # the spec's own, calibrated on adult's batches


def test_adult_halves_do_not_drift_and_a_shift_does(
    adult: pd.DataFrame, adult_settings: Settings, tmp_path: Path
) -> None:
    shuffled = adult.sample(frac=1.0, random_state=7).reset_index(drop=True)
    reference, current = shuffled.iloc[:5000], shuffled.iloc[5000:10000]
    quiet = drift_report(reference, current, tmp_path, "halves", adult_settings)
    assert quiet.status == "no_drift", quiet.message
    assert list(quiet.columns) == [*ADULT_NUMERICAL, *ADULT_CATEGORICAL]
    assert (tmp_path / "halves.html").stat().st_size > 10_000

    older = current.assign(age=current["age"] + 15, sex="Male")
    shifted = drift_report(reference, older, tmp_path, "older-men", adult_settings)
    assert shifted.status == "drift"
    assert shifted.drifted_columns == ["age", "sex"]
    assert shifted.columns["age"].method == "wasserstein"
    assert shifted.columns["sex"].kind == "categorical"


def _spec(**drift: Any) -> dict[str, Any]:
    return {
        "name": "toy",
        "label": {"column": "y", "positive": 1},
        "columns": [
            {"name": "y", "type": "integer", "role": "label", "vocabulary": [0, 1]},
            {"name": "tenure", "type": "numeric", "nullable": True},
            {"name": "plan", "type": "categorical"},
            {"name": "stars", "type": "integer", "vocabulary": [1, 2, 3]},
            {"name": "note", "type": "text", "nullable": True},
        ],
        "derived": [{"name": "long", "transform": "indicator", "when": {"tenure": {"ge": 12}}}],
        "features": [{"column": "tenure", "impute": "median"}, {"column": "plan", "encoding": "onehot"}],
        "drift": drift,
    }


def test_overrides_and_kinds_per_column() -> None:
    spec = parse_spec(
        _spec(
            columns=["tenure", "plan", "stars", "long"],
            numeric_threshold=0.5,
            methods={"plan": "psi"},
            thresholds={"stars": 0.2},
        )
    )
    plan = drift_plan(spec, Settings())
    assert plan.numerical == ("tenure",)
    assert plan.categorical == ("plan", "stars", "long", "tenure_missing")
    assert plan.derived == ("long",)
    assert plan.required == ("plan", "stars")
    assert (plan.method("plan"), plan.method("stars")) == ("psi", "jensenshannon")
    assert (plan.threshold("tenure"), plan.threshold("stars"), plan.threshold("plan")) == (0.5, 0.2, 0.075)


def test_derived_and_indicator_columns_are_computed(tmp_path: Path) -> None:
    spec = parse_spec(_spec(columns=["tenure", "long"]))
    rows = 400
    reference = pd.DataFrame(
        {"tenure": [i % 24 for i in range(rows)], "plan": "a", "stars": 1, "note": None, "y": 0}
    )
    current = reference.assign(tenure=[None if i % 2 else 5.0 for i in range(rows)])
    summary = drift_report(reference, current, tmp_path, "toy", Settings(), plan=drift_plan(spec, Settings()))
    assert list(summary.columns) == ["tenure", "long", "tenure_missing"]
    # Half the tenures went missing, the rest are all short: every analysed column moved.
    assert summary.drifted_columns == ["tenure", "long", "tenure_missing"]


@pytest.mark.parametrize(
    ("drift", "message"),
    [
        ({"columns": ["note"]}, r"toy: drift.columns: 'note' is free text"),
        ({"methods": {"stars": "psi"}, "columns": ["plan"]}, r"toy: drift.methods: 'stars' is not one"),
        ({"thresholds": {"nope": 0.1}}, r"toy: drift.thresholds: 'nope' is not one"),
    ],
)
def test_bad_drift_sections_are_refused(drift: dict[str, Any], message: str) -> None:
    spec = parse_spec(_spec(**drift))
    with pytest.raises(DriftPlanError, match=message):
        drift_plan(spec, Settings())


def test_an_unknown_method_names_the_spec_key(tmp_path: Path, adult: pd.DataFrame) -> None:
    spec = load_spec(Settings(dataset="adult").dataset_spec)
    data = spec.model_dump(mode="json")
    data["drift"]["methods"] = {"sex": "jensen"}
    plan = drift_plan(parse_spec(data), Settings())
    with pytest.raises(DriftError, match=r"drift.methods.sex of the adult spec='jensen' is not usable"):
        drift_report(adult.iloc[:400], adult.iloc[400:800], tmp_path, "bad", Settings(), plan=plan)


def test_adult_thresholds_are_quiet_on_its_own_small_batches(
    adult: pd.DataFrame, adult_settings: Settings
) -> None:
    """300-row bootstrap batches of the training data: the calibration the spec's thresholds come from."""
    plan = plan_of(adult_settings)
    reference = analysis_frame(adult, "reference", plan)
    alarms = 0
    flagged: dict[str, int] = {}
    for seed in range(60):
        batch = adult.sample(n=300, random_state=1000 + seed, replace=True)
        scores = score_columns(reference, analysis_frame(batch, "current", plan), adult_settings, plan)
        drifted = [c for c, v in scores.items() if v.drifted]
        for column in drifted:
            flagged[column] = flagged.get(column, 0) + 1
        alarms += len(drifted) / len(scores) >= adult_settings.drift_share_threshold
    assert alarms <= 2, flagged  # dataset-level false alarms at most ~3 %
    shifted = adult.sample(n=300, random_state=5).assign(age=lambda f: f["age"] + 10)
    scores = score_columns(reference, analysis_frame(shifted, "current", plan), adult_settings, plan)
    assert [c for c, v in scores.items() if v.drifted] == ["age"]
