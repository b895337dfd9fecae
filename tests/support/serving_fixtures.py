"""Fixtures of the serving tests (tests/serving, tests/proof): a registered champion, store copies to change,
in-process apps.

A pytest plugin module, loaded for every test folder by ``pytest_plugins`` in tests/conftest.py, so that one
session trains the champion once whichever folders use it.

The champion comes from ONE fixture, :func:`champion_store` (session-scoped): a copy of the session's one
real training run (tests/support/champion.py: the real Spark jobs, promoted by the real gate). The alternate
and broken versions are small scikit-learn ONNX models registered beside it. Tests that move aliases or add
versions work on a *copy* of that store (:func:`store_copy`), so the shared store never changes under
another test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from lifeboat.settings import Settings
from tests.serving.serving_support import (
    CHAMPION,
    MODEL_NAME,
    ServingVersions,
    StoreRef,
    copy_store,
    serving_settings,
)
from tests.support.champion import EXPERIMENT_NAME, TrainedState, clone_state
from tests.support.models import artifact_dir, mlflow_store, register_sklearn_version, titanic_frame


@pytest.fixture(scope="session")
def serving_store_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings of the shared serving test store (SQLite + local artifacts)."""
    root = tmp_path_factory.mktemp("serving-store")
    return Settings(
        state_dir=root,
        mlflow_tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        experiment_name=EXPERIMENT_NAME,
        model_name=MODEL_NAME,
    )


@pytest.fixture(scope="session")
def train_frame(raw_train_csv: Path) -> pd.DataFrame:
    """Kaggle's labelled rows."""
    return titanic_frame(raw_train_csv)


@pytest.fixture(scope="session")
def champion_store(trained_champion: TrainedState, serving_store_settings: Settings) -> StoreRef:
    """THE champion of the serving tests: (tracking_uri, model_name, version) with alias ``champion`` set.

    The session's one real training run (tests/support/champion.py: `lifeboat train`, spark-submit
    preprocess + train, the gate, the promotion, logistic regression with 3 folds), copied into this store.
    """
    from mlflow import MlflowClient

    result = trained_champion
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    settings = serving_store_settings
    clone_state(result.state_dir, settings.state_dir)
    with mlflow_store(settings) as uri:
        version = MlflowClient(uri, uri).get_model_version_by_alias(MODEL_NAME, CHAMPION).version
    return StoreRef(uri, MODEL_NAME, str(version))


@pytest.fixture(scope="session")
def serving_versions(
    champion_store: StoreRef, serving_store_settings: Settings, train_frame: pd.DataFrame
) -> ServingVersions:
    """An alternate servable version and a broken one, registered next to the champion (aliases untouched)."""
    with mlflow_store(serving_store_settings):
        alternate = register_sklearn_version(MODEL_NAME, train_frame, noise=0.6, seed=7)
        broken = register_sklearn_version(MODEL_NAME, train_frame, noise=0.0, seed=1)
        onnx = artifact_dir(MODEL_NAME, broken) / "model.onnx"
        onnx.write_bytes(b"this is not an ONNX graph")
    return ServingVersions(alternate=alternate, broken=broken)


@pytest.fixture
def store_copy(champion_store: StoreRef, serving_versions: ServingVersions, tmp_path: Path) -> StoreRef:
    """A copy of the shared store (champion, alternate and broken versions) that a test may change."""
    return copy_store(champion_store, tmp_path / "store")


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Start in-process apps (TestClient, lifespan run); all are closed at the end of the test."""
    from fastapi.testclient import TestClient

    from serving.app import create_app

    clients: list[Any] = []

    def start(tracking_uri: str, state_dir: Path | None = None, **overrides: Any) -> Any:
        settings = serving_settings(state_dir or tmp_path / "state", tracking_uri, **overrides)
        client = TestClient(create_app(settings), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield start
    for client in reversed(clients):
        client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def served(champion_store: StoreRef, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One in-process app serving the shared champion, for read-only tests of a module."""
    from fastapi.testclient import TestClient

    from serving.app import create_app

    settings = serving_settings(tmp_path_factory.mktemp("served"), champion_store.tracking_uri)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="session")
def test_rows(raw_test_csv: Path) -> list[dict[str, Any]]:
    """Kaggle's test.csv as JSON-ready passengers (NaN -> None, integer columns as int)."""
    frame = pd.read_csv(raw_test_csv)
    rows = []
    for record in frame.to_dict(orient="records"):
        row: dict[str, Any] = {
            str(k): (None if isinstance(v, float) and v != v else v) for k, v in record.items()
        }
        for key in ("PassengerId", "Pclass", "SibSp", "Parch"):
            row[key] = int(row[key])
        rows.append(row)
    return rows
