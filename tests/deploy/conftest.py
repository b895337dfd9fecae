"""Fixtures of the deployment tests: the compose file, a filled ``.env``, and the stack on the host.

``compose_env`` is ``.env.example`` with fresh secrets from ``docker/new-env.sh`` and database names unique
to this test session. ``host_databases`` runs ``docker/postgres/init-databases.sh`` against the PostgreSQL
of LIFEBOAT_TEST_POSTGRES_URL with that env and drops the databases and roles at the end; ``host_stack``
starts compose services as host processes (tests/deploy/host_stack.py) and stops them all at the end;
``mlflow_url`` is the MLflow service on it. Later host tests (the full DAG run) take these fixtures and
start more services on the same stack (``host_stack.start("airflow-scheduler")``, ...).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.deploy.compose import ComposeProject, load_project, read_env_file
from tests.deploy.host_stack import HostStack

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
NEW_ENV_SCRIPT = REPO_ROOT / "docker" / "new-env.sh"
INIT_DATABASES_SCRIPT = REPO_ROOT / "docker" / "postgres" / "init-databases.sh"
AIRFLOW_DOCKERFILE = REPO_ROOT / "Dockerfile.airflow"
SERVING_DOCKERFILE = REPO_ROOT / "Dockerfile.serving"


def generate_env(directory: Path) -> Path:
    """Copy .env.example to ``directory/.env`` and fill its secrets with docker/new-env.sh."""
    target = directory / ".env"
    target.write_text(ENV_EXAMPLE.read_text())
    subprocess.run(["bash", str(NEW_ENV_SCRIPT), str(target)], check=True, capture_output=True, timeout=60)
    return target


@pytest.fixture(scope="session")
def session_id() -> str:
    """A short id unique to this test session (database and role names)."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def compose_env(tmp_path_factory: pytest.TempPathFactory, session_id: str) -> dict[str, str]:
    """A complete .env for docker-compose.yml: fresh secrets, and database names unique to this session."""
    env = read_env_file(generate_env(tmp_path_factory.mktemp("compose-env")))
    for system in ("airflow", "mlflow"):
        env[f"{system.upper()}_DB_NAME"] = f"lbdeploy_{session_id}_{system}"
        env[f"{system.upper()}_DB_USER"] = f"lbdeploy_{session_id}_{system}"
    return env


@pytest.fixture(scope="session")
def compose_project(compose_env: dict[str, str]) -> ComposeProject:
    """docker-compose.yml interpolated with ``compose_env``."""
    return load_project(COMPOSE_FILE, compose_env, strict=True)


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """LIFEBOAT_TEST_POSTGRES_URL (the marker logic skips the tests when it is unset)."""
    url = os.environ.get("LIFEBOAT_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("needs LIFEBOAT_TEST_POSTGRES_URL")
    return url


def run_init_databases(
    server_url: str, project: ComposeProject, overrides: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run docker/postgres/init-databases.sh on the host with the postgres service's environment."""
    parts = urlsplit(server_url)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **project.service("postgres").environment,
        "PGHOST": parts.hostname or "127.0.0.1",
        "PGPORT": str(parts.port or 5432),
        "LIFEBOAT_PG_ADMIN_USER": parts.username or "postgres",
        "LIFEBOAT_PG_ADMIN_DB": (parts.path or "/postgres").lstrip("/") or "postgres",
    }
    if parts.password:
        env["PGPASSWORD"] = parts.password
    env.update(overrides or {})
    return subprocess.run(
        ["bash", str(INIT_DATABASES_SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="session")
def host_databases(
    postgres_server_url: str, compose_project: ComposeProject, compose_env: dict[str, str]
) -> Iterator[dict[str, str]]:
    """The Airflow and MLflow databases created by the init script; dropped (with their roles) at the end."""
    import psycopg2
    from psycopg2 import sql

    done = run_init_databases(postgres_server_url, compose_project)
    assert done.returncode == 0, done.stdout + done.stderr
    names = {system: compose_env[f"{system.upper()}_DB_NAME"] for system in ("airflow", "mlflow")}
    try:
        yield names
    finally:
        admin = psycopg2.connect(postgres_server_url)
        admin.autocommit = True
        try:
            with admin.cursor() as cursor:
                for system, database in names.items():
                    cursor.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
                    )
                    role = compose_env[f"{system.upper()}_DB_USER"]
                    cursor.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
                cursor.execute(
                    "SELECT count(*) FROM pg_database WHERE datname = ANY(%s)", (list(names.values()),)
                )
                left_databases = cursor.fetchone()[0]
                roles = [compose_env[f"{system.upper()}_DB_USER"] for system in names]
                cursor.execute("SELECT count(*) FROM pg_roles WHERE rolname = ANY(%s)", (roles,))
                left_roles = cursor.fetchone()[0]
        finally:
            admin.close()
    assert (left_databases, left_roles) == (0, 0), f"not dropped: {names}, roles {roles}"


@pytest.fixture(scope="session")
def host_stack(
    host_databases: dict[str, str],
    compose_project: ComposeProject,
    postgres_server_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[HostStack]:
    """The compose services as host processes on loopback; every process started is stopped at the end."""
    stack = HostStack(
        project=compose_project,
        repo_root=REPO_ROOT,
        root=tmp_path_factory.mktemp("host-stack"),
        venv_bin=Path(sys.executable).parent,
        postgres_port=urlsplit(postgres_server_url).port or 5432,
    )
    try:
        yield stack
    finally:
        stack.stop_all()
    leftovers = stack.leftovers()
    assert not leftovers, f"processes the host stack started are still running: {leftovers}"


@pytest.fixture(scope="session")
def mlflow_url(host_stack: HostStack) -> str:
    """The compose ``mlflow`` service on the host (after ``mlflow-migrate``), healthy; its base URL."""
    migrate = host_stack.run("mlflow-migrate", timeout=300)
    assert migrate.returncode == 0, migrate.stdout[-3000:]
    host_stack.start("mlflow")
    host_stack.wait_healthy("mlflow", timeout=240)
    return f"http://127.0.0.1:{host_stack.port(5000)}"
