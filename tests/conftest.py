"""Fixtures shared by every test folder: isolated state, the Spark session, a throwaway MLflow store.

Every Spark driver JVM the tests start (the shared session, `lifeboat train`, the embedded stack's DAG tasks)
gets :data:`QUICK_JVM` through SPARK_SUBMIT_OPTS: the JIT stops at its first tier and one GC thread runs.
Spark at this data size is mostly JVM warm-up, and on 2 cores that cuts a training run's CPU by about a third
(docs/benchmarks.md); the jobs, their plans and their results are the same. The production-shape stack of
tests/deploy passes its own environment and keeps the JVM defaults.

Markers whose service is absent are skipped only when the variable that asks for them is unset
(.ci/run sets them all): ``postgres`` needs LIFEBOAT_TEST_POSTGRES_URL, ``browser`` needs
LIFEBOAT_TEST_CHROMIUM (path of the Chromium binary).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mlflow_state import mlflow_uris_restored

# The session's one training run (tests/support/champion.py), and the serving fixtures built on it (champion
# store, store copies, in-process apps) of tests/serving and tests/proof.
pytest_plugins = ["tests.support.champion", "tests.support.serving_fixtures"]

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "data" / "titanic" / "raw"

_REQUIRED_ENV = {
    "postgres": "LIFEBOAT_TEST_POSTGRES_URL",
    "browser": "LIFEBOAT_TEST_CHROMIUM",
}


#: Test folders that start long-lived services in session fixtures run last, so those services do not slow
#: the rest of the suite down (session fixtures are torn down only at the end of the session).
RUN_LAST = ("orchestration",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip service-marked tests (with the reason) when their variable is unset; run RUN_LAST last."""
    tests_dir = Path(__file__).resolve().parent
    items.sort(
        key=lambda item: (
            item.path.resolve().relative_to(tests_dir).parts[0] in RUN_LAST
            if item.path.resolve().is_relative_to(tests_dir)
            else False
        )
    )
    for item in items:
        for marker, variable in _REQUIRED_ENV.items():
            if marker in item.keywords and not os.environ.get(variable):
                item.add_marker(pytest.mark.skip(reason=f"{marker} tests need {variable} to be set"))


@pytest.fixture(scope="session", autouse=True)
def _isolated_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point lifeboat's state folder and MLflow at a temporary place for the whole session."""
    from lifeboat.settings import get_settings

    state = tmp_path_factory.mktemp("lifeboat-state")
    saved = {k: os.environ.get(k) for k in ("LIFEBOAT_STATE_DIR", "MLFLOW_TRACKING_URI")}
    os.environ["LIFEBOAT_STATE_DIR"] = str(state)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    get_settings.cache_clear()
    yield state
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    get_settings.cache_clear()


#: JVM options for short-lived Spark drivers (spark-submit reads SPARK_SUBMIT_OPTS for the driver JVM).
#: With the JIT stopped at its first tier the JVM shrinks its code cache to the non-tiered default (48 MB),
#: which the session-long SparkSession of tests/spark filled ("Out of space in CodeCache for adapters"):
#: the tiered default size is kept.
QUICK_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:ReservedCodeCacheSize=240m"


@pytest.fixture(scope="session", autouse=True)
def _quick_jvm() -> Iterator[str]:
    """Set SPARK_SUBMIT_OPTS to :data:`QUICK_JVM` for the session (a value already set is kept)."""
    saved = os.environ.get("SPARK_SUBMIT_OPTS")
    if saved is None:
        os.environ["SPARK_SUBMIT_OPTS"] = QUICK_JVM
    yield os.environ["SPARK_SUBMIT_OPTS"]
    if saved is None:
        os.environ.pop("SPARK_SUBMIT_OPTS", None)


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Set LIFEBOAT_* variables in a test; the settings cache is cleared before and after."""
    from lifeboat.settings import get_settings

    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def raw_train_csv() -> Path:
    """Kaggle's train.csv as shipped in data/titanic/raw (891 labelled rows)."""
    return DATA_DIR / "train.csv"


@pytest.fixture(scope="session")
def raw_test_csv() -> Path:
    """Kaggle's test.csv as shipped in data/titanic/raw (418 unlabelled rows)."""
    return DATA_DIR / "test.csv"


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """One local SparkSession for every Spark test (2 threads, no UI)."""
    from lifeboat.training.spark import build_session

    # Python workers (mapInPandas, UDFs) must run this interpreter, not whatever python3 is first on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = build_session("lifeboat-tests", master="local[2]", extra_conf={"spark.ui.enabled": "false"})
    yield session
    session.stop()


@pytest.fixture
def mlflow_uri(tmp_path: Path) -> Iterator[str]:
    """A fresh MLflow store on SQLite, set as the tracking and registry URI for the test."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with mlflow_uris_restored():
        os.environ["MLFLOW_TRACKING_URI"] = uri
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        yield uri


@pytest.fixture(autouse=True)
def _mlflow_uris_restored() -> Iterator[None]:
    """Whatever a test does to MLflow's process-wide URIs is undone after it (tests/support/mlflow_state)."""
    with mlflow_uris_restored():
        yield
