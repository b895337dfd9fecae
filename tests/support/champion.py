"""One real training run per test session, shared by every folder that needs a freshly trained champion.

``lifeboat train --families lr`` is the real pipeline (spark-submit preprocess + train, the gate, the
promotion) on Kaggle's rows with 3 CV folds, into an empty state folder. It is a minute or more of CPU-bound
Spark on 2 cores, so a session runs it once (:func:`trained_champion`, a session fixture loaded for every
folder by ``pytest_plugins`` in tests/conftest.py) and never changes its folder afterwards: tests that go on
from it (more runs, more versions, alias moves) work on a copy made by :func:`clone_state`.

Users: the serving and proof champion (tests/support/serving_fixtures.py) and the command-line pipeline
(tests/integration/test_pipeline.py).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.serving.serving_support import MODEL_NAME, REPO_ROOT

#: The `lifeboat` command of the environment running the tests.
LIFEBOAT = str(Path(sys.executable).parent / "lifeboat")
#: The experiment of the shared run (the model is serving_support.MODEL_NAME).
EXPERIMENT_NAME = "serving-tests"
#: SQLite column types that hold text (where a copied store keeps absolute paths).
_TEXT_TYPES = ("CHAR", "CLOB", "TEXT")


@dataclass(frozen=True)
class TrainedState:
    """The shared run: its state folder (registry, artifacts, run folders) and what the command printed."""

    state_dir: Path
    returncode: int
    stdout: str
    stderr: str


def lifeboat_env(state_dir: Path, incoming_dir: Path, **overrides: str) -> dict[str, str]:
    """The environment of a `lifeboat` command on ``state_dir``: shortened training (lr, 3 folds, local[2]).

    No LIFEBOAT_* or MLFLOW_TRACKING_URI variable of the test process leaks in; ``overrides`` come last.
    """
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("LIFEBOAT_") and k != "MLFLOW_TRACKING_URI"
    }
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "LIFEBOAT_STATE_DIR": str(state_dir),
            "LIFEBOAT_INCOMING_DIR": str(incoming_dir),
            "LIFEBOAT_EXPERIMENT_NAME": EXPERIMENT_NAME,
            "LIFEBOAT_MODEL_NAME": MODEL_NAME,
            "LIFEBOAT_CV_FOLDS": "3",
            "LIFEBOAT_SPARK_MASTER": "local[2]",
        }
    )
    env.update(overrides)
    return env


def run_lifeboat(env: dict[str, str], *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run ``lifeboat *args`` from the repository root with ``env``; output captured as text."""
    command = [LIFEBOAT, *args]
    return subprocess.run(
        command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def clone_state(source: Path, destination: Path) -> Path:
    """Copy the state folder ``source`` to ``destination`` so that the copy stands on its own.

    MLflow's SQLite store keeps absolute paths (the experiment's artifact location, each run's and model
    version's artifact URI): every text cell naming ``source`` is rewritten to name ``destination``, so new
    runs and versions of the copy write under it and ``source`` is never touched again. Returns
    ``destination``.
    """
    source, destination = source.resolve(), destination.resolve()
    shutil.copytree(source, destination, dirs_exist_ok=True)
    old, new = str(source), str(destination)
    with sqlite3.connect(destination / "mlflow.db") as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for column in db.execute(f'PRAGMA table_info("{table}")').fetchall():
                name, kind = column[1], str(column[2]).upper()
                if any(t in kind for t in _TEXT_TYPES):
                    statement = f'UPDATE "{table}" SET "{name}" = replace("{name}", ?, ?)'
                    db.execute(f'{statement} WHERE instr("{name}", ?) > 0', (old, new, old))
    return destination


@pytest.fixture(scope="session")
def trained_champion(tmp_path_factory: pytest.TempPathFactory) -> TrainedState:
    """THE session's training run: `lifeboat train --families lr` into an empty state folder (read-only).

    The registry then holds version 1 of serving_support.MODEL_NAME with the alias ``champion`` (when the
    run succeeded: its users assert ``returncode`` and the output they expect).
    """
    root = tmp_path_factory.mktemp("trained-champion")
    (root / "incoming").mkdir()
    state_dir = root / "state"
    env = lifeboat_env(state_dir, root / "incoming")
    result = run_lifeboat(env, "train", "--families", "lr", timeout=1200)
    return TrainedState(state_dir, result.returncode, result.stdout, result.stderr)
