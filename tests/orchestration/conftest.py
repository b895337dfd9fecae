"""The real stack for the orchestration tests: `lifeboat up` machinery (MLflow server, uvicorn, `airflow
standalone`) on free loopback ports, with its state in a temporary folder, started once per session.

Training is shortened for the tests (logistic regression only, 3 CV folds) through the same LIFEBOAT_*
variables a user would set; everything else is the configuration `make run` uses.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from lifeboat.orchestration.airflow_api import AirflowClient
from lifeboat.registry.artifact import CANARY_PASSENGER
from lifeboat.settings import Settings
from lifeboat.stack import embedded as stack
from lifeboat.stack import processes
from tests.conftest import REPO_ROOT
from tests.serving.serving_support import free_port
from tests.support.champion import LIFEBOAT
from tests.support.http_stub import Stub, http_stub

RETRAIN = stack.retrain_dag("titanic")
ROLLBACK = stack.rollback_dag("titanic")
#: What the tests change in the stack's environment: shorter training, quicker retries and polling.
TEST_ENV = {
    "LIFEBOAT_MODEL_FAMILIES": '["lr"]',
    "LIFEBOAT_CV_FOLDS": "3",
    "LIFEBOAT_TASK_RETRIES": "1",
    "LIFEBOAT_TASK_RETRY_DELAY_SECONDS": "2",
    "LIFEBOAT_REGISTRY_POLL_SECONDS": "2",
    "LIFEBOAT_RELOAD_WAIT_SECONDS": "30",
    "LIFEBOAT_SPARK_DRIVER_MEMORY": "1g",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
}
RUN_TIMEOUT = 900.0


@dataclass
class LiveStack:
    """The running stack: its settings, an Airflow client logged in as admin, and the service URLs."""

    settings: Settings
    client: AirflowClient
    urls: dict[str, str]
    incoming: Path
    password: str
    env: dict[str, str]
    #: The webhook receiver every alert of the stack is posted to (``LIFEBOAT_ALERT_WEBHOOK_URL``).
    alerts: Stub = field(default_factory=Stub)

    @property
    def paths(self) -> processes.StackPaths:
        """Where the stack keeps its state (pid files, logs, secrets)."""
        return processes.StackPaths.from_settings(self.settings)

    def service(self, name: str) -> processes.Service:
        """How the stack starts ``name`` (to restart it after a test stopped it)."""
        return {s.name: s for s in stack.services(self.settings, REPO_ROOT, self.paths, self.env)}[name]

    def trigger_and_wait(self, dag_id: str, conf: dict[str, Any] | None = None) -> dict[str, Any]:
        """Trigger a run with ``conf`` and wait for it to finish; return the run (with task states)."""
        run_id = self.client.trigger(dag_id, conf or {})
        run = self.client.wait_for_run(dag_id, run_id, timeout=RUN_TIMEOUT)
        run["tasks"] = {t.task_id: t.state for t in self.client.task_states(dag_id, run_id)}
        return run

    def lifeboat(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the ``lifeboat`` command as a user of this stack would (its LIFEBOAT_* environment)."""
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("LIFEBOAT_")},
            **stack.lifeboat_env(self.settings, REPO_ROOT, self.paths, stack.load_secrets(self.paths)),
        }
        return subprocess.run(
            [LIFEBOAT, *args],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def run_ids(self, dag_id: str) -> set[str]:
        """The ids of the DAG's runs so far."""
        return {r["dag_run_id"] for r in self.client.runs(dag_id, limit=100)}

    def wait_for_new_run(self, dag_id: str, before: set[str], cause: str) -> dict[str, Any]:
        """The one run started after ``before`` (within 120 s, else the test fails naming ``cause``), once
        it has finished."""
        deadline = time.monotonic() + 120
        while not (new := [r for r in self.client.runs(dag_id, limit=100) if r["dag_run_id"] not in before]):
            assert time.monotonic() < deadline, f"no run started within 120 s of {cause}"
            time.sleep(2)
        assert [r["run_type"] for r in new] == ["asset_triggered"]
        return self.client.wait_for_run(dag_id, new[0]["dag_run_id"], timeout=RUN_TIMEOUT)

    def champion(self) -> str | None:
        """The version the registry's ``champion`` alias points at (None when there is none)."""
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        try:
            # registry_uri too: without it MlflowClient reads the process-wide registry URI.
            client = MlflowClient(tracking_uri=self.urls["mlflow"], registry_uri=self.urls["mlflow"])
            version = client.get_model_version_by_alias(self.settings.model_name, "champion")
        except MlflowException:
            return None
        return str(version.version)

    def served_version(self) -> str | None:
        """The version the prediction server reports on /model (None: no model loaded)."""
        response = httpx.get(f"{self.urls['serving']}/model", timeout=10)
        return str(response.json()["model_version"]) if response.status_code == 200 else None


@pytest.fixture(scope="session")
def live_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    """Start MLflow, serving and Airflow exactly as `make run` does (other ports, temporary state)."""
    root = tmp_path_factory.mktemp("stack")
    incoming = root / "incoming"
    incoming.mkdir()
    settings = Settings(
        state_dir=root / "state",
        incoming_dir=incoming,
        raw_data=REPO_ROOT / "data" / "titanic" / "raw" / "train.csv",
        unlabelled_data=REPO_ROOT / "data" / "titanic" / "raw" / "test.csv",
        airflow_port=free_port(),
        mlflow_port=free_port(),
        serving_port=free_port(),
    )
    receiver = http_stub()
    alerts = receiver.__enter__()
    alerts.answer("POST", "/hook", 200, {"ok": True})
    env = {**TEST_ENV, "LIFEBOAT_ALERT_WEBHOOK_URL": f"{alerts.url}/hook"}
    try:
        stack.up(settings, REPO_ROOT, say=print, extra_env=env)
        client = stack.airflow_client(settings)
        for dag_id in (RETRAIN, ROLLBACK):
            client.wait_for_dag(dag_id)
            client.set_paused(dag_id, False)
        found = stack.load_secrets(processes.StackPaths.from_settings(settings))
        yield LiveStack(
            settings, client, stack.urls(settings), incoming, found["airflow_admin_password"], env, alerts
        )
    finally:
        stack.down(settings, say=print)
        receiver.__exit__(None, None, None)
    paths = processes.StackPaths.from_settings(settings)
    leftovers = [n for n in stack.SERVICES if processes.running_pid(paths, n)]
    assert not leftovers, f"still running after stack.down: {leftovers}"
    leaks = secrets_in_logs(paths)
    assert not leaks, f"secret values found in the stack's logs: {leaks}"


def secrets_in_logs(paths: processes.StackPaths) -> list[str]:
    """``<secret name> in <file>`` for every secret value that appears in a log the stack wrote."""
    values = stack.load_secrets(paths)
    logs = [*paths.logs.glob("*.log"), *(paths.airflow_home / "logs").rglob("*")]
    leaks = []
    for log in logs:
        if not log.is_file():
            continue
        text = log.read_text(errors="replace")
        leaks += [f"{name} in {log}" for name, value in values.items() if value in text]
    return leaks


@pytest.fixture(scope="session")
def first_run(live_stack: LiveStack) -> dict[str, Any]:
    """The first retraining run on the fresh stack (no champion yet: it trains and promotes).

    The champion and the served version right after it are kept in the run (``champion``, ``served``), so
    tests that look at the first run do not depend on what other tests promoted since.
    """
    assert live_stack.champion() is None
    run = live_stack.trigger_and_wait(RETRAIN)
    assert run["state"] == "success", run
    run["champion"] = live_stack.champion()
    run["served"] = live_stack.served_version()
    run["prediction"] = httpx.post(
        f"{live_stack.urls['serving']}/predict", json=CANARY_PASSENGER, timeout=10
    ).json()
    return run


@pytest.fixture(scope="session")
def promoted_with_server_down(live_stack: LiveStack, first_run: dict[str, Any]) -> dict[str, Any]:
    """A run that promotes a second version while the prediction server is down, then the server restarted.

    The run (``run``), the champion before it (``before``), the promote task's XCom (``promoted``) and the
    version the restarted server serves (``served``). One training run shared by two tests: the fault test
    (the promotion stands although reload_serving failed) and the rollback test (which rolls it back).
    """
    before = live_stack.champion()
    assert processes.stop(live_stack.paths, "serving", timeout=20)
    try:
        conf = {"retrain_without_changes": True, "required_improvement": -1.0}
        run = live_stack.trigger_and_wait(RETRAIN, conf)
        promoted = live_stack.client.xcom(RETRAIN, run["dag_run_id"], "promote")
        tries = {t.task_id: t.try_number for t in live_stack.client.task_states(RETRAIN, run["dag_run_id"])}
        champion_while_down = live_stack.champion()
    finally:
        processes.ensure_running(live_stack.service("serving"), live_stack.paths, print)
    return {
        "run": run,
        "before": before,
        "promoted": promoted,
        "tries": tries,
        "champion_while_down": champion_while_down,
        "served": live_stack.served_version(),
    }
