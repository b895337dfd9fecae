"""Fixtures of the Spark job tests: the job modules, CSV writers, and the real data preprocessed once."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
JOBS_DIR = REPO_ROOT / "jobs"


def load_job(name: str) -> ModuleType:
    """Import ``jobs/<name>.py`` (jobs/ is a folder of spark-submit scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"lifeboat_job_{name}", JOBS_DIR / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def preprocess_job() -> ModuleType:
    """jobs/preprocess.py as a module (call its ``main(argv)``)."""
    return load_job("preprocess")


@pytest.fixture(scope="session")
def train_job() -> ModuleType:
    """jobs/train.py as a module (call its ``main(argv)``)."""
    return load_job("train")


@pytest.fixture(scope="session")
def titanic_rows(raw_train_csv: Path) -> pd.DataFrame:
    """The 891 real passengers as text cells (exactly what a CSV writer gets back)."""
    return pd.read_csv(raw_train_csv, dtype=str, keep_default_na=False)


@pytest.fixture
def write_csv() -> Callable[[Path, pd.DataFrame], Path]:
    """Write passenger rows (text cells) as a CSV the way Kaggle's files are written."""

    def write(path: Path, rows: pd.DataFrame) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        rows.to_csv(path, index=False)
        return path

    return write


@pytest.fixture(scope="session")
def titanic_preprocessed(
    spark: object, preprocess_job: ModuleType, raw_train_csv: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The real 891 rows through jobs/preprocess.py once (default holdout percent and salt)."""
    base = tmp_path_factory.mktemp("titanic")
    output = base / "preprocess"
    code = preprocess_job.main(
        ["--raw", str(raw_train_csv), "--incoming", str(base / "no-batches"), "--output", str(output)]
    )
    assert code == 0
    return output
