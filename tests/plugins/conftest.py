"""Fixtures of the Airflow UI plugin tests: a throwaway AIRFLOW_HOME for in-process Airflow imports."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path | None]:
    """Importing Airflow writes ``airflow.cfg`` into AIRFLOW_HOME: point it at a temporary folder.

    Airflow reads its configuration once per process, so this only matters when no earlier test imported it.
    """
    if "airflow" in sys.modules:
        yield None
        return
    home = tmp_path_factory.mktemp("airflow-home-ui")
    saved = {k: os.environ.get(k) for k in ("AIRFLOW_HOME", "AIRFLOW__CORE__LOAD_EXAMPLES")}
    os.environ.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    yield home
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
