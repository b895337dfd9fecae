"""The server as it runs in production: real uvicorn processes on loopback (``uvicorn --factory``).

* reloads and alias moves while client threads keep sending /predict and /predict/batch: no request fails;
* ``--workers 2``: every worker converges on a moved champion, by polling and through a reload;
* the seed's smoke client (tests/test_script.py) passes against a live server and fails without one;
* the server never needs pyspark (nor scikit-learn or Airflow) to import, load a model and answer.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving.app import fleet_directory
from serving.fleet import FleetBoard
from tests.serving.serving_support import (
    REPO_ROOT,
    TOKEN,
    LiveServer,
    ServingVersions,
    StoreRef,
    auth,
    copy_store,
    free_port,
    live_server,
    serving_settings,
    set_champion,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def live_store(
    champion_store: StoreRef, serving_versions: ServingVersions, tmp_path_factory: pytest.TempPathFactory
) -> StoreRef:
    """A store copy for the module's live server (its champion alias moves during the tests)."""
    return copy_store(champion_store, tmp_path_factory.mktemp("live-store"))


@pytest.fixture(scope="module")
def live(live_store: StoreRef, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One uvicorn worker following ``live_store`` (alias poll every 0.3 s)."""
    settings = serving_settings(
        tmp_path_factory.mktemp("live-state"), live_store.tracking_uri, registry_poll_seconds=0.3
    )
    with live_server(settings) as server:
        yield server


def run_smoke_client(url: str, rows: int, seed: int = 3) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "tests/test_script.py",
            "--input",
            "data/titanic/raw/test.csv",
            "--rows",
            str(rows),
            "--url",
            url,
            "--seed",
            str(seed),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_smoke_client_passes_against_a_live_server(live: LiveServer) -> None:
    result = run_smoke_client(live.url, rows=40)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{live.url}/predict: 40 ok, 0 failed, of 40 requests" in result.stdout
    assert "latency p50" in result.stdout


def test_the_smoke_client_fails_without_a_server() -> None:
    result = run_smoke_client(f"http://127.0.0.1:{free_port()}", rows=3)
    assert result.returncode == 1
    assert "0 ok, 3 failed" in result.stdout


def test_reloads_under_load_fail_no_request(
    live: LiveServer, live_store: StoreRef, serving_versions: ServingVersions, test_rows: list[dict[str, Any]]
) -> None:
    versions = {live_store.version, serving_versions.alternate}
    stop = threading.Event()
    lock = threading.Lock()
    outcomes: list[tuple[str, int, list[str]]] = []  # (endpoint, status, model versions in the answer)
    errors: list[str] = []

    def send_singles(offset: int) -> None:
        with httpx.Client(base_url=live.url, timeout=60) as client:
            i = offset
            while not stop.is_set():
                try:
                    response = client.post("/predict", json=test_rows[i % len(test_rows)])
                    body = response.json()
                    seen = [str(body.get("model_version"))] if isinstance(body, dict) else []
                except (httpx.HTTPError, ValueError) as exc:
                    with lock:
                        errors.append(f"/predict: {exc!r}")
                    continue
                with lock:
                    outcomes.append(("/predict", response.status_code, seen))
                i += 7

    def send_batches() -> None:
        with httpx.Client(base_url=live.url, timeout=60) as client:
            i = 0
            while not stop.is_set():
                rows = test_rows[i % 300 : i % 300 + 25]
                try:
                    response = client.post("/predict/batch", json={"passengers": rows})
                    body = response.json()
                    seen = [body["model_version"], *(p["model_version"] for p in body["predictions"])]
                except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                    with lock:
                        errors.append(f"/predict/batch: {exc!r}")
                    continue
                with lock:
                    outcomes.append(("/predict/batch", response.status_code, seen))
                i += 25

    threads = [threading.Thread(target=send_singles, args=(k,)) for k in range(2)]
    threads.append(threading.Thread(target=send_batches))
    for thread in threads:
        thread.start()
    reloads: list[tuple[str, int, Any]] = []
    try:
        for step in range(8):
            target = serving_versions.alternate if step % 2 == 0 else live_store.version
            set_champion(live_store, target)
            if step % 3 != 2:  # some moves are left to the alias poll
                response = httpx.post(f"{live.url}/admin/reload", headers=auth(), timeout=120)
                reloads.append((target, response.status_code, response.json()))
            time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(120)
        set_champion(live_store, live_store.version)

    assert errors == []
    assert len(outcomes) >= 30
    assert [o for o in outcomes if o[1] != 200] == []
    assert {v for o in outcomes for v in o[2]} <= versions
    assert {v for o in outcomes for v in o[2]} == versions  # both versions really served under load
    batches = [o for o in outcomes if o[0] == "/predict/batch"]
    assert batches
    assert all(len(set(o[2])) == 1 for o in batches)
    assert [(target, status, body["new_version"]) for target, status, body in reloads] == [
        (target, 200, target) for target, _, _ in reloads
    ]


def _ready_samples(url: str, count: int) -> list[dict[str, Any]]:
    """/ready over fresh connections (so that the kernel spreads them across the workers)."""
    samples = []
    for _ in range(count):
        with httpx.Client(timeout=30) as client:
            samples.append(client.get(f"{url}/ready").json())
    return samples


def _fleet_versions(board: FleetBoard) -> dict[str, str | None]:
    return {w.worker: w.version for w in board.live_workers()}


def test_every_worker_converges_on_a_moved_champion(
    store_copy: StoreRef, serving_versions: ServingVersions, tmp_path: Path
) -> None:
    settings = serving_settings(tmp_path / "state", store_copy.tracking_uri, registry_poll_seconds=1.0)
    board = FleetBoard(fleet_directory(settings), "observer")
    first, second = store_copy.version, serving_versions.alternate
    with live_server(settings, workers=2) as server:
        deadline = time.monotonic() + 180
        while not (len(_fleet_versions(board)) == 2 and set(_fleet_versions(board).values()) == {first}):
            assert time.monotonic() < deadline, f"workers did not start: {_fleet_versions(board)}"
            time.sleep(0.25)

        # 1. The alias moves, nobody calls reload: each worker's poll finds it.
        set_champion(store_copy, second)
        moved = time.monotonic()
        while set(_fleet_versions(board).values()) != {second}:
            assert time.monotonic() - moved < 60, f"no convergence by polling: {_fleet_versions(board)}"
            time.sleep(0.1)
        assert {s["model_version"] for s in _ready_samples(server.url, 20)} == {second}

        # 2. The alias moves back and ONE reload is sent: its answer waits until every worker serves it.
        set_champion(store_copy, first)
        reload = httpx.post(f"{server.url}/admin/reload", headers=auth(TOKEN), timeout=120)
        assert reload.status_code == 200, reload.text
        body = reload.json()
        assert body["converged"] is True
        assert body["new_version"] == first
        assert sorted(w["model_version"] for w in body["workers"]) == [first, first]
        seen_workers: set[str] = set()
        samples: list[dict[str, Any]] = []
        while len(seen_workers) < 2 and len(samples) < 400:
            batch = _ready_samples(server.url, 20)
            samples += batch
            seen_workers |= {s["worker"] for s in batch}
        assert {s["model_version"] for s in samples} == {first}
        assert seen_workers == {w["worker"] for w in body["workers"]}


_PROBE = r"""
import importlib.abc, json, sys

BLOCKED = ("pyspark", "py4j", "sklearn", "airflow")
attempts = []


class NotInTheServingImage(importlib.abc.MetaPathFinder):
    # Refuses the packages the serving image does not install, and records who asked for them.
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] not in BLOCKED:
            return None
        frame = sys._getframe(1)
        while frame is not None and frame.f_globals.get("__name__", "").startswith(("importlib", "__main__")):
            frame = frame.f_back
        attempts.append([name, frame.f_globals.get("__name__") if frame is not None else None])
        raise ModuleNotFoundError(f"No module named {name!r}")


sys.meta_path.insert(0, NotInTheServingImage())
from fastapi.testclient import TestClient

from lifeboat.settings import Settings
from serving.app import create_app

args = json.loads(sys.argv[1])
settings = Settings(state_dir=args["state"], mlflow_tracking_uri=args["uri"], model_name=args["model"],
                    reload_token=args["token"], registry_poll_seconds=0)
passenger = {"Pclass": 1, "Sex": "female", "Age": 30.0, "SibSp": 0, "Parch": 0}
with TestClient(create_app(settings)) as client:
    statuses = [
        client.get("/ready").status_code,
        client.post("/predict", json=passenger).status_code,
        client.post("/predict/batch", json={"passengers": [passenger] * 3}).status_code,
        client.post("/admin/reload", headers={"Authorization": "Bearer " + args["token"]}).status_code,
    ]
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
print(json.dumps({"statuses": statuses, "loaded": loaded, "attempts": attempts}))
"""


def test_the_server_runs_without_pyspark_sklearn_or_airflow(champion_store: StoreRef, tmp_path: Path) -> None:
    """As in the serving image: those packages are absent, and the server loads, predicts and reloads.

    (In the development environment MLflow itself probes for pyspark on import; the probe records that
    such attempts come only from MLflow's optional imports, never from serving or lifeboat code.)
    """
    args = {
        "state": str(tmp_path / "state"),
        "uri": champion_store.tracking_uri,
        "model": champion_store.model_name,
        "token": TOKEN,
    }
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(args)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["statuses"] == [200, 200, 200, 200]
    assert report["loaded"] == []
    importers = {importer for _, importer in report["attempts"]}
    assert all(str(i).startswith("mlflow.") for i in importers), importers
