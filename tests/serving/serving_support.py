"""Helpers of the serving tests (stores, settings, live uvicorn servers); fixtures live in conftest.py."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import httpx

from lifeboat.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_NAME = "titanic-serving-test"
TOKEN = "serving-tests-reload-token-0123456789"
CHAMPION = "champion"


def without_ids(answer: Any) -> Any:
    """A prediction answer without its ``request_id`` fields (they differ from request to request)."""
    if isinstance(answer, dict):
        return {k: without_ids(v) for k, v in answer.items() if k != "request_id"}
    if isinstance(answer, list):
        return [without_ids(v) for v in answer]
    return answer


class StoreRef(NamedTuple):
    """An MLflow store holding ``model_name`` with the alias ``champion`` on ``version``."""

    tracking_uri: str
    model_name: str
    version: str


@dataclass(frozen=True)
class ServingVersions:
    """The versions registered in the shared store besides the champion."""

    alternate: str  # a servable version that scores differently from the champion
    broken: str  # a version whose model.onnx is garbage


def copy_store(source: StoreRef, destination: Path) -> StoreRef:
    """A private copy of a SQLite store's registry (artifacts stay shared; they are never modified)."""
    path = source.tracking_uri.removeprefix("sqlite:///")
    destination.mkdir(parents=True, exist_ok=True)
    target = destination / "mlflow.db"
    with sqlite3.connect(path) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    return StoreRef(f"sqlite:///{target}", source.model_name, source.version)


def set_champion(store: StoreRef, version: str | None) -> None:
    """Point ``champion`` at ``version`` (None removes the alias)."""
    from mlflow import MlflowClient

    client = MlflowClient(store.tracking_uri, store.tracking_uri)
    if version is None:
        client.delete_registered_model_alias(store.model_name, CHAMPION)
    else:
        client.set_registered_model_alias(store.model_name, CHAMPION, version)


def serving_settings(state_dir: Path, tracking_uri: str, **overrides: Any) -> Settings:
    """Settings of one test server: its own state folder, the given registry, polling off unless asked."""
    values: dict[str, Any] = {
        "state_dir": state_dir,
        "mlflow_tracking_uri": tracking_uri,
        "model_name": MODEL_NAME,
        "reload_token": TOKEN,
        "registry_poll_seconds": 0,
    }
    values.update(overrides)
    return Settings(**values)


def auth(token: str = TOKEN) -> dict[str, str]:
    """The reload endpoint's Authorization header."""
    return {"Authorization": f"Bearer {token}"}


# --- live uvicorn -------------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    """A uvicorn subprocess serving the app on loopback."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    settings: Settings

    def log_text(self) -> str:
        """What the server logged so far."""
        return self.log.read_text(errors="replace")


def serving_env(settings: Settings) -> dict[str, str]:
    """Environment for a server subprocess with these settings."""
    env = dict(os.environ)
    env.update(
        {
            "LIFEBOAT_STATE_DIR": str(settings.state_dir),
            "LIFEBOAT_MLFLOW_TRACKING_URI": settings.tracking_uri,
            "LIFEBOAT_MODEL_NAME": settings.model_name,
            "LIFEBOAT_RELOAD_TOKEN": settings.reload_token.get_secret_value()
            if settings.reload_token
            else "",
            "LIFEBOAT_REGISTRY_POLL_SECONDS": str(settings.registry_poll_seconds),
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
        }
    )
    return env


def stop_process_group(process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Stop a subprocess started in its own session, and its children (uvicorn workers)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout)


@contextmanager
def live_server(settings: Settings, workers: int = 1, startup_timeout: float = 180.0) -> Iterator[LiveServer]:
    """Run ``uvicorn --factory serving.app:create_app`` on a free loopback port until the block ends."""
    port = free_port()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    log = settings.state_dir / f"uvicorn-{port}.log"
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "serving.app:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=serving_env(settings),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", process, log, settings)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"uvicorn exited with {process.returncode}:\n{server.log_text()}")
            try:
                if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"uvicorn did not answer /health within {startup_timeout:.0f} s:\n{server.log_text()}"
                )
            time.sleep(0.25)
        yield server
    finally:
        stop_process_group(process)
