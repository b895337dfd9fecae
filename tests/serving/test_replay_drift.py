"""Live traffic drift: replayed passengers reach the prediction log, and the request window is judged.

A real uvicorn server logs what it scores; `lifeboat replay` sends (drifted) passengers to it; `lifeboat drift
--current requests` reads the window of logged requests and reports. The same state folder is used by the
server and the commands, exactly as on a deployment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lifeboat.monitoring.prediction_log import read_window
from tests.conftest import REPO_ROOT
from tests.serving.serving_support import LiveServer, StoreRef, copy_store, live_server, serving_settings

pytestmark = pytest.mark.integration

LIFEBOAT = str(Path(sys.executable).parent / "lifeboat")


@pytest.fixture(scope="module")
def server(champion_store: StoreRef, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    store = copy_store(champion_store, tmp_path_factory.mktemp("replay-store"))
    settings = serving_settings(tmp_path_factory.mktemp("replay-state"), store.tracking_uri)
    with live_server(settings) as live:
        yield live


def lifeboat(server: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIFEBOAT_")}
    env.update(
        {
            "LIFEBOAT_STATE_DIR": str(server.settings.state_dir),
            "LIFEBOAT_MLFLOW_TRACKING_URI": server.settings.tracking_uri,
            "LIFEBOAT_MODEL_NAME": server.settings.model_name,
            "LIFEBOAT_SERVING_URL": server.url,
        }
    )
    return subprocess.run(
        [LIFEBOAT, *args], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False
    )


def wait_for_log_rows(path: Path, rows: int, timeout: float = 30.0) -> int:
    """The prediction log is written in the background: wait until it holds ``rows`` rows."""
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        count = len(read_window(path))
        if count >= rows:
            return count
        time.sleep(0.2)
    return count


def report(server: LiveServer, name: str) -> dict[str, object]:
    return json.loads((server.settings.resolved_reports_dir / f"{name}.json").read_text())


def test_too_few_requests_is_not_enough_data(server: LiveServer) -> None:
    result = lifeboat(server, "replay", "--rows", "50", "--seed", "1")
    assert result.returncode == 0, result.stderr
    assert "replayed 50 passengers" in result.stdout
    assert wait_for_log_rows(server.settings.prediction_log_path, 50) >= 50
    result = lifeboat(server, "drift", "--current", "requests", "--name", "few")
    assert result.returncode == 0, result.stderr
    assert report(server, "few")["status"] == "not_enough_data"
    assert "not enough data" in result.stdout


def test_replayed_undrifted_traffic_is_not_flagged(server: LiveServer) -> None:
    # Traffic drawn from the training passengers themselves (labels dropped): nothing changed.
    result = lifeboat(
        server, "replay", "--input", "data/titanic/raw/train.csv", "--rows", "450", "--seed", "2"
    )
    assert result.returncode == 0, result.stderr
    assert wait_for_log_rows(server.settings.prediction_log_path, 500) >= 500
    result = lifeboat(server, "drift", "--current", "requests", "--last-n", "450", "--name", "calm")
    assert result.returncode == 0, result.stderr
    summary = report(server, "calm")
    assert summary["status"] == "no_drift", summary["drifted_columns"]
    assert summary["current_rows"] == 450


def test_replayed_drifted_traffic_is_flagged(server: LiveServer) -> None:
    result = lifeboat(server, "replay", "--rows", "450", "--seed", "3", "--drift", "Age+15,Fare*3")
    assert result.returncode == 0, result.stderr
    assert wait_for_log_rows(server.settings.prediction_log_path, 950) >= 950
    result = lifeboat(server, "drift", "--current", "requests", "--last-n", "450", "--name", "stormy")
    assert result.returncode == 0, result.stderr
    summary = report(server, "stormy")
    assert summary["status"] == "drift"
    assert {"Age", "Fare"} <= set(summary["drifted_columns"])  # type: ignore[arg-type]
    assert "DRIFT" in result.stdout
    html = Path(str(summary["html_path"]))
    assert html.stat().st_size > 100_000


def test_replay_to_a_dead_server_fails(server: LiveServer) -> None:
    result = lifeboat(server, "replay", "--rows", "5", "--url", "http://127.0.0.1:9")
    assert result.returncode == 1
    assert "error" in result.stderr
