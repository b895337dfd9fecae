"""A full ``titanic_retrain`` run on the production shape: the compose services' own commands on the host.

The session's PostgreSQL databases (created by docker/postgres/init-databases.sh) hold the Airflow metadata
and the MLflow registry; the Spark jobs go to a Spark standalone master + 1 worker on loopback through the
``spark_default`` connection of the compose file; the Airflow api-server, scheduler, dag-processor and
triggerer run with LocalExecutor and the compose file's secrets; the prediction server is the compose
``serving`` service. Only what a test must change is added to the services' environment (``AIRFLOW_TEST_ENV``:
shorter training, quicker DAG parsing). The run is driven through REST API v2 like a user would, then every
layer is asked what happened: Airflow's tasks, its PostgreSQL rows, the MLflow registry's rows, the Spark
master, the prediction server. A second run proves that the DAG's drift check reads the requests the
server logged (the server and the Airflow services share the compose file's state volume).

At the end every process this module started is stopped by its pid and none is left, and no secret of the
compose env appears in any log the processes wrote. Needs LIFEBOAT_TEST_POSTGRES_URL (marker ``postgres``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from lifeboat.monitoring.prediction_log import read_window
from lifeboat.orchestration.airflow_api import AirflowClient, TaskState
from lifeboat.registry.artifact import CANARY_PASSENGER
from lifeboat.settings import Settings
from tests.deploy.host_stack import HostStack
from tests.deploy.test_compose_on_host import connect

pytestmark = [pytest.mark.integration, pytest.mark.postgres]
logger = logging.getLogger(__name__)

RETRAIN = "titanic_retrain"
#: What the test adds to the Airflow services' environment (the same LIFEBOAT_* variables a user would set).
AIRFLOW_TEST_ENV = {
    "LIFEBOAT_MODEL_FAMILIES": '["lr"]',
    "LIFEBOAT_CV_FOLDS": "3",
    "LIFEBOAT_TASK_RETRIES": "1",
    "LIFEBOAT_TASK_RETRY_DELAY_SECONDS": "5",
    "LIFEBOAT_RELOAD_WAIT_SECONDS": "180",
    "LIFEBOAT_SPARK_DRIVER_MEMORY": "1g",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
    # A task's first call to the execution API (5 s by default) timed out on this shared 2-core machine
    # while the api-server was busy (load ~20): the task then failed before it started and was retried.
    "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
}
#: The serving workers poll the champion alias more often than the default 30 s (reload converges sooner).
SERVING_TEST_ENV = {"LIFEBOAT_REGISTRY_POLL_SECONDS": "5"}
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
#: The services this module starts, in start order (MLflow belongs to the session: other modules use it).
MODULE_SERVICES = ("spark-master", "spark-worker", "serving", *AIRFLOW_SERVICES)
#: The compose env's secrets: none may appear in a log.
SECRETS = (
    "POSTGRES_PASSWORD",
    "AIRFLOW_DB_PASSWORD",
    "MLFLOW_DB_PASSWORD",
    "AIRFLOW_JWT_SECRET",
    "AIRFLOW_API_SECRET_KEY",
    "AIRFLOW_FERNET_KEY",
    "AIRFLOW_ADMIN_PASSWORD",
    "AIRFLOW_FEEDBACK_PASSWORD",
    "LIFEBOAT_RELOAD_TOKEN",
    "LIFEBOAT_FEEDBACK_TOKEN",
)
RUN_TIMEOUT = 2400.0
#: Every task of a run that trains and promotes: all succeed except the branch not taken.
EXPECTED_STATES = {
    "pull_data": "success",
    "validate_data": "success",
    "drift_report": "success",
    "monitor_performance": "success",
    "decide_training": "success",
    "plan_spark_jobs": "success",
    "preprocess": "success",
    "train": "success",
    "evaluate_gate": "success",
    "promotion_branch": "success",
    "promote": "success",
    "no_promotion": "skipped",
    "reload_serving": "success",
}


@dataclass
class ProductionStack:
    """The services of this module on the host: URLs, the scheduler's environment, a logged-in client."""

    host: HostStack
    client: AirflowClient
    compose_env: dict[str, str]
    urls: dict[str, str]
    settings: Settings
    figures: dict[str, Any] = field(default_factory=dict)

    def run_dag(self, conf: dict[str, Any] | None = None) -> DagRun:
        """Trigger ``titanic_retrain`` through REST API v2 and poll it to the end."""

        def show(task: TaskState) -> None:
            logger.info("%s: %s (try %d)", task.task_id, task.state, task.try_number)

        begin = time.monotonic()
        run_id = self.client.trigger(RETRAIN, conf or {}, note="compose-on-host test")
        run = self.client.wait_for_run(RETRAIN, run_id, timeout=RUN_TIMEOUT, poll=3.0, on_change=show)
        seconds = time.monotonic() - begin
        tasks = {t.task_id: t for t in self.client.task_states(RETRAIN, run_id)}
        return DagRun(run_id, run, tasks, seconds)


@dataclass
class DagRun:
    """One finished run: its id, the API's run record, its task instances and its wall time."""

    run_id: str
    run: dict[str, Any]
    tasks: dict[str, TaskState]
    seconds: float

    @property
    def states(self) -> dict[str, str | None]:
        """Task id -> final state."""
        return {task_id: task.state for task_id, task in self.tasks.items()}

    def explain(self, client: AirflowClient) -> str:
        """The run and the logs of its failed tasks (for assertion messages)."""
        parts = [f"run {self.run_id}: {self.run.get('state')}, tasks {self.states}"]
        for task in self.tasks.values():
            if task.state not in ("success", "skipped"):
                try:
                    log = client.task_log(RETRAIN, self.run_id, task.task_id, max(task.try_number, 1))
                except Exception as exc:  # the log is only an aid to the message
                    log = f"(no log: {exc})"
                parts.append(f"--- {task.task_id} ({task.state}):\n{log[-6000:]}")
        return "\n".join(parts)


def secrets_in_logs(root: Path, compose_env: dict[str, str]) -> list[str]:
    """``<secret name> in <file>`` for each secret value found in a log the host processes wrote.

    The logs: each service's output (``logs/``), Airflow's task and component logs (``airflow-home/logs``),
    the Spark worker's executor logs (``spark-worker/``) and any ``*.log`` under the state folder.
    """
    values = {name: compose_env[name] for name in SECRETS if compose_env.get(name)}
    files = [
        *(root / "logs").rglob("*"),
        *(root / "airflow-home" / "logs").rglob("*"),
        *(root / "spark-worker").rglob("std*"),
        *(root / "state").rglob("*.log"),
    ]
    leaks = []
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        leaks += [f"{name} in {path}" for name, value in values.items() if value in text]
    return leaks


def wait_for_worker(master_json: str, timeout: float) -> dict[str, Any]:
    """The Spark master's status once one worker is ALIVE (raises AssertionError after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        status: dict[str, Any] = httpx.get(master_json, timeout=10).json()
        if any(w["state"] == "ALIVE" for w in status["workers"]) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert [w["state"] for w in status["workers"]] == ["ALIVE"], status
    return status


@pytest.fixture(scope="module")
def production(
    host_stack: HostStack,
    mlflow_url: str,
    compose_env: dict[str, str],
) -> Iterator[ProductionStack]:
    """Spark master + worker, serving, airflow-init, the four Airflow services; all stopped at the end."""
    begin = time.monotonic()
    load_before = os.getloadavg()
    started: dict[str, float] = {}
    client: AirflowClient | None = None
    try:
        host_stack.start("spark-master")
        started["spark-master"] = host_stack.wait_healthy("spark-master", timeout=180)
        host_stack.start("spark-worker")
        started["spark-worker"] = host_stack.wait_healthy("spark-worker", timeout=180)
        wait_for_worker(f"http://127.0.0.1:{host_stack.port(8090)}/json/", timeout=120)

        host_stack.start("serving", extra_env=SERVING_TEST_ENV)
        started["serving"] = host_stack.wait_healthy("serving", timeout=240)

        init = host_stack.run("airflow-init", timeout=900)
        assert init.returncode == 0, init.stdout[-4000:]
        for name in AIRFLOW_SERVICES:
            host_stack.start(name, extra_env=AIRFLOW_TEST_ENV)
        for name in AIRFLOW_SERVICES:
            started[name] = host_stack.wait_healthy(name, timeout=420)

        base = f"http://127.0.0.1:{host_stack.port(8080)}"
        client = AirflowClient(base, "admin", compose_env["AIRFLOW_ADMIN_PASSWORD"], timeout=60)
        scheduler_env = host_stack.process("airflow-scheduler", AIRFLOW_TEST_ENV).env
        settings = Settings(
            state_dir=Path(scheduler_env["LIFEBOAT_STATE_DIR"]),
            mlflow_tracking_uri=scheduler_env["LIFEBOAT_MLFLOW_TRACKING_URI"],
            serving_url=scheduler_env["LIFEBOAT_SERVING_URL"],
            spark_master=scheduler_env["LIFEBOAT_SPARK_MASTER"],
        )
        urls = {
            "airflow": base,
            "mlflow": mlflow_url,
            "serving": f"http://127.0.0.1:{host_stack.port(8000)}",
            "spark": f"http://127.0.0.1:{host_stack.port(8090)}/json/",
        }
        stack = ProductionStack(host_stack, client, compose_env, urls, settings)
        stack.figures["startup_seconds"] = round(time.monotonic() - begin, 1)
        stack.figures["healthy_after_seconds"] = {k: round(v, 1) for k, v in started.items()}
        stack.figures["load_before"] = [round(x, 1) for x in load_before]
        logger.info("production stack on the host up in %.0f s: %s", time.monotonic() - begin, started)
        yield stack
        stack.figures["module_seconds"] = round(time.monotonic() - begin, 1)
        stack.figures["load_after"] = [round(x, 1) for x in os.getloadavg()]
        logger.info("figures of the compose-on-host DAG run: %s", stack.figures)
    finally:
        if client is not None:
            client.close()
        for name in reversed(MODULE_SERVICES):
            host_stack.stop(name)
    leftovers = host_stack.leftovers(MODULE_SERVICES)
    assert not leftovers, f"still running after the module stopped its services: {leftovers}"
    leaks = secrets_in_logs(host_stack.root, compose_env)
    assert not leaks, f"secret values in the logs: {leaks}"


@pytest.fixture(scope="module")
def first_run(production: ProductionStack) -> DagRun:
    """Log in, wait for the DAG, unpause it and run it once (no champion yet: it trains and promotes)."""
    client = production.client
    client.token()  # POST /auth/token with the admin password of the compose env
    dag = client.wait_for_dag(RETRAIN, timeout=600)
    assert dag["dag_id"] == RETRAIN
    client.set_paused(RETRAIN, False)
    dag = client.dag(RETRAIN)
    assert dag is not None
    assert dag["is_paused"] is False
    run = production.run_dag()
    production.figures["first_run_seconds"] = round(run.seconds, 1)
    production.figures["first_run_tasks_seconds"] = {
        t.task_id: round(t.duration, 1) for t in run.tasks.values() if t.duration is not None
    }
    logger.info("first run %s: %s in %.0f s", run.run_id, run.run.get("state"), run.seconds)
    return run


@pytest.mark.timeout(3600)
def test_the_login_needs_the_admin_password_of_the_compose_env(
    production: ProductionStack, compose_env: dict[str, str]
) -> None:
    base = production.urls["airflow"]
    password = compose_env["AIRFLOW_ADMIN_PASSWORD"]
    refused = httpx.post(f"{base}/auth/token", json={"username": "admin", "password": password[::-1]})
    assert refused.status_code == 401
    granted = httpx.post(f"{base}/auth/token", json={"username": "admin", "password": password})
    assert granted.status_code in (200, 201), granted.text
    assert granted.json()["access_token"]


@pytest.mark.timeout(3600)
def test_the_retraining_run_succeeds_task_by_task(production: ProductionStack, first_run: DagRun) -> None:
    assert first_run.run["state"] == "success", first_run.explain(production.client)
    assert first_run.states == EXPECTED_STATES, first_run.explain(production.client)


@pytest.mark.timeout(600)
def test_the_champion_is_the_runs_version_in_the_postgres_registry_and_is_served(
    production: ProductionStack, first_run: DagRun, compose_env: dict[str, str], postgres_server_url: str
) -> None:
    from mlflow import MlflowClient

    client = production.client
    promoted = client.xcom(RETRAIN, first_run.run_id, "promote")
    reloaded = client.xcom(RETRAIN, first_run.run_id, "reload_serving")
    version = str(promoted["version"])
    assert promoted["promoted"] is True
    assert promoted["demoted_version"] is None  # the first champion
    assert str(reloaded["served_version"]) == version

    registry = MlflowClient(tracking_uri=production.urls["mlflow"], registry_uri=production.urls["mlflow"])
    name = production.settings.model_name
    assert str(registry.get_model_version_by_alias(name, "champion").version) == version
    with connect(compose_env, postgres_server_url, "mlflow") as conn, conn.cursor() as cursor:
        cursor.execute("SELECT alias, version FROM registered_model_aliases WHERE name = %s", (name,))
        aliases = dict(cursor.fetchall())
    assert aliases["champion"] == int(version)
    assert "challenger" not in aliases or aliases["challenger"] == int(version)

    serving = production.urls["serving"]
    model = httpx.get(f"{serving}/model", timeout=30)
    assert model.status_code == 200, model.text
    assert str(model.json()["model_version"]) == version
    answer = httpx.post(f"{serving}/predict", json=CANARY_PASSENGER, timeout=30)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert str(body["model_version"]) == version
    assert body["survived"] in (0, 1)
    assert 0.0 <= body["probability_survive"] <= 1.0


@pytest.mark.timeout(600)
def test_the_spark_jobs_ran_on_the_standalone_cluster(production: ProductionStack, first_run: DagRun) -> None:
    from mlflow import MlflowClient

    status = httpx.get(production.urls["spark"], timeout=30).json()
    completed = {app["name"]: app for app in status["completedapps"]}
    assert {"lifeboat-preprocess", "lifeboat-train"} <= set(completed), status["completedapps"]
    for name in ("lifeboat-preprocess", "lifeboat-train"):
        assert completed[name]["state"] == "FINISHED", completed[name]
    assert status["activeapps"] == []

    # SparkSubmitOperator's connection (the compose env's, mapped) names the master on loopback, and the
    # training run in MLflow was made by a driver connected to that master, not local[*].
    master = production.settings.spark_master
    assert master == f"spark://127.0.0.1:{production.host.port(7077)}"
    connection = json.loads(production.host.process("airflow-scheduler").env["AIRFLOW_CONN_SPARK_DEFAULT"])
    assert f"{connection['host']}:{connection['port']}" == master
    plan = production.client.xcom(RETRAIN, first_run.run_id, "plan_spark_jobs")
    run_dir = Path(plan["run_dir"])
    assert run_dir.is_relative_to(production.settings.state_dir.resolve())
    version = str(production.client.xcom(RETRAIN, first_run.run_id, "promote")["version"])
    registry = MlflowClient(tracking_uri=production.urls["mlflow"], registry_uri=production.urls["mlflow"])
    model_version = registry.get_model_version(production.settings.model_name, version)
    assert model_version.run_id is not None
    tags = registry.get_run(model_version.run_id).data.tags
    assert tags["spark_master"] == master
    # The executors on the worker wrote the run's feature table into the shared state folder.
    assert list((run_dir / "preprocess").rglob("part-*.parquet"))
    executor_logs = list((production.host.root / "spark-worker").rglob("stderr"))
    assert executor_logs, "the Spark worker launched no executor"


@pytest.mark.timeout(600)
def test_the_airflow_metadata_is_in_postgres(
    production: ProductionStack, first_run: DagRun, compose_env: dict[str, str], postgres_server_url: str
) -> None:
    with connect(compose_env, postgres_server_url, "airflow") as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT state, run_type FROM dag_run WHERE dag_id = %s AND run_id = %s",
            (RETRAIN, first_run.run_id),
        )
        assert cursor.fetchall() == [("success", "manual")]
        cursor.execute(
            "SELECT task_id, state FROM task_instance WHERE dag_id = %s AND run_id = %s",
            (RETRAIN, first_run.run_id),
        )
        assert dict(cursor.fetchall()) == EXPECTED_STATES
        cursor.execute("SELECT is_paused FROM dag WHERE dag_id = %s", (RETRAIN,))
        assert cursor.fetchone() == (False,)
        # airflow-init created each dataset's registry pool; the promote task ran in it
        cursor.execute("SELECT pool, slots FROM slot_pool WHERE pool LIKE 'lifeboat_%%' ORDER BY pool")
        assert cursor.fetchall() == [("lifeboat_adult_registry", 1), ("lifeboat_titanic_registry", 1)]
        cursor.execute(
            "SELECT pool FROM task_instance WHERE dag_id = %s AND run_id = %s AND task_id = 'promote'",
            (RETRAIN, first_run.run_id),
        )
        assert cursor.fetchall() == [("lifeboat_titanic_registry",)]


@pytest.mark.timeout(3600)
def test_the_drift_check_reads_the_requests_the_server_logged(
    production: ProductionStack, first_run: DagRun, raw_test_csv: Path
) -> None:
    """The server logs into the shared state volume; the next run's drift report compares those requests."""
    assert first_run.run["state"] == "success", first_run.explain(production.client)
    log_path = production.settings.prediction_log_path
    before = len(read_window(log_path))
    answer = httpx.post(
        f"{production.urls['serving']}/predict/batch",
        content=raw_test_csv.read_bytes(),
        headers={"Content-Type": "text/csv"},
        timeout=120,
    )
    assert answer.status_code == 200, answer.text[:500]
    sent = len(answer.json()["predictions"])
    assert sent == 418
    deadline = time.monotonic() + 120
    while len(read_window(log_path)) < before + sent and time.monotonic() < deadline:
        time.sleep(1)  # the log's writer thread commits in the background
    logged = len(read_window(log_path))
    assert logged >= before + sent, f"{logged} rows in {log_path}"

    second = production.run_dag()
    production.figures["second_run_seconds"] = round(second.seconds, 1)
    assert second.run["state"] == "success", second.explain(production.client)
    drift = production.client.xcom(RETRAIN, second.run_id, "drift_report")
    logger.info("second run %s: drift report %s", second.run_id, drift)
    assert drift["status"] in ("drift", "no_drift"), drift
    assert drift["current_rows"] >= sent
    assert drift["current_source"].startswith("requests:")
    assert str(log_path) in drift["current_source"]
    pulled = production.client.xcom(RETRAIN, second.run_id, "pull_data")
    assert pulled["new_data"] is False  # the same data as the champion's: only the requests are new
