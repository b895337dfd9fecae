"""Helpers of the proof tests: extra registered versions, a real MLflow tracking server, response checks.

Fixtures live in tests/proof/conftest.py; the champion, store copies and live uvicorn servers come from the
serving tests' helpers (tests/serving/serving_support.py, tests/support/serving_fixtures.py).
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import httpx

from tests.serving.serving_support import StoreRef, free_port, stop_process_group

#: The keys of the seed's response contract, plus the version of the model that answered.
CONTRACT_KEYS = frozenset({"survived", "probability_survive", "drift_alerts", "model_version", "request_id"})


# --- registered versions ------------------------------------------------------------------------------------


def artifact_folder(store: StoreRef, version: str) -> Path:
    """The local folder holding a registered version's artifacts (file-based stores only)."""
    from mlflow import MlflowClient

    uri = MlflowClient(store.tracking_uri, store.tracking_uri).get_model_version_download_uri(
        store.model_name, version
    )
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file"):
        raise ValueError(f"{store.model_name} version {version} is not stored in a local folder: {uri}")
    return Path(unquote(parsed.path))


def register_artifact_copy(store: StoreRef, source_version: str, destination: Path) -> str:
    """Register a new version of the store's model from a private copy of ``source_version``'s artifacts.

    The copy lives in ``destination`` (which the test owns: it may delete it), so the new version is
    servable exactly like its source and nothing shared with other tests is touched. Returns the version.
    """
    from mlflow import MlflowClient

    shutil.copytree(artifact_folder(store, source_version), destination)
    client = MlflowClient(store.tracking_uri, store.tracking_uri)
    created = client.create_model_version(
        store.model_name, source=destination.as_uri(), tags={"proof.copy_of": source_version}
    )
    return str(created.version)


# --- a real MLflow tracking server --------------------------------------------------------------------------


class MlflowServer:
    """``mlflow server`` on a SQLite registry, on one fixed loopback port, that a test stops and restarts."""

    def __init__(self, database: Path, workdir: Path, port: int | None = None) -> None:
        self.database = database
        self.workdir = workdir
        self.port = port if port is not None else free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"mlflow-{self.port}.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 180.0) -> None:
        """Start the server and wait until ``/health`` answers (raises RuntimeError with the log if not)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.database}",
            "--default-artifact-root",
            (self.workdir / "artifacts").as_uri(),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        with self.log.open("ab") as sink:
            self._process = subprocess.Popen(
                command,
                cwd=self.workdir,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"mlflow server exited with {self._process.returncode}:\n{self.log_text()}"
                )
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not answer within {timeout:.0f} s:\n{self.log_text()}")
            time.sleep(0.25)

    def stop(self) -> None:
        """Stop the server and its workers; afterwards its port refuses connections."""
        if self._process is not None:
            stop_process_group(self._process)
            self._process = None

    def log_text(self) -> str:
        """What the server logged so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextmanager
def mlflow_server(database: Path, workdir: Path) -> Iterator[MlflowServer]:
    """A started :class:`MlflowServer`, stopped when the block ends (whatever the test did to it)."""
    server = MlflowServer(database, workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- responses ----------------------------------------------------------------------------------------------


def prediction_problem(body: Any, versions: Sequence[str] | frozenset[str]) -> str | None:
    """Why one prediction does not honour the contract (None when it does).

    The seed's keys plus the model version and request id, nothing else; ``survived`` 0/1 agreeing with the
    probability; a probability in [0, 1]; a text drift alert; a model version among ``versions``.
    """
    if not isinstance(body, dict):
        return f"not a JSON object: {body!r}"
    if set(body) != CONTRACT_KEYS:
        return f"keys {sorted(body)} != {sorted(CONTRACT_KEYS)}"
    probability = body["probability_survive"]
    if not isinstance(probability, float | int) or not 0.0 <= probability <= 1.0 or math.isnan(probability):
        return f"probability_survive {probability!r} is not in [0, 1]"
    if body["survived"] not in (0, 1) or body["survived"] != int(probability >= 0.5):
        return f"survived {body['survived']!r} does not agree with probability {probability!r}"
    if not isinstance(body["drift_alerts"], str) or not body["drift_alerts"]:
        return f"drift_alerts {body['drift_alerts']!r} is not a sentence"
    if body["model_version"] not in versions:
        return f"model_version {body['model_version']!r} is not one of {sorted(versions)}"
    return None


def batch_problem(body: Any, rows: int, versions: Sequence[str] | frozenset[str]) -> str | None:
    """Why a batch answer does not honour the contract: one version for all rows, in count, each row valid."""
    if not isinstance(body, dict) or set(body) != {"model_version", "count", "predictions"}:
        return f"not a batch answer: {str(body)[:200]}"
    if body["count"] != rows or len(body["predictions"]) != rows:
        return f"{body['count']} / {len(body['predictions'])} predictions for {rows} rows"
    for index, prediction in enumerate(body["predictions"]):
        problem = prediction_problem(prediction, versions)
        if problem is not None:
            return f"row {index}: {problem}"
        if prediction["model_version"] != body["model_version"]:
            return (
                f"row {index} scored by {prediction['model_version']}, the batch by {body['model_version']}"
            )
    return None


def percentile(values: Sequence[float], share: float) -> float:
    """The ``share`` quantile (0..1) of ``values``, nearest rank (NaN when empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def csv_of(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """Passengers as a Kaggle-style CSV (header from the first row's keys; None as an empty cell)."""
    import csv
    import io

    columns = list(rows[0])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row[c] for c in columns])
    return out.getvalue().encode()
