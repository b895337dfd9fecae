"""The embedded stack of ``make run``: MLflow server, prediction server and ``airflow standalone``.

Three background processes on loopback, every byte of their state under the state folder
(``.lifeboat/`` by default, git-ignored)::

    .lifeboat/secrets.json   generated once (mode 0600): Airflow admin password, JWT secret, API secret key,
                             Fernet key, the prediction server's reload and feedback tokens
    .lifeboat/airflow/       AIRFLOW_HOME: SQLite metadata DB, logs, airflow.cfg
    .lifeboat/mlflow.db      MLflow tracking + registry (SQLite), artifacts in .lifeboat/mlartifacts/
    .lifeboat/pids/<name>.json, .lifeboat/logs/<name>.log   one per process

Each process is its own session (process group), so :func:`stop` ends it with everything it spawned; a pid
file records the process's start time too, so a pid reused by an unrelated process is never signalled.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lifeboat.settings import Settings
from lifeboat.stack.processes import (
    Service,
    StackError,
    StackPaths,
    answers,
    ensure_running,
    running_pid,
    stop,
)

logger = logging.getLogger(__name__)

AIRFLOW_USER = "admin"
#: The prediction server's own Airflow user: role "op", the least role that may record asset events (it
#: tells Airflow that labels came back, serving/label_events.py); it never gets the admin password.
AIRFLOW_FEEDBACK_USER = "lifeboat-feedback"
SERVICES = ("mlflow", "serving", "airflow")
SECRET_NAMES = (
    "airflow_admin_password",
    "airflow_jwt_secret",
    "airflow_api_secret_key",
    "reload_token",
    "feedback_token",
    "airflow_feedback_password",
)


def retrain_dag(dataset: str) -> str:
    """The id of the dataset's retraining DAG (``titanic_retrain``; built by lifeboat.orchestration.dags)."""
    return f"{dataset}_retrain"


def rollback_dag(dataset: str) -> str:
    """The id of the dataset's rollback DAG (``titanic_rollback``)."""
    return f"{dataset}_rollback"


def stack_datasets(settings: Settings) -> list[str]:
    """The datasets the stack trains: the default one (``settings.dataset``) first, then every known one."""
    return list(dict.fromkeys([settings.dataset, *settings.known_datasets()]))


# --- secrets ------------------------------------------------------------------------------------------


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def private_dir(path: Path) -> None:
    """Create ``path`` (the state folder: secrets, MLflow store, logs) readable by its owner only (0700),
    whatever the umask, and make an existing one private too."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def load_secrets(paths: StackPaths) -> dict[str, str]:
    """The stack's secrets, generated on first use and kept (mode 0600) in ``secrets.json``.

    A secret the file lacks is generated and added; existing ones are never replaced, so the Airflow
    password and the Fernet key stay valid across restarts.
    """
    private_dir(paths.root)
    stored: dict[str, str] = {}
    if paths.secrets_file.is_file():
        try:
            stored = json.loads(paths.secrets_file.read_text())
        except json.JSONDecodeError as exc:
            raise StackError(f"{paths.secrets_file} is not valid JSON ({exc}); fix or delete it") from exc
    wanted = {name: lambda: secrets.token_urlsafe(32) for name in SECRET_NAMES}
    wanted["airflow_fernet_key"] = _fernet_key
    missing = {name: make() for name, make in wanted.items() if not stored.get(name)}
    if missing:
        stored.update(missing)
        tmp = paths.secrets_file.with_name(".secrets.json.tmp")
        # A leftover (or planted) temp file or symlink is removed, then the file is created new: O_EXCL and
        # O_NOFOLLOW make sure the secrets never go through a link to somewhere else.
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(stored, handle, indent=2, sort_keys=True)
        os.replace(tmp, paths.secrets_file)
    os.chmod(paths.secrets_file, 0o600)
    return stored


def write_airflow_password(paths: StackPaths, password: str, feedback_password: str | None = None) -> Path:
    """Fix the passwords of Airflow's SimpleAuthManager users (it reads this file; mode 0600): the admin's
    and, when given, the prediction server's (:data:`AIRFLOW_FEEDBACK_USER`)."""
    paths.airflow_home.mkdir(parents=True, exist_ok=True)
    target = paths.airflow_home / "simple_auth_manager_passwords.json.generated"
    passwords = {AIRFLOW_USER: password}
    if feedback_password is not None:
        passwords[AIRFLOW_FEEDBACK_USER] = feedback_password
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(passwords, handle)
    return target


# --- the three services -------------------------------------------------------------------------------


def _bin(name: str) -> str:
    """An executable of this environment (``.venv/bin/<name>``)."""
    return str(Path(sys.executable).parent / name)


def urls(settings: Settings) -> dict[str, str]:
    """Where each service answers."""
    return {
        "airflow": f"http://127.0.0.1:{settings.airflow_port}",
        "mlflow": f"http://127.0.0.1:{settings.mlflow_port}",
        "serving": f"http://127.0.0.1:{settings.serving_port}",
    }


def overridden_paths(settings: Settings) -> dict[str, Path]:
    """The data paths set to something else than their dataset's default folder (by value)."""
    defaults = Settings(dataset=settings.dataset, data_root=settings.data_root)
    return {
        name: getattr(settings, name)
        for name in ("dataset_spec", "raw_data", "unlabelled_data", "incoming_dir")
        if Path(getattr(settings, name)) != Path(getattr(defaults, name))
    }


def lifeboat_env(settings: Settings, repo: Path, paths: StackPaths, found: dict[str, str]) -> dict[str, str]:
    """The ``LIFEBOAT_*`` settings every process of the stack shares (absolute paths, loopback URLs)."""
    where = urls(settings)

    def absolute(path: Path) -> str:
        return str(path if path.is_absolute() else (repo / path).resolve())

    return {
        "LIFEBOAT_STATE_DIR": str(paths.root),
        # Each dataset's paths derive from the data root (data/<dataset>/...), so one stack serves them all.
        "LIFEBOAT_DATA_ROOT": absolute(Path(settings.data_root)),
        # A path set away from its dataset's folder is passed on as set (it then applies to every dataset).
        **{
            f"LIFEBOAT_{name.upper()}": absolute(Path(value))
            for name, value in overridden_paths(settings).items()
        },
        "LIFEBOAT_MLFLOW_TRACKING_URI": where["mlflow"],
        "LIFEBOAT_MLFLOW_UI_URL": where["mlflow"],
        "LIFEBOAT_SERVING_URL": where["serving"],
        "LIFEBOAT_SERVING_PORT": str(settings.serving_port),
        "LIFEBOAT_AIRFLOW_PORT": str(settings.airflow_port),
        "LIFEBOAT_MLFLOW_PORT": str(settings.mlflow_port),
        "LIFEBOAT_RELOAD_TOKEN": found["reload_token"],
        "MLFLOW_TRACKING_URI": where["mlflow"],
        # Also the registry: an inherited MLFLOW_REGISTRY_URI would send promotions to another store.
        "MLFLOW_REGISTRY_URI": where["mlflow"],
    }


def airflow_env(settings: Settings, repo: Path, paths: StackPaths, found: dict[str, str]) -> dict[str, str]:
    """The environment of ``airflow standalone`` (inherited by the scheduler, its tasks and spark-submit)."""
    port = settings.airflow_port
    return {
        "AIRFLOW_HOME": str(paths.airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(repo / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(repo / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{AIRFLOW_USER}:admin,{AIRFLOW_FEEDBACK_USER}:op",
        "AIRFLOW__CORE__FERNET_KEY": found["airflow_fernet_key"],
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__SECRET_KEY": found["airflow_api_secret_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": found["airflow_jwt_secret"],
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "20",
        # A busy 2-core machine can keep the api-server from answering a task within the 5 s default.
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
        "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps({"conn_type": "spark", "host": settings.spark_master}),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
    }


def services(
    settings: Settings, repo: Path, paths: StackPaths, extra_env: Mapping[str, str] | None = None
) -> list[Service]:
    """The stack's processes in start order: MLflow, the prediction server, Airflow.

    ``extra_env`` is added to every process's environment last (tests use it to shorten training).
    """
    found = load_secrets(paths)
    where = urls(settings)
    base = dict(os.environ)
    base["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}"
    shared = {**base, **lifeboat_env(settings, repo, paths, found), **(extra_env or {})}
    mlflow = Service(
        name="mlflow",
        command=[
            _bin("mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{paths.root / 'mlflow.db'}",
            "--artifacts-destination",
            str(paths.root / "mlartifacts"),
            "--serve-artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            str(settings.mlflow_port),
            "--workers",
            "1",
        ],
        env=shared,
        health_url=f"{where['mlflow']}/health",
        url=where["mlflow"],
        start_timeout=120.0,
        cwd=repo,
    )
    serving = Service(
        name="serving",
        command=[_bin("lifeboat"), "serve", "--host", "127.0.0.1", "--port", str(settings.serving_port)],
        # Only the server checks the feedback token and tells Airflow of labels: no other process gets these.
        env={
            **shared,
            "LIFEBOAT_FEEDBACK_TOKEN": found["feedback_token"],
            "LIFEBOAT_AIRFLOW_EVENTS_URL": where["airflow"],
            "LIFEBOAT_AIRFLOW_EVENTS_USER": AIRFLOW_FEEDBACK_USER,
            "LIFEBOAT_AIRFLOW_EVENTS_PASSWORD": found["airflow_feedback_password"],
            **(extra_env or {}),
        },
        health_url=f"{where['serving']}/health",
        url=where["serving"],
        start_timeout=90.0,
        cwd=repo,
    )
    airflow = Service(
        name="airflow",
        command=[_bin("airflow"), "standalone"],
        env={**shared, **airflow_env(settings, repo, paths, found), **(extra_env or {})},
        health_url=f"{where['airflow']}/api/v2/monitor/health",
        url=where["airflow"],
        start_timeout=300.0,
        cwd=repo,
    )
    return [mlflow, serving, airflow]


# --- processes ----------------------------------------------------------------------------------------


def up(
    settings: Settings,
    repo: Path,
    say: Callable[[str], None] = print,
    extra_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Start (or reuse) MLflow, the prediction server and Airflow; return what was done per service."""
    paths = StackPaths.from_settings(settings)
    found = load_secrets(paths)
    write_airflow_password(paths, found["airflow_admin_password"], found["airflow_feedback_password"])
    done = {}
    for service in services(settings, repo, paths, extra_env):
        try:
            done[service.name] = ensure_running(service, paths, say)
        except StackError:
            say(f"{service.name}: failed to start; stopping what this call started")
            for name, action in done.items():
                if action == "started":
                    stop(paths, name)
            stop(paths, service.name)
            raise
    ensure_registry_pools(settings, say)
    return done


def ensure_registry_pools(settings: Settings, say: Callable[[str], None] = print) -> None:
    """Create each dataset's registry pool in Airflow (its promote and rollback tasks never run without)."""
    from lifeboat.orchestration.dags import discover_datasets
    from lifeboat.orchestration.pools import ensure_pools

    datasets = [entry.name for entry in discover_datasets(settings.data_root)]
    with airflow_client(settings) as client:
        created = ensure_pools(client, datasets)
    if created:
        say(f"airflow: pool(s) {', '.join(created)} (one slot each: promote and rollback take turns)")


def down(settings: Settings, say: Callable[[str], None] = print) -> list[str]:
    """Stop every process of the stack (reverse start order); return the names that were running."""
    paths = StackPaths.from_settings(settings)
    stopped = []
    for name in reversed(SERVICES):
        if stop(paths, name):
            stopped.append(name)
            say(f"{name}: stopped")
        else:
            say(f"{name}: not running")
    return stopped


def status(settings: Settings) -> dict[str, dict[str, Any]]:
    """Per service: pid (or None), whether its health URL answers, and its URL."""
    paths = StackPaths.from_settings(settings)
    where = urls(settings)
    health = {
        "mlflow": f"{where['mlflow']}/health",
        "serving": f"{where['serving']}/health",
        "airflow": f"{where['airflow']}/api/v2/monitor/health",
    }
    return {
        name: {"pid": running_pid(paths, name), "healthy": answers(health[name]), "url": where[name]}
        for name in SERVICES
    }


def airflow_client(settings: Settings) -> Any:
    """An :class:`lifeboat.orchestration.airflow_api.AirflowClient` logged in as the stack's admin."""
    from lifeboat.orchestration.airflow_api import AirflowClient

    found = load_secrets(StackPaths.from_settings(settings))
    return AirflowClient(urls(settings)["airflow"], AIRFLOW_USER, found["airflow_admin_password"])
