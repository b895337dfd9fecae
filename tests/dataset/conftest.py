"""Fixtures of the dataset-spec tests: Titanic's spec, its data, both encoders fitted on the same rows."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from lifeboat.dataset.encoder import FittedEncoder, fit
from lifeboat.dataset.features import FeatureSpec, fit_feature_spec
from lifeboat.dataset.models import DatasetSpec
from lifeboat.dataset.spec import load_spec

REPO_ROOT = Path(__file__).resolve().parents[2]
TITANIC_SPEC = REPO_ROOT / "data" / "titanic" / "dataset.yaml"


@pytest.fixture(scope="session")
def titanic_spec() -> DatasetSpec:
    """data/titanic/dataset.yaml, loaded."""
    return load_spec(TITANIC_SPEC)


@pytest.fixture
def titanic_mapping() -> dict[str, Any]:
    """data/titanic/dataset.yaml as plain YAML data (a fresh copy to break in a test)."""
    return copy.deepcopy(_mapping())


def _mapping() -> dict[str, Any]:
    data = yaml.safe_load(TITANIC_SPEC.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="session")
def train_frame(raw_train_csv: Path) -> pd.DataFrame:
    """Kaggle's 891 training rows as pandas reads them by default."""
    return pd.read_csv(raw_train_csv)


@pytest.fixture(scope="session")
def test_frame(raw_test_csv: Path) -> pd.DataFrame:
    """Kaggle's 418 unlabelled rows."""
    return pd.read_csv(raw_test_csv)


@pytest.fixture(scope="session")
def fitted(titanic_spec: DatasetSpec, train_frame: pd.DataFrame) -> FittedEncoder:
    """The spec-driven encoder fitted on the training rows."""
    return fit(titanic_spec, train_frame)


@pytest.fixture(scope="session")
def legacy(train_frame: pd.DataFrame) -> FeatureSpec:
    """Today's hand-written Titanic encoding (lifeboat.dataset.features) fitted on the same rows."""
    return fit_feature_spec(train_frame)
