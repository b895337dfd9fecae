"""Pure parts of lifeboat.monitoring.drift: the analysis frame, the summary's JSON form, the retraining
decision."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lifeboat.data.simulate import make_batch, write_batch
from lifeboat.dataset.features import derive_titles
from lifeboat.monitoring.drift import should_retrain
from lifeboat.monitoring.drift_frames import (
    analysis_frame,
    current_from_batches,
    sample_rows,
)
from lifeboat.monitoring.drift_models import ColumnDrift, DriftError, DriftSummary, Status
from lifeboat.monitoring.drift_plan import DriftPlan
from tests.drift.drift_cases import START_ID, TITANIC_ANALYSED, TITANIC_CATEGORICAL, TITANIC_NUMERICAL

pytestmark = pytest.mark.unit


def _summary(
    status: Status = "drift", dataset_drift: bool = True, drifted: list[str] | None = None
) -> DriftSummary:
    drifted = ["Age"] if drifted is None else drifted
    columns = {
        c: ColumnDrift(
            "numerical" if c in TITANIC_NUMERICAL else "categorical",
            "wasserstein",
            0.5 if c in drifted else 0.01,
            0.2,
            c in drifted,
        )
        for c in TITANIC_ANALYSED
    }
    return DriftSummary(
        name="batch-1",
        status=status,
        dataset_drift=dataset_drift,
        share_drifted=len(drifted) / 10,
        drift_share_threshold=0.1,
        drifted_columns=drifted,
        columns=columns,
        reference_rows=891,
        current_rows=300,
        analysed_rows=300,
        min_rows=300,
        current_source="batch-1.csv",
        created_at="2025-01-01T00:00:00.000000+00:00",
        html_path="/r/batch-1.html",
        json_path="/r/batch-1.json",
        message="drift: 1 of 10 columns drifted (Age)",
    )


def test_titanic_plan_is_the_calibrated_one(titanic_plan: DriftPlan) -> None:
    assert titanic_plan.numerical == TITANIC_NUMERICAL
    assert titanic_plan.categorical == TITANIC_CATEGORICAL
    assert dict(titanic_plan.indicators) == {"Age": "Age_missing", "Fare": "Fare_missing"}
    assert titanic_plan.derived == ("Title",)
    assert {titanic_plan.method(c) for c in TITANIC_NUMERICAL} == {"wasserstein"}
    assert {titanic_plan.method(c) for c in TITANIC_CATEGORICAL} == {"jensenshannon"}


def test_analysis_frame_keeps_only_the_analysed_columns(
    train_frame: pd.DataFrame, titanic_plan: DriftPlan
) -> None:
    frame = analysis_frame(train_frame, "reference", titanic_plan)
    assert list(frame.columns) == ["PassengerId", *TITANIC_ANALYSED]
    for text_column in ("Name", "Ticket", "Cabin", "Survived"):
        assert text_column not in frame.columns
    assert frame["Title"].tolist() == derive_titles(train_frame)
    assert sorted(frame["Pclass"].cat.categories) == ["1", "2", "3"]
    assert (frame["Age_missing"] == "missing").sum() == train_frame["Age"].isna().sum() == 177
    assert (frame["Fare_missing"] == "present").all()
    assert frame["Embarked"].isna().sum() == 2
    for column in TITANIC_NUMERICAL:
        assert frame[column].dtype == np.float64
    for column in TITANIC_CATEGORICAL:
        assert isinstance(frame[column].dtype, pd.CategoricalDtype)


def test_analysis_frame_takes_strings_and_absent_optional_columns(
    train_frame: pd.DataFrame, titanic_plan: DriftPlan
) -> None:
    as_text = train_frame.astype(str).replace("nan", "").drop(columns=["Name", "Embarked"])
    frame = analysis_frame(as_text, "current", titanic_plan)
    assert frame["Age"].isna().sum() == 177
    assert frame["Pclass"].astype(str).tolist() == train_frame["Pclass"].astype(str).tolist()
    assert frame["Embarked"].isna().all()
    # Without Name the title is inferred from Sex and Age, as serving does.
    assert set(frame["Title"]) <= {"Mr", "Mrs", "Miss", "Master"}


def test_analysis_frame_errors_name_the_column(train_frame: pd.DataFrame, titanic_plan: DriftPlan) -> None:
    with pytest.raises(DriftError, match=r"current data lacks required column.*Sex"):
        analysis_frame(train_frame.drop(columns="Sex"), "current", titanic_plan)
    bad = train_frame.astype({"Fare": object})
    bad.loc[3, "Fare"] = "cheap"
    with pytest.raises(DriftError, match="'Fare' must be numeric"):
        analysis_frame(bad, "current", titanic_plan)


def test_sampling_is_deterministic_and_bounded(train_frame: pd.DataFrame) -> None:
    first = sample_rows(train_frame, 100, seed=42)
    assert len(first) == 100
    pd.testing.assert_frame_equal(first, sample_rows(train_frame, 100, seed=42))
    assert first["PassengerId"].is_unique  # without replacement
    assert sample_rows(train_frame, 0, seed=42) is train_frame
    assert sample_rows(train_frame, 5000, seed=42) is train_frame


def test_current_from_batches_concatenates_in_order(train_frame: pd.DataFrame, tmp_path: Path) -> None:
    a = write_batch(make_batch(train_frame, 5, None, seed=1, start_id=START_ID), tmp_path / "a.csv")
    b = write_batch(make_batch(train_frame, 7, None, seed=2, start_id=START_ID + 5), tmp_path / "b.csv")
    both = current_from_batches([a, b])
    assert both["PassengerId"].tolist() == list(range(START_ID, START_ID + 12))
    with pytest.raises(FileNotFoundError, match=r"missing\.csv"):
        current_from_batches([a, tmp_path / "missing.csv"])
    with pytest.raises(ValueError, match="no batch files"):
        current_from_batches([])


def test_summary_round_trips_through_json() -> None:
    summary = _summary()
    data = json.loads(json.dumps(summary.to_dict()))
    assert data["columns"]["Age"] == {
        "kind": "numerical",
        "method": "wasserstein",
        "score": 0.5,
        "threshold": 0.2,
        "drifted": True,
    }
    assert set(data) >= {
        "status",
        "dataset_drift",
        "share_drifted",
        "drifted_columns",
        "columns",
        "reference_rows",
        "current_rows",
        "current_source",
        "created_at",
    }
    assert DriftSummary.from_dict(data) == summary


@pytest.mark.parametrize(
    ("policy", "summary", "has_new_data", "retrain", "why"),
    [
        ("always", None, False, True, "every run"),
        ("always", "no_drift", False, True, "every run"),
        ("report_only", "drift", True, True, "new labelled data"),
        ("report_only", "drift", False, False, "no new labelled data"),
        ("retrain_on_drift", "drift", True, True, "drift detected (Age)"),
        ("retrain_on_drift", "drift", False, False, "no new labelled data"),
        ("retrain_on_drift", "no_drift", True, False, "no dataset drift"),
        ("retrain_on_drift", "not_enough_data", True, False, "not enough data"),
        ("retrain_on_drift", None, True, False, "no drift report"),
    ],
)
def test_should_retrain(
    policy: str, summary: str | None, has_new_data: bool, retrain: bool, why: str
) -> None:
    report = {
        None: None,
        "drift": _summary(),
        "no_drift": _summary("no_drift", False, []),
        "not_enough_data": _summary("not_enough_data", False, []),
    }[summary]
    decision, reason = should_retrain(report, has_new_data, policy)
    assert decision is retrain
    assert why in reason
    assert policy in reason
    if report is not None:  # the DAG passes the summary through XCom as a plain dict
        assert should_retrain(report.to_dict(), has_new_data, policy) == (decision, reason)


def test_should_retrain_rejects_unknown_policies() -> None:
    with pytest.raises(ValueError, match="unknown retraining policy 'sometimes'"):
        should_retrain(_summary(), True, "sometimes")
