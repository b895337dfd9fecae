"""Fixtures of the drift tests: the training rows, their analysis frame, the drift settings under test."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lifeboat.monitoring.drift_frames import analysis_frame
from lifeboat.monitoring.drift_plan import DriftPlan, plan_of
from lifeboat.settings import Settings


@pytest.fixture(scope="session")
def titanic_plan() -> DriftPlan:
    """What Titanic's drift report compares (data/titanic/dataset.yaml, default drift settings)."""
    return plan_of(Settings())


@pytest.fixture(scope="session")
def train_frame(raw_train_csv: Path) -> pd.DataFrame:
    """Kaggle's 891 training passengers, as the training job logs them for the drift reference."""
    return pd.read_csv(raw_train_csv)


@pytest.fixture(scope="session")
def reference_analysis(train_frame: pd.DataFrame, titanic_plan: DriftPlan) -> pd.DataFrame:
    """The training rows as the drift report analyses them."""
    return analysis_frame(train_frame, "reference", titanic_plan)


@pytest.fixture
def drift_settings() -> Settings:
    """The drift settings under test: the shipped defaults (LIFEBOAT_DRIFT_* variables override them)."""
    return Settings()
