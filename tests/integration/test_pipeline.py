"""One retraining run without Airflow, through the `lifeboat` command, as `make train` runs it.

Real spark-submit, real MLflow (SQLite), real gate. The runs share one state folder, in order: the first run
(the session's shared training run, tests/support/champion.py, of which this module works on a copy)
promotes a champion; a second run on the same data is rejected by the gate (equal is not better) and leaves
the champion alone (and, as a dry run, could not have promoted anyway); a corrupt batch fails before anything
is registered; thresholds come from settings; rollback restores the previous champion. The tests run in order
and build on each other's state.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.support.champion import TrainedState, clone_state, lifeboat_env, run_lifeboat

pytestmark = [pytest.mark.integration, pytest.mark.spark]


@pytest.fixture(scope="module")
def state(trained_champion: TrainedState, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of the runs: a private copy of the session's first run, a private incoming folder."""
    root = tmp_path_factory.mktemp("pipeline")
    (root / "incoming").mkdir()
    assert trained_champion.returncode == 0, trained_champion.stdout[-3000:] + trained_champion.stderr[-3000:]
    clone_state(trained_champion.state_dir, root / "state")
    return lifeboat_env(root / "state", root / "incoming")


def lifeboat(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_lifeboat(env, *args)


def aliases(env: dict[str, str]) -> dict[str, str | None]:
    result = lifeboat(env, "models")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    return {
        alias: (summary.get(alias) or {}).get("version")
        for alias in ("champion", "previous_champion", "challenger")
    }


def versions(env: dict[str, str]) -> list[str]:
    from mlflow import MlflowClient

    uri = f"sqlite:///{Path(env['LIFEBOAT_STATE_DIR']) / 'mlflow.db'}"
    found = MlflowClient(uri, uri).search_model_versions(f"name='{env['LIFEBOAT_MODEL_NAME']}'")
    return sorted(str(v.version) for v in found)


def first_run(env: dict[str, str]) -> Path:
    return sorted((Path(env["LIFEBOAT_STATE_DIR"]) / "titanic" / "runs").iterdir())[0]


def gate_of(env: dict[str, str], run: str) -> dict[str, object]:
    return json.loads((Path(env["LIFEBOAT_STATE_DIR"]) / "titanic" / "runs" / run / "gate.json").read_text())


def test_first_run_promotes_a_champion(trained_champion: TrainedState, state: dict[str, str]) -> None:
    """The session's first run (tests/support/champion.py) promoted version 1; this module's copy shows it."""
    assert "version 1 PROMOTED" in trained_champion.stdout
    assert aliases(state)["champion"] == "1"
    assert versions(state) == ["1"]
    gate = gate_of(state, first_run(state).name)
    assert gate["passed"] is True
    assert gate["promoted"] is True


def test_corrupt_batch_fails_before_anything_is_registered(state: dict[str, str]) -> None:
    before = versions(state)
    runs_before = set((Path(state["LIFEBOAT_STATE_DIR"]) / "titanic" / "runs").iterdir())
    bad = Path(state["LIFEBOAT_INCOMING_DIR"]) / "batch-bad.csv"
    train = (REPO_ROOT / "data" / "titanic" / "raw" / "train.csv").read_text().splitlines()
    rows = [line.replace(",male,", ",robot,", 1) if i == 1 else line for i, line in enumerate(train[:10])]
    bad.write_text("\n".join(rows) + "\n")
    try:
        result = lifeboat(state, "train", "--families", "lr")
    finally:
        bad.unlink()
    assert result.returncode == 2, result.stderr
    assert "batch-bad.csv" in result.stderr
    assert "row 1, column 'Sex'" in result.stderr
    assert versions(state) == before
    assert aliases(state)["champion"] == "1"
    new_runs = set((Path(state["LIFEBOAT_STATE_DIR"]) / "titanic" / "runs").iterdir()) - runs_before
    for run in new_runs:
        assert not (run / "preprocess").exists(), f"half-written output left in {run}"


def test_same_data_again_is_rejected_and_dry_run_never_promotes(state: dict[str, str]) -> None:
    first = first_run(state)
    result = lifeboat(state, "train", "--run-id", first.name + "-again", "--families", "lr", "--dry-run")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "version 2 REJECTED" in result.stdout
    assert aliases(state) == {"champion": "1", "previous_champion": None, "challenger": "2"}
    gate = gate_of(state, first.name + "-again")
    assert gate["passed"] is False
    assert gate["promoted"] is False
    assert any("roc_auc" in reason and "improvement" in reason for reason in gate["reasons"])  # type: ignore[attr-defined]
    assert gate["tags"]["gate.decision"] == "reject"  # type: ignore[index]


def test_rollback_needs_a_previous_champion(state: dict[str, str]) -> None:
    result = lifeboat(state, "rollback", "--reason", "test")
    assert result.returncode == 1
    assert "previous_champion" in result.stderr
    assert aliases(state)["champion"] == "1"


def test_thresholds_come_from_settings_and_rollback_restores(state: dict[str, str]) -> None:
    runs = sorted(
        p
        for p in (Path(state["LIFEBOAT_STATE_DIR"]) / "titanic" / "runs").iterdir()
        if (p / "gate.json").exists()
    )
    second = next(r for r in runs if json.loads((r / "gate.json").read_text())["version"] == "2")
    lenient = {**state, "LIFEBOAT_GATE_MIN_IMPROVEMENT": "-1"}
    result = lifeboat(lenient, "promote", "--run-id", second.name)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "version 2 PROMOTED" in result.stdout
    assert aliases(state)["champion"] == "2"
    assert aliases(state)["previous_champion"] == "1"

    result = lifeboat(state, "rollback", "--reason", "integration test", "--actor", "pytest")
    assert result.returncode == 0, result.stderr
    assert "champion 2 -> 1" in result.stdout
    assert aliases(state)["champion"] == "1"
