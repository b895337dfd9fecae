"""The compose services' own commands and environment, run as host processes against a real PostgreSQL.

Needs LIFEBOAT_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1:5432/postgres). The session's
databases and roles (unique names) are created by docker/postgres/init-databases.sh and dropped at the end;
every process started is stopped by its pid (tests/deploy/conftest.py, host_stack.py). Ports are free ports
on 127.0.0.1, never the defaults.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pandas as pd
import psycopg2
import pytest

from lifeboat.registry.promotion import promote_if_better
from lifeboat.registry.store import CHAMPION, load_serving_model, version_by_alias
from lifeboat.settings import Settings
from tests.deploy.compose import ComposeProject
from tests.deploy.conftest import run_init_databases
from tests.deploy.host_stack import HostStack
from tests.support.models import mlflow_store, register_sklearn_version, split_by_passenger_id

pytestmark = [pytest.mark.integration, pytest.mark.postgres]
logger = logging.getLogger(__name__)

SPARK_APP = """\
import sys
from pyspark.sql import SparkSession

output = sys.argv[1]
spark = SparkSession.builder.appName("lifeboat-deploy-check").getOrCreate()
try:
    frame = spark.range(0, 1000, numPartitions=4).selectExpr("id", "id % 7 AS bucket")
    frame.write.mode("overwrite").parquet(output)  # written by the executors on the worker
    total = spark.read.parquet(output).groupBy().sum("id").collect()[0][0]
    print(f"MASTER={spark.sparkContext.master} TOTAL={total}")
finally:
    spark.stop()
"""


def connect(compose_env: dict[str, str], server_url: str, system: str) -> psycopg2.extensions.connection:
    """Connect as the role the compose file gives ``system`` (airflow or mlflow), with its password."""
    parts = urlsplit(server_url)
    prefix = system.upper()
    return psycopg2.connect(
        host=parts.hostname,
        port=parts.port or 5432,
        user=compose_env[f"{prefix}_DB_USER"],
        password=compose_env[f"{prefix}_DB_PASSWORD"],
        dbname=compose_env[f"{prefix}_DB_NAME"],
    )


def test_init_script_creates_owned_databases_and_is_idempotent(
    host_databases: dict[str, str],
    compose_project: ComposeProject,
    compose_env: dict[str, str],
    postgres_server_url: str,
) -> None:
    again = run_init_databases(postgres_server_url, compose_project)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("is ready") == 2
    for system, database in host_databases.items():
        with connect(compose_env, postgres_server_url, system) as conn, conn.cursor() as cursor:
            cursor.execute(
                "SELECT current_user, current_database(), pg_get_userbyid(datdba) FROM pg_database "
                "WHERE datname = current_database()"
            )
            user, current, owner = cursor.fetchone()
            assert (
                (current, owner) == (database, user) == (database, compose_env[f"{system.upper()}_DB_USER"])
            )
            cursor.execute("CREATE TABLE lifeboat_probe (id int)")  # the owner may create in public
            cursor.execute("DROP TABLE lifeboat_probe")


def test_init_script_refuses_a_missing_password(
    host_databases: dict[str, str], compose_project: ComposeProject, postgres_server_url: str
) -> None:
    done = run_init_databases(postgres_server_url, compose_project, {"MLFLOW_DB_PASSWORD": ""})
    assert done.returncode != 0
    assert "MLFLOW_DB_PASSWORD must be set" in done.stderr


#: The model this module registers and serves (not the project's model name: later host tests train that one).
MODEL_NAME = "deploy-host-model"


@pytest.fixture(scope="module", autouse=True)
def _stop_what_this_module_started(host_stack: HostStack) -> Iterator[None]:
    """Stop the services this module started, except the session's MLflow server (others reuse it)."""
    yield
    for name in ("serving", "airflow-apiserver", "spark-worker", "spark-master"):
        host_stack.stop(name)


@pytest.fixture(scope="module")
def champion_version(mlflow_url: str, raw_train_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A scikit-learn ONNX version registered through the MLflow service and promoted by the real gate."""
    train, holdout = split_by_passenger_id(pd.read_csv(raw_train_csv))
    state = tmp_path_factory.mktemp("deploy-registry")
    settings = Settings(state_dir=state, mlflow_tracking_uri=mlflow_url, experiment_name="deploy-host")
    with mlflow_store(settings):
        version = register_sklearn_version(MODEL_NAME, train, parity_rows=holdout)
        decision = promote_if_better(MODEL_NAME, version, holdout, settings)
    assert decision.passed, decision.reasons
    return version


@pytest.mark.timeout(900)
def test_mlflow_service_on_postgres_round_trips_a_registered_model(
    host_stack: HostStack,
    mlflow_url: str,
    champion_version: str,
    compose_env: dict[str, str],
    postgres_server_url: str,
    tmp_path: Path,
) -> None:
    # --allowed-hosts: the service name that Airflow tasks and the server use is accepted, others are not.
    for host, expected in (("mlflow:5000", 200), ("evil.example.org", 403)):
        answer = httpx.get(
            f"{mlflow_url}/api/2.0/mlflow/experiments/search?max_results=1", headers={"Host": host}
        )
        assert answer.status_code == expected, (host, answer.text[:200])

    settings = Settings(state_dir=tmp_path, mlflow_tracking_uri=mlflow_url, experiment_name="deploy-host")
    with mlflow_store(settings):
        champion = version_by_alias(MODEL_NAME, CHAMPION)
        assert champion is not None
        assert str(champion.version) == champion_version
        assert champion.source.startswith(("mlflow-artifacts:", "models:/"))
        model = load_serving_model(MODEL_NAME, champion_version, workdir=tmp_path / "download")
        assert 0.0 <= model.check() <= 1.0

    # The registry lives in PostgreSQL, the artifacts in the (host-mapped) artifacts volume.
    with connect(compose_env, postgres_server_url, "mlflow") as conn, conn.cursor() as cursor:
        cursor.execute("SELECT alias, version FROM registered_model_aliases WHERE name = %s", (MODEL_NAME,))
        assert dict(cursor.fetchall())[CHAMPION] == int(champion_version)
    artifacts = host_stack.root / "mlflow-artifacts"
    assert list(artifacts.rglob("*.onnx")), f"no ONNX artifact under {artifacts}"


@pytest.mark.timeout(600)
def test_serving_service_serves_the_champion_from_the_mlflow_service(
    host_stack: HostStack, champion_version: str, compose_env: dict[str, str]
) -> None:
    host_stack.start("serving", extra_env={"LIFEBOAT_MODEL_NAME": MODEL_NAME})
    host_stack.wait_healthy("serving", timeout=180)
    base = f"http://127.0.0.1:{host_stack.port(8000)}"
    deadline = time.monotonic() + 120
    while (ready := httpx.get(f"{base}/ready")).status_code != 200 and time.monotonic() < deadline:
        time.sleep(1)
    assert ready.status_code == 200, ready.text
    assert ready.json()["model_version"] == champion_version

    passenger = {
        "Pclass": 1,
        "Name": "Smith, Mrs. Anna",
        "Sex": "female",
        "Age": 35,
        "SibSp": 1,
        "Parch": 0,
        "Fare": 80,
        "Embarked": "C",
    }
    answer = httpx.post(f"{base}/predict", json=passenger)
    assert answer.status_code == 200, answer.text
    assert 0.0 <= answer.json()["probability_survive"] <= 1.0
    assert answer.json()["model_version"] == champion_version

    token = compose_env["LIFEBOAT_RELOAD_TOKEN"]
    wrong = httpx.post(f"{base}/admin/reload", headers={"Authorization": f"Bearer {token[::-1]}"})
    assert wrong.status_code == 403
    reload = httpx.post(f"{base}/admin/reload", headers={"Authorization": f"Bearer {token}"}, timeout=120)
    assert reload.status_code == 200, reload.text


@pytest.mark.timeout(600)
def test_spark_cluster_from_the_compose_commands_runs_a_job(host_stack: HostStack, tmp_path: Path) -> None:
    host_stack.start("spark-master")
    host_stack.wait_healthy("spark-master", timeout=120)
    host_stack.start("spark-worker")
    host_stack.wait_healthy("spark-worker", timeout=120)
    master_ui = f"http://127.0.0.1:{host_stack.port(8090)}/json/"
    deadline = time.monotonic() + 60
    while True:
        status = httpx.get(master_ui).json()
        alive = [w for w in status["workers"] if w["state"] == "ALIVE"]
        if alive or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert len(alive) == 1, status
    assert alive[0]["cores"] == 2

    # The driver side: what an Airflow task sees (the scheduler's environment, mapped to this machine).
    scheduler = host_stack.process("airflow-scheduler")
    master = scheduler.env["LIFEBOAT_SPARK_MASTER"]
    assert master == f"spark://127.0.0.1:{host_stack.port(7077)}"
    connection = json.loads(scheduler.env["AIRFLOW_CONN_SPARK_DEFAULT"])
    assert f"{connection['host']}:{connection['port']}" == master

    app = tmp_path / "deploy_check.py"
    app.write_text(SPARK_APP)
    output = Path(scheduler.env["LIFEBOAT_STATE_DIR"]) / "deploy-check.parquet"
    env = {**scheduler.env, "PYSPARK_PYTHON": sys.executable}
    begin = time.monotonic()
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "spark-submit"),
            "--master",
            master,
            "--conf",
            "spark.executor.memory=512m",
            "--conf",
            "spark.ui.enabled=false",
            str(app),
            str(output),
        ],
        env=env,
        cwd=scheduler.cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    logger.info("spark-submit to the host cluster took %.1f s", time.monotonic() - begin)
    assert f"MASTER={master} TOTAL=499500" in done.stdout
    assert list(output.glob("part-*.parquet"))
    completed = httpx.get(master_ui).json()["completedapps"]
    assert [a["name"] for a in completed] == ["lifeboat-deploy-check"]


@pytest.mark.timeout(900)
def test_airflow_init_migrates_postgres_and_fixes_the_admin_password(
    host_stack: HostStack, compose_env: dict[str, str], postgres_server_url: str
) -> None:
    refused = host_stack.run("airflow-init", timeout=120, extra_env={"AIRFLOW_ADMIN_PASSWORD": ""})
    assert refused.returncode != 0
    assert "AIRFLOW_ADMIN_PASSWORD must be set" in refused.stdout

    done = host_stack.run("airflow-init", timeout=600)
    assert done.returncode == 0, done.stdout[-4000:]
    assert "password of the Airflow user admin written" in done.stdout

    passwords = host_stack.root / "airflow-home" / "auth" / "passwords.json"
    assert json.loads(passwords.read_text()) == {
        "admin": compose_env["AIRFLOW_ADMIN_PASSWORD"],
        "lifeboat-feedback": compose_env["AIRFLOW_FEEDBACK_PASSWORD"],
    }
    assert passwords.stat().st_mode & 0o777 == 0o600
    with connect(compose_env, postgres_server_url, "airflow") as conn, conn.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM alembic_version")
        assert cursor.fetchone() == (1,)
        cursor.execute("SELECT to_regclass('public.dag'), to_regclass('public.task_instance')")
        assert cursor.fetchone() == ("dag", "task_instance")


@pytest.mark.timeout(600)
def test_airflow_apiserver_logs_in_the_admin_with_the_password_from_env(
    host_stack: HostStack, compose_env: dict[str, str]
) -> None:
    if not (host_stack.root / "airflow-home" / "auth" / "passwords.json").exists():
        assert host_stack.run("airflow-init", timeout=600).returncode == 0
    host_stack.start("airflow-apiserver")
    host_stack.wait_healthy("airflow-apiserver", timeout=300)
    base = f"http://127.0.0.1:{host_stack.port(8080)}"
    health = httpx.get(f"{base}/api/v2/monitor/health").json()
    assert health["metadatabase"]["status"] == "healthy"

    password = compose_env["AIRFLOW_ADMIN_PASSWORD"]
    refused = httpx.post(f"{base}/auth/token", json={"username": "admin", "password": password + "x"})
    assert refused.status_code == 401
    granted = httpx.post(f"{base}/auth/token", json={"username": "admin", "password": password})
    assert granted.status_code in (200, 201), granted.text
    token = granted.json()["access_token"]
    dags = httpx.get(f"{base}/api/v2/dags", headers={"Authorization": f"Bearer {token}"})
    assert dags.status_code == 200, dags.text
