"""Bad days on the real stack: the prediction server is down when the DAG reloads it, a Spark job is killed
mid-run, two runs are triggered at once. Each ends with the champion unchanged unless the run legitimately
promoted, nothing half-written used, and the server answering."""

from __future__ import annotations

import contextlib
import time
from datetime import datetime
from typing import Any

import httpx
import psutil
import pytest

from lifeboat.orchestration.retrain import folder_name
from lifeboat.registry.artifact import CANARY_PASSENGER
from tests.orchestration.conftest import RETRAIN, RUN_TIMEOUT, LiveStack

pytestmark = pytest.mark.integration


def answers_predictions(live: LiveStack) -> str:
    response = httpx.post(f"{live.urls['serving']}/predict", json=CANARY_PASSENGER, timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["model_version"])


def test_two_runs_triggered_at_once_run_one_after_the_other(
    live_stack: LiveStack, first_run: dict[str, Any]
) -> None:
    client = live_stack.client
    first = client.trigger(RETRAIN, {})
    second = client.trigger(RETRAIN, {})
    states = [client.run(RETRAIN, run_id)["state"] for run_id in (first, second)]
    assert states != ["running", "running"], states
    runs = [client.wait_for_run(RETRAIN, run_id, timeout=RUN_TIMEOUT) for run_id in (first, second)]
    assert [r["state"] for r in runs] == ["success", "success"]
    ended = datetime.fromisoformat(runs[0]["end_date"])
    started = datetime.fromisoformat(runs[1]["start_date"])
    assert ended <= started, "max_active_runs=1: the second run must start after the first ended"


def test_server_down_during_reload_serving_keeps_the_promotion_and_the_server_picks_it_up(
    live_stack: LiveStack, promoted_with_server_down: dict[str, Any]
) -> None:
    down = promoted_with_server_down
    run = down["run"]
    assert run["state"] == "failed"
    assert run["tasks"]["promote"] == "success"
    assert run["tasks"]["reload_serving"] == "failed"
    assert down["tries"]["reload_serving"] == 2  # LIFEBOAT_TASK_RETRIES=1: retried once, then failed
    promoted = down["promoted"]
    assert promoted["version"] != down["before"]
    assert down["champion_while_down"] == promoted["version"]  # the promotion stands
    assert down["served"] == promoted["version"]  # picked up at start
    assert answers_predictions(live_stack) == live_stack.served_version()


def spark_jvms(job: str, folder: str) -> list[psutil.Process]:
    """The spark-submit JVMs running ``job`` for the run folder ``folder``.

    Only the JVM whose main class is SparkSubmit: spark-class first runs a short-lived launcher JVM with the
    same arguments, which must not be mistaken for the job.
    """
    found = []
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info.get("cmdline") or [])
        if "org.apache.spark.deploy.SparkSubmit" in command and job in command and folder in command:
            found.append(process)
    return found


def test_a_killed_spark_job_fails_the_run_and_leaves_nothing_behind(
    live_stack: LiveStack, first_run: dict[str, Any]
) -> None:
    before = live_stack.champion()
    served = live_stack.served_version()
    client = live_stack.client
    run_id = client.trigger(RETRAIN, {"retrain_without_changes": True, "required_improvement": -1.0})
    folder = folder_name(run_id)
    killed: set[int] = set()
    deadline = time.monotonic() + RUN_TIMEOUT
    while client.run(RETRAIN, run_id)["state"] not in ("success", "failed"):
        for process in spark_jvms("preprocess.py", folder):
            if process.pid not in killed:
                time.sleep(3)  # let the job get going: kill it mid-run, not at launch
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.kill()
                    killed.add(process.pid)
        assert time.monotonic() < deadline, "the run did not finish"
        time.sleep(0.5)
    run = client.run(RETRAIN, run_id)
    tasks = {t.task_id: t for t in client.task_states(RETRAIN, run_id)}
    assert len(killed) == 2, killed  # the first try and its retry
    assert run["state"] == "failed"
    assert tasks["preprocess"].state == "failed"
    assert tasks["train"].state == "upstream_failed"
    run_dir = live_stack.settings.runs_dir / folder
    assert not (run_dir / "preprocess").exists(), "a killed job left a visible (partial) output folder"
    assert live_stack.champion() == before
    assert live_stack.served_version() == served
    assert answers_predictions(live_stack) == served
