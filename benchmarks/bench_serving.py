"""Serving benchmark: lifeboat vs ``mlflow models serve`` (the same champion, as Spark) vs a trivial floor.

Run: ``.venv/bin/python benchmarks/bench_serving.py`` (``make bench``). Prints markdown tables and writes
``bench-results/serving.json``. Everything runs on 127.0.0.1 and every load run is bounded in time.

* **The champion.** A real retraining run (``lifeboat train --families lr``, 2-4 min) into its own state
  folder (``--state-dir``, default ``bench-results/state``); ``--reuse-state DIR`` skips it and serves DIR's
  champion. The same registered version is served twice: by lifeboat (its ONNX artifact) and by
  ``mlflow models serve --env-manager local`` (the logged Spark pipeline, the version's ``spark_model_uri``
  tag, with a JVM). The Spark model has no logged signature: its first stage, a VectorAssembler, reads the
  encoded feature columns, so it gets the passenger encoded by ``lifeboat.dataset.features.encode`` (one
  ``dataframe_records`` record of 22 numbers), while lifeboat gets the raw passenger.
* **The floor.** ``benchmarks/trivial_app.py``: a FastAPI POST endpoint that parses the JSON body and
  answers a constant; the same uvicorn settings as lifeboat (1 worker, no access log, uvloop/httptools).
* **Load.** One generator for all servers: ``wrk`` when installed (``apt-get install wrk``), else a Python
  asyncio keep-alive client (which caps the rate on a small machine: the output says which was used).
  Throughput: N connections for D seconds per round; latency: 1 connection; rounds interleave the servers
  and every figure is the median over rounds, ratios are medians of per-round ratios (same round, same
  machine state). Nothing is asserted: the targets are reported as met or missed.
* **Server-side time.** Two views of lifeboat's own time: the app called in-process through ASGI (the whole
  app: middleware, validation, scoring, serialisation; no sockets or HTTP parsing), timed until the last
  byte of the answer, and the server's Prometheus latency histogram during the 1-connection runs
  (interpolated inside its buckets, so coarse).
* **Server CPU per request.** The CPU time of each server's processes (``/proc``, Linux) over every load run,
  divided by its requests: on a shared machine it moves much less than req/s, which follows the neighbours.

Targets (the issue): single-row p50 <= 2 ms server-side; throughput >= 50x ``mlflow models serve`` and
>= 50 % of the trivial floor; a 1000-row batch in <= 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TEST_CSV = REPO_ROOT / "data" / "titanic" / "raw" / "test.csv"
TRAIN_CSV = REPO_ROOT / "data" / "titanic" / "raw" / "train.csv"
DEFAULT_STATE = REPO_ROOT / "bench-results" / "state"
DEFAULT_OUTPUT = REPO_ROOT / "bench-results" / "serving.json"
HOST = "127.0.0.1"
TARGETS = {
    "single_row_p50_server_ms": 2.0,
    "vs_mlflow_throughput_ratio": 50.0,
    "vs_trivial_throughput_ratio": 0.5,
    "batch_1000_p50_server_ms": 20.0,
}
VERSIONS = ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "pydantic", "onnxruntime", "numpy")
VERSIONS_BASELINE = ("mlflow", "pyspark")
WRK_MARK = "LIFEBOAT_BENCH "
WRK_LUA = """
local f = assert(io.open([[@BODY@]], "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "@MARK@{\\"requests\\": %d, \\"duration_us\\": %d, \\"errors\\": %d, \\"non2xx\\": %d, "
    .. "\\"p50_us\\": %d, \\"p99_us\\": %d}\\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


class BenchError(RuntimeError):
    """The benchmark cannot run (no data, a server that does not start, a server that answers errors)."""


# --- inputs ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Champion:
    """The served version and where it lives."""

    state_dir: Path
    tracking_uri: str
    model_name: str
    version: str
    spark_model_uri: str


def passengers_from_csv(path: Path, rows: int) -> list[dict[str, Any]]:
    """``rows`` passengers of a Kaggle-format CSV as API JSON (missing values as null), the file repeated."""
    from lifeboat.dataset.schema import COLUMNS

    frame = pd.read_csv(path)
    records = []
    for record in frame[[c.name for c in COLUMNS]].to_dict(orient="records"):
        passenger: dict[str, Any] = {}
        for spec in COLUMNS:
            value = record[spec.name]
            if isinstance(value, float) and math.isnan(value):
                passenger[spec.name] = None
            else:
                passenger[spec.name] = int(value) if spec.kind == "int" else value
        records.append(passenger)
    return [records[i % len(records)] for i in range(rows)]


def train_champion(state_dir: Path, log_path: Path) -> None:
    """One real retraining run (``lifeboat train --families lr``) into ``state_dir``."""
    uri = f"sqlite:///{(state_dir / 'mlflow.db').resolve()}"
    env = {
        **os.environ,
        "LIFEBOAT_STATE_DIR": str(state_dir.resolve()),
        "LIFEBOAT_MLFLOW_TRACKING_URI": uri,
        "MLFLOW_TRACKING_URI": uri,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    state_dir.mkdir(parents=True, exist_ok=True)
    command = [str(BIN / "lifeboat"), "train", "--families", "lr"]
    _progress(f"training the champion: {' '.join(command[1:])} into {state_dir} (log: {log_path})")
    started = time.monotonic()
    with log_path.open("w") as log:
        completed = subprocess.run(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    if completed.returncode != 0:
        raise BenchError(f"lifeboat train failed (exit {completed.returncode}):\n{_tail(log_path)}")
    _progress(f"trained in {time.monotonic() - started:.0f} s")


def find_champion(state_dir: Path) -> Champion:
    """The champion of the state folder's registry, with its Spark model URI."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from lifeboat.settings import Settings

    model_name = Settings().model_name
    uri = f"sqlite:///{(state_dir / 'mlflow.db').resolve()}"
    if not (state_dir / "mlflow.db").is_file():
        raise BenchError(f"no MLflow store in {state_dir}: run without --reuse-state to train one")
    try:
        version = MlflowClient(uri, uri).get_model_version_by_alias(model_name, "champion")
    except MlflowException as exc:
        raise BenchError(f"{state_dir} has no champion of {model_name}: {exc}") from exc
    spark_uri = version.tags.get("spark_model_uri")
    if not spark_uri:
        raise BenchError(f"{model_name} version {version.version} has no spark_model_uri tag")
    return Champion(state_dir.resolve(), uri, model_name, str(version.version), spark_uri)


def spark_input_columns(champion: Champion, workdir: Path) -> list[str]:
    """The columns the logged Spark pipeline reads: its signature, else its first stage's inputCols."""
    import mlflow

    mlflow.set_tracking_uri(champion.tracking_uri)
    info = mlflow.models.get_model_info(champion.spark_model_uri)
    if info.signature is not None and info.signature.inputs is not None:
        return list(info.signature.inputs.input_names())
    local = Path(mlflow.artifacts.download_artifacts(champion.spark_model_uri, dst_path=str(workdir)))
    stages = sorted((local / "sparkml" / "stages").iterdir(), key=lambda p: int(p.name.split("_", 1)[0]))
    for line in next((stages[0] / "metadata").glob("part-*")).read_text().splitlines():
        params = json.loads(line).get("paramMap", {})
        if "inputCols" in params:
            return list(params["inputCols"])
    raise BenchError(
        f"cannot tell the input columns of {champion.spark_model_uri} (no signature, no inputCols)"
    )


def encoded_records(
    champion: Champion, passengers: list[dict[str, Any]], workdir: Path
) -> list[dict[str, float]]:
    """The passengers encoded exactly as the model was trained (its own encoder), one record each."""
    import mlflow

    from lifeboat.dataset.schema import COLUMN_NAMES
    from lifeboat.registry.store import load_serving_model

    mlflow.set_tracking_uri(champion.tracking_uri)
    mlflow.set_registry_uri(champion.tracking_uri)
    model = load_serving_model(champion.model_name, champion.version, workdir)
    matrix = model.encode({c: [p.get(c) for p in passengers] for c in COLUMN_NAMES})
    return [dict(zip(model.feature_names, row, strict=True)) for row in matrix.astype(float).tolist()]


# --- servers ---------------------------------------------------------------------------------------------


@dataclass
class Server:
    """A server process started by the benchmark (in its own process group)."""

    key: str
    label: str
    input: str
    workers: int
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def url(self, path: str) -> str:
        """An absolute URL on this server."""
        return f"http://{HOST}:{self.port}{path}"


def free_port() -> int:
    """A TCP port that is free on the loopback interface right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running(
    key: str,
    label: str,
    input_description: str,
    workers: int,
    command: list[str],
    env: dict[str, str],
    port: int,
    logs: Path,
) -> Iterator[Server]:
    """Start a server; stop its whole process group on exit."""
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{key}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(key, label, input_description, workers, port, process, log)
    try:
        yield server
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def process_tree_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` and its descendants (Linux ``/proc``; None elsewhere).

    Counts what the server processes spent, whoever else shares the machine: the steadiest view of "how
    much does one request cost" on a noisy machine (req/s moves with the neighbours, CPU per request less).
    """
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    proc = Path("/proc")
    if not (proc / str(pid) / "stat").is_file():
        return None
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            parents[int(entry.name)] = int(fields[1])  # ppid: field 4 of stat
            cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime: 14, 15
    tree, todo = set(), [pid]
    while todo:
        current = todo.pop()
        tree.add(current)
        todo.extend(child for child, parent in parents.items() if parent == current and child not in tree)
    return sum(cpu.get(p, 0.0) for p in tree)


def wait_until(server: Server, ready: Callable[[httpx.Client, Server], bool], timeout: float) -> float:
    """Poll ``ready`` until true; return the seconds it took. Fails if the process exits or time runs out."""
    started = time.monotonic()
    with httpx.Client(timeout=10.0) as client:
        while time.monotonic() - started < timeout:
            if server.process.poll() is not None:
                raise BenchError(
                    f"{server.label} exited with {server.process.returncode}:\n{_tail(server.log)}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if ready(client, server):
                    return time.monotonic() - started
            time.sleep(0.5)
    raise BenchError(f"{server.label} not ready after {timeout:.0f} s:\n{_tail(server.log)}")


def uvicorn_command(app: str, port: int, workers: int) -> list[str]:
    """The same uvicorn settings for lifeboat and the floor."""
    return [
        str(BIN / "uvicorn"),
        "--factory",
        app,
        "--app-dir",
        str(REPO_ROOT),
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def lifeboat_env(champion: Champion, serve_state: Path) -> dict[str, str]:
    """Our server: its own state folder (prediction log, fleet board), the champion's registry, no polling."""
    return {
        **os.environ,
        "LIFEBOAT_STATE_DIR": str(serve_state),
        "LIFEBOAT_MLFLOW_TRACKING_URI": champion.tracking_uri,
        "LIFEBOAT_MODEL_NAME": champion.model_name,
        "LIFEBOAT_REGISTRY_POLL_SECONDS": "0",
    }


def mlflow_env(champion: Champion) -> dict[str, str]:
    """``mlflow models serve`` runs ``uvicorn`` by name and starts Spark: venv first on PATH, on loopback."""
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": champion.tracking_uri,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": HOST,
    }


# --- load generators -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadRun:
    """One fixed-duration run of the load generator against one URL."""

    requests: int
    seconds: float
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float
    #: Server CPU (all its processes) per request during the run, in microseconds (None if unknown).
    server_cpu_us: float | None = None


class Wrk:
    """``wrk`` (C, epoll): POST bodies from a file through a small Lua script; results printed by ``done``."""

    name = "wrk"

    def __init__(self, executable: str, workdir: Path) -> None:
        self.executable = executable
        self.workdir = workdir
        version = subprocess.run([executable, "-v"], capture_output=True, text=True, check=False)
        self.version = (version.stdout or version.stderr).splitlines()[0].split(" Copyright")[0].strip()

    def run(self, url: str, body: Path, connections: int, seconds: float) -> LoadRun:
        """Load ``url`` with ``connections`` keep-alive connections for ``seconds``."""
        script = self.workdir / f"{body.stem}.lua"
        script.write_text(WRK_LUA.replace("@BODY@", str(body)).replace("@MARK@", WRK_MARK))
        command = [
            self.executable,
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "30s",
            "-s",
            str(script),
            url,
        ]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
        marked = [line for line in completed.stdout.splitlines() if line.startswith(WRK_MARK)]
        if completed.returncode != 0 or not marked:
            raise BenchError(f"wrk failed ({completed.returncode}): {completed.stdout}{completed.stderr}")
        result = json.loads(marked[-1][len(WRK_MARK) :])
        elapsed = result["duration_us"] / 1e6
        return LoadRun(
            requests=result["requests"],
            seconds=elapsed,
            errors=result["errors"] + result["non2xx"],
            rps=result["requests"] / elapsed,
            p50_ms=result["p50_us"] / 1000,
            p99_ms=result["p99_us"] / 1000,
        )


class PythonLoad:
    """Fallback: asyncio keep-alive HTTP/1.1 clients in this process (slower than wrk: it caps the rate)."""

    name = "python-asyncio"
    version = f"Python {platform.python_version()} asyncio"

    def run(self, url: str, body: Path, connections: int, seconds: float) -> LoadRun:
        """Load ``url`` with ``connections`` keep-alive connections for ``seconds``."""
        return asyncio.run(self._run(httpx.URL(url), body.read_bytes(), connections, seconds))

    async def _run(self, url: httpx.URL, body: bytes, connections: int, seconds: float) -> LoadRun:
        port = url.port or 80
        head = (
            f"POST {url.raw_path.decode()} HTTP/1.1\r\nHost: {url.host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        request = head.encode() + body
        latencies: list[float] = []
        errors = [0]
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(
            *(
                self._connection(url.host, port, request, deadline, latencies, errors)
                for _ in range(connections)
            )
        )
        elapsed = time.perf_counter() - started
        latencies.sort()
        return LoadRun(
            requests=len(latencies),
            seconds=elapsed,
            errors=errors[0],
            rps=len(latencies) / elapsed,
            p50_ms=_percentile(latencies, 50) * 1000,
            p99_ms=_percentile(latencies, 99) * 1000,
        )

    @staticmethod
    async def _connection(
        host: str, port: int, request: bytes, deadline: float, latencies: list[float], errors: list[int]
    ) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while (sent := time.perf_counter()) < deadline:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = None
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if length is None:
                    raise BenchError("the server answered without Content-Length")
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - sent)
                if head[9:12] != b"200":
                    errors[0] += 1
        finally:
            writer.close()


def load_generator(choice: str, workdir: Path) -> Wrk | PythonLoad:
    """wrk when asked for or available; the Python generator otherwise."""
    found = shutil.which("wrk")
    if choice == "wrk" and not found:
        raise BenchError(
            "wrk is not installed: apt-get install -y wrk (Debian/Ubuntu), or --load-generator python"
        )
    if choice != "python" and found:
        return Wrk(found, workdir)
    if choice == "auto":
        _progress(
            "wrk not found: using the Python load generator, which caps throughput on a small machine "
            "(install wrk: apt-get install -y wrk)"
        )
    return PythonLoad()


# --- server-side views -----------------------------------------------------------------------------------


def scrape_histogram(client: httpx.Client, server: Server, endpoint: str) -> list[tuple[float, float]]:
    """Cumulative (le, count) buckets of lifeboat's latency histogram for successful POSTs to ``endpoint``."""
    from prometheus_client.parser import text_string_to_metric_families

    text = client.get(server.url("/metrics")).text
    buckets = []
    for family in text_string_to_metric_families(text):
        if family.name != "lifeboat_http_request_duration_seconds":
            continue
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name.endswith("_bucket")
                and labels.get("endpoint") == endpoint
                and labels.get("method") == "POST"
                and labels.get("status") == "200"
            ):
                buckets.append((float(labels["le"]), float(sample.value)))
    return sorted(buckets)


def histogram_p50(before: list[tuple[float, float]], after: list[tuple[float, float]]) -> dict[str, Any]:
    """The median of the requests observed between two scrapes, interpolated inside its bucket (ms)."""
    old = dict(before)
    counts = [(le, count - old.get(le, 0.0)) for le, count in after]
    total = counts[-1][1] if counts else 0.0
    if total <= 0:
        return {"p50_ms": None, "bucket_ms": None, "requests": 0}
    target = total / 2
    lower, below = 0.0, 0.0
    for le, cumulative in counts:
        if cumulative >= target:
            if math.isinf(le):
                return {"p50_ms": lower * 1000, "bucket_ms": [lower * 1000, None], "requests": int(total)}
            estimate = lower + (le - lower) * (target - below) / max(cumulative - below, 1e-12)
            return {"p50_ms": estimate * 1000, "bucket_ms": [lower * 1000, le * 1000], "requests": int(total)}
        lower, below = le, cumulative
    return {"p50_ms": None, "bucket_ms": None, "requests": int(total)}


async def _asgi_post(app: Any, path: str, body: bytes) -> tuple[int, float, float]:
    """POST through the ASGI app; (status, seconds to the last byte of the answer, seconds to return)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", HOST.encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": (HOST, 50000),
        "server": (HOST, 80),
    }
    received = False
    status = 0
    answered = 0.0

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)  # no disconnect while the app works
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, answered
        if message["type"] == "http.response.start":
            status = int(message["status"])
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            answered = time.perf_counter()

    started = time.perf_counter()
    await app(scope, receive, send)
    return status, answered - started, time.perf_counter() - started


def in_process(champion: Champion, single: bytes, batch: bytes, singles: int, batches: int) -> dict[str, Any]:
    """Server-side time without sockets: the real app (lifespan, prediction log on) called through ASGI."""
    from lifeboat.settings import Settings
    from serving.app import create_app

    async def measure(app: Any, path: str, body: bytes, count: int) -> dict[str, Any]:
        for _ in range(max(3, count // 20)):  # warm-up
            await _asgi_post(app, path, body)
        answered, returned = [], []
        for _ in range(count):
            status, to_answer, to_return = await _asgi_post(app, path, body)
            if status != 200:
                raise BenchError(f"in-process {path} answered {status}")
            answered.append(to_answer)
            returned.append(to_return)
        answered.sort()
        returned.sort()
        return {
            "requests": count,
            "p50_ms": _percentile(answered, 50) * 1000,
            "p99_ms": _percentile(answered, 99) * 1000,
            "p50_ms_incl_after_answer": _percentile(returned, 50) * 1000,
        }

    async def run(state_dir: Path) -> dict[str, Any]:
        settings = Settings(
            state_dir=state_dir,
            mlflow_tracking_uri=champion.tracking_uri,
            model_name=champion.model_name,
            registry_poll_seconds=0,
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            if app.state.serving.holder.version != champion.version:
                raise BenchError(
                    f"in-process app serves {app.state.serving.holder.version}, not the champion"
                )
            results = {
                "single": await measure(app, "/predict", single, singles),
                "batch": await measure(app, "/predict/batch", batch, batches),
            }
            log = app.state.serving.prediction_log
            if log is not None:
                log.flush(30)
                results["prediction_log"] = asdict(log.stats())
            return results

    with tempfile.TemporaryDirectory(prefix="bench-serving-inproc-") as tmp:
        return asyncio.run(run(Path(tmp)))


# --- the benchmark ---------------------------------------------------------------------------------------


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def _progress(message: str) -> None:
    print(f"[bench_serving {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _summary(runs: list[LoadRun]) -> dict[str, Any]:
    return {
        "rounds": len(runs),
        "rps": _median([r.rps for r in runs]),
        "p50_ms": _median([r.p50_ms for r in runs]),
        "p99_ms": _median([r.p99_ms for r in runs]),
        "server_cpu_us": _median([r.server_cpu_us for r in runs if r.server_cpu_us is not None]),
        "errors": sum(r.errors for r in runs),
        "runs": [asdict(r) for r in runs],
    }


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = round(int(line.split()[1]) / 1024 / 1024, 1)
    java = None
    if shutil.which("java"):
        completed = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False)
        java = (
            (completed.stderr or completed.stdout).splitlines()[0]
            if completed.stderr or completed.stdout
            else None
        )
    versions = {}
    for package in (*VERSIONS, *VERSIONS_BASELINE):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    return {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "java": java,
        "versions": versions,
    }


@dataclass(frozen=True)
class Target:
    """What one server is sent: its path, and the single-row and batch request bodies (files, for wrk)."""

    label: str
    input: str
    path: str
    single: Path
    batch: Path
    batch_path: str


@dataclass
class Bench:
    """The fixed inputs of one run: options, load generator, champion, request bodies, log folder."""

    args: argparse.Namespace
    generator: Wrk | PythonLoad
    champion: Champion
    work: Path
    logs: Path
    targets: dict[str, Target]

    def start(self, stack: contextlib.ExitStack, key: str, workers: int) -> Server:
        """Start one of the three servers (stopped when ``stack`` closes)."""
        port = free_port()
        if key == "trivial":
            command = uvicorn_command("benchmarks.trivial_app:create_app", port, workers)
            env = dict(os.environ)
        elif key == "lifeboat":
            command = uvicorn_command("serving.app:create_app", port, workers)
            env = lifeboat_env(self.champion, self.work / f"serve-w{workers}")
        else:
            uri = self.champion.spark_model_uri
            command = [str(BIN / "mlflow"), "models", "serve", "-m", uri, "--env-manager", "local"]
            command += ["-h", HOST, "-p", str(port)]
            env = mlflow_env(self.champion)
        target = self.targets[key]
        name = f"{key}-w{workers}"
        return stack.enter_context(
            running(name, target.label, target.input, workers, command, env, port, self.logs)
        )

    def load(self, server: Server, key: str, kind: str, connections: int, seconds: float) -> LoadRun:
        """One load run: ``kind`` is ``single`` or ``batch``; with the server's CPU per request."""
        target = self.targets[key]
        path, body = (target.path, target.single) if kind == "single" else (target.batch_path, target.batch)
        before = process_tree_cpu_seconds(server.process.pid)
        run = self.generator.run(server.url(path), body, connections, seconds)
        after = process_tree_cpu_seconds(server.process.pid)
        if before is None or after is None or not run.requests:
            return run
        return replace(run, server_cpu_us=(after - before) / run.requests * 1e6)


def _trivial_ready(client: httpx.Client, server: Server) -> bool:
    return client.post(server.url("/predict"), json={}).status_code == 200


def _mlflow_ready(client: httpx.Client, server: Server) -> bool:
    return client.get(server.url("/ping")).status_code == 200


def start_servers(
    bench: Bench, stack: contextlib.ExitStack, workers: int
) -> tuple[dict[str, Server], dict[str, float]]:
    """Start the floor, lifeboat and (1 worker only) mlflow; wait until each answers; check their answers."""
    keys = ["trivial", "lifeboat"] + (["mlflow"] if workers == 1 and "mlflow" in bench.targets else [])
    servers = {key: bench.start(stack, key, workers) for key in keys}
    version = bench.champion.version

    def lifeboat_ready(client: httpx.Client, server: Server) -> bool:
        return bool(client.get(server.url("/ready")).json().get("model_version") == version)

    startup = {
        f"trivial-w{workers}": wait_until(servers["trivial"], _trivial_ready, 60),
        f"lifeboat-w{workers}": wait_until(servers["lifeboat"], lifeboat_ready, 120),
    }
    if "mlflow" in servers:
        _progress(
            f"waiting for mlflow models serve (JVM + Spark model; up to {bench.args.mlflow_timeout:.0f} s)"
        )
        startup["mlflow"] = wait_until(servers["mlflow"], _mlflow_ready, bench.args.mlflow_timeout)
    answers = {key: _answer(bench, servers[key], key) for key in servers}
    if "mlflow" in answers:
        (spark_prediction,) = answers["mlflow"]["predictions"]
        if int(spark_prediction) != int(answers["lifeboat"]["survived"]):
            raise BenchError(f"the Spark model predicts {spark_prediction}, lifeboat {answers['lifeboat']}")
    return servers, startup


def _answer(bench: Bench, server: Server, key: str) -> Any:
    target = bench.targets[key]
    response = httpx.post(
        server.url(target.path),
        content=target.single.read_bytes(),
        headers={"Content-Type": "application/json"},
        timeout=120,
    )
    if response.status_code != 200:
        raise BenchError(f"{server.label} answered {response.status_code}: {response.text[:500]}")
    return response.json()


def measure_throughput(bench: Bench, servers: dict[str, Server]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Rounds of single-row load, servers interleaved: medians, and per-round ratios of lifeboat's req/s."""
    args = bench.args
    for key, server in servers.items():  # warm-up: lazy imports, JIT, connection set-up
        bench.load(server, key, "single", args.connections, 3)
    runs: dict[str, list[LoadRun]] = {key: [] for key in servers}
    for round_ in range(args.rounds):
        for key, server in servers.items():
            run = bench.load(server, key, "single", args.connections, args.duration)
            runs[key].append(run)
            cpu = f", server CPU {run.server_cpu_us:.0f} us/request" if run.server_cpu_us else ""
            _progress(
                f"throughput w{server.workers} round {round_ + 1} {key}: {run.rps:,.0f} req/s "
                f"p50 {run.p50_ms:.2f} ms ({run.errors} errors{cpu})"
            )
    rows = {
        f"{key}-w{server.workers}": {
            "server": server.label,
            "input": server.input,
            "workers": server.workers,
            "connections": args.connections,
            **_summary(runs[key]),
        }
        for key, server in servers.items()
    }
    per_round = {
        f"vs_{key}": [a.rps / b.rps for a, b in zip(runs["lifeboat"], runs[key], strict=True) if b.rps]
        for key in servers
        if key != "lifeboat"
    }
    ratios = {name: _median(values) for name, values in per_round.items()}
    return rows, {**ratios, "per_round": per_round}


def measure_latency(bench: Bench, servers: dict[str, Server]) -> tuple[dict[str, Any], dict[str, Any]]:
    """1-connection rounds (single row everywhere, batches for lifeboat and mlflow) + lifeboat's histogram."""
    args = bench.args
    scenarios = [(key, "single") for key in servers] + [
        (k, "batch") for k in ("lifeboat", "mlflow") if k in servers
    ]
    runs: dict[tuple[str, str], list[LoadRun]] = {scenario: [] for scenario in scenarios}
    views: dict[str, list[dict[str, Any]]] = {"single": [], "batch": []}
    ours = servers["lifeboat"]
    endpoints = {"single": bench.targets["lifeboat"].path, "batch": bench.targets["lifeboat"].batch_path}
    with httpx.Client(timeout=30) as client:
        for round_ in range(args.rounds):
            for key, kind in scenarios:
                before = scrape_histogram(client, ours, endpoints[kind]) if key == "lifeboat" else []
                run = bench.load(servers[key], key, kind, 1, args.latency_duration)
                runs[(key, kind)].append(run)
                if key == "lifeboat":
                    views[kind].append(histogram_p50(before, scrape_histogram(client, ours, endpoints[kind])))
                _progress(
                    f"latency round {round_ + 1} {key} {kind}: p50 {run.p50_ms:.2f} ms "
                    f"p99 {run.p99_ms:.2f} ms ({run.rps:,.1f} req/s, {run.errors} errors)"
                )
    rows = {
        f"{key}-{kind}": {
            "server": servers[key].label,
            "rows": args.batch_rows if kind == "batch" else 1,
            "connections": 1,
            **_summary(key_runs),
        }
        for (key, kind), key_runs in runs.items()
    }
    histogram = {
        kind: {
            "p50_ms": _median([v["p50_ms"] for v in estimates if v["p50_ms"] is not None]),
            "rounds": estimates,
        }
        for kind, estimates in views.items()
    }
    return rows, histogram


def prepare(args: argparse.Namespace, champion: Champion, work: Path) -> Bench:
    """Request bodies for every server (the Spark model gets the encoded features it reads)."""
    generator = load_generator(args.load_generator, work)
    _progress(f"load generator: {generator.version}")
    passengers = passengers_from_csv(TEST_CSV, args.batch_rows)
    files = {name: work / f"{name}.json" for name in ("single", "batch", "spark-single", "spark-batch")}
    files["single"].write_text(json.dumps(passengers[0]))
    files["batch"].write_text(json.dumps({"passengers": passengers}))
    raw = "raw passenger JSON (11 Kaggle columns)"
    targets = {
        "trivial": Target(
            "trivial FastAPI floor",
            "raw passenger JSON (parsed, ignored)",
            "/predict",
            files["single"],
            files["batch"],
            "/predict",
        ),
        "lifeboat": Target(
            "lifeboat (ONNX, prediction log on)",
            raw,
            "/predict",
            files["single"],
            files["batch"],
            "/predict/batch",
        ),
    }
    if not args.skip_mlflow:
        columns = spark_input_columns(champion, work / "spark-model")
        encoded = encoded_records(champion, passengers, work / "serving-model")
        missing = sorted(set(columns) - set(encoded[0]))
        if missing:
            raise BenchError(f"the Spark model reads columns the encoding does not make: {missing}")
        records = [{c: row[c] for c in columns} for row in encoded]
        files["spark-single"].write_text(json.dumps({"dataframe_records": records[:1]}))
        files["spark-batch"].write_text(json.dumps({"dataframe_records": records}))
        targets["mlflow"] = Target(
            "mlflow models serve (Spark model)",
            f"encoded features as dataframe_records ({len(columns)} numbers, its VectorAssembler inputs)",
            "/invocations",
            files["spark-single"],
            files["spark-batch"],
            "/invocations",
        )
    logs = args.output.parent / "serving-logs"
    return Bench(args, generator, champion, work, logs, targets)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE, help="where to train the champion")
    parser.add_argument("--reuse-state", type=Path, default=None, help="serve this state folder's champion")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per measurement (medians reported)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each throughput run")
    parser.add_argument(
        "--latency-duration", type=float, default=10.0, help="seconds of each 1-connection run"
    )
    parser.add_argument("--connections", type=int, default=4, help="connections of the throughput runs")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="uvicorn workers to try")
    parser.add_argument("--batch-rows", type=int, default=1000)
    parser.add_argument("--load-generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--skip-mlflow", action="store_true", help="no mlflow models serve baseline")
    parser.add_argument("--mlflow-timeout", type=float, default=300.0, help="seconds to wait for its JVM")
    parser.add_argument("--in-process-requests", type=int, default=2000)
    parser.add_argument("--in-process-batches", type=int, default=100)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    if 1 not in args.workers:
        parser.error("--workers must include 1 (the baselines run with one worker)")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the markdown tables; write the JSON results."""
    args = parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for path in (TEST_CSV, TRAIN_CSV):
        if not path.is_file():
            raise BenchError(f"{path} is missing: run `make pull` (or `lifeboat pull`) first")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if args.reuse_state is None:
        train_champion(args.state_dir, args.output.parent / "serving-train.log")
    champion = find_champion(args.reuse_state or args.state_dir)
    _progress(f"champion: {champion.model_name} version {champion.version} ({champion.tracking_uri})")

    throughput: dict[str, Any] = {}
    ratios: dict[str, Any] = {}
    startup: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        bench = prepare(args, champion, Path(tmp))
        for workers in sorted(set(args.workers)):
            with contextlib.ExitStack() as stack:
                servers, started = start_servers(bench, stack, workers)
                startup.update(started)
                rows, ratios[f"w{workers}"] = measure_throughput(bench, servers)
                throughput.update(rows)
                if workers == 1:
                    latency, histogram = measure_latency(bench, servers)
        _progress("in-process server-side timing (servers stopped)")
        targets = bench.targets
        server_side = in_process(
            champion,
            targets["lifeboat"].single.read_bytes(),
            targets["lifeboat"].batch.read_bytes(),
            args.in_process_requests,
            args.in_process_batches,
        )
        inputs = {key: target.input for key, target in targets.items()}
        generator = {"name": bench.generator.name, "version": bench.generator.version}
    load_after = os.getloadavg()

    measured = {
        "single_row_p50_server_ms": server_side["single"]["p50_ms"],
        "vs_mlflow_throughput_ratio": ratios["w1"].get("vs_mlflow"),
        "vs_trivial_throughput_ratio": ratios["w1"]["vs_trivial"],
        "batch_1000_p50_server_ms": server_side["batch"]["p50_ms"] if args.batch_rows == 1000 else None,
    }
    verdicts = {
        name: {
            "target": TARGETS[name],
            "measured": value,
            "met": None
            if value is None
            else (value <= TARGETS[name] if name.endswith("_ms") else value >= TARGETS[name]),
        }
        for name, value in measured.items()
    }
    info = {**machine(), "loadavg_before": load_before, "loadavg_after": load_after}
    payload = {
        "benchmark": "serving",
        "created_at": started_at,
        "machine": info,
        "load_generator": generator,
        "settings": {
            "rounds": args.rounds,
            "duration_s": args.duration,
            "latency_duration_s": args.latency_duration,
            "connections": args.connections,
            "workers": sorted(set(args.workers)),
            "batch_rows": args.batch_rows,
            "uvicorn": "lifeboat and floor: --no-access-log --log-level warning; mlflow: its own defaults",
        },
        "champion": {**asdict(champion), "state_dir": str(champion.state_dir)},
        "inputs": inputs,
        "startup_seconds": startup,
        "throughput": throughput,
        "ratios": ratios,
        "latency": latency,
        "server_side_in_process": server_side,
        "server_side_histogram": histogram,
        "targets": verdicts,
    }
    print_tables(payload)
    args.output.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"\nwrote {args.output}")
    return 0


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def print_tables(payload: dict[str, Any]) -> None:
    """The markdown tables of one run (also what docs/benchmarks.md shows)."""
    settings, info = payload["settings"], payload["machine"]
    generator = payload["load_generator"]["version"]
    print(
        f"\n## Throughput: single-row POST, {settings['connections']} connections, "
        f"{settings['duration_s']:g} s x {settings['rounds']} rounds (medians); load generator: {generator}\n"
    )
    print("| server | input | workers | req/s | p50 ms | p99 ms | server CPU us/request | errors |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for row in payload["throughput"].values():
        print(
            f"| {row['server']} | {row['input']} | {row['workers']} | {_fmt(row['rps'], 0)} | "
            f"{_fmt(row['p50_ms'])} | {_fmt(row['p99_ms'])} | {_fmt(row.get('server_cpu_us'), 0)} | "
            f"{row['errors']} |"
        )
    print("\nlifeboat's req/s relative to the baselines (median of per-round ratios):\n")
    print("| workers | vs mlflow models serve | vs trivial floor |")
    print("|---:|---:|---:|")
    for key, value in payload["ratios"].items():
        vs_mlflow = f"{value['vs_mlflow']:,.0f}x" if value.get("vs_mlflow") else "-"
        print(f"| {key[1:]} | {vs_mlflow} | {value['vs_trivial']:.0%} |")

    in_process, histogram = payload["server_side_in_process"], payload["server_side_histogram"]
    print(
        f"\n## Latency: 1 connection, {settings['latency_duration_s']:g} s x {settings['rounds']} rounds "
        "(medians)\n"
    )
    print(
        "| server | rows per request | req/s | client p50 ms | client p99 ms "
        "| server p50 ms (in-process) | server p50 ms (histogram) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for key, row in payload["latency"].items():
        kind = key.rsplit("-", 1)[1]
        ours = key.startswith("lifeboat")
        print(
            f"| {row['server']} | {row['rows']} | {_fmt(row['rps'], 1)} | {_fmt(row['p50_ms'])} | "
            f"{_fmt(row['p99_ms'])} | {_fmt(in_process[kind]['p50_ms'] if ours else None)} | "
            f"{_fmt(histogram[kind]['p50_ms'] if ours else None)} |"
        )
    single, batch = in_process["single"], in_process["batch"]
    print(
        "\nServer-side, in-process (the whole ASGI app, no sockets; until the last byte of the answer): "
        f"/predict p50 {single['p50_ms']:.3f} ms, p99 {single['p99_ms']:.3f} ms "
        f"({single['requests']} requests); /predict/batch p50 {batch['p50_ms']:.2f} ms, "
        f"p99 {batch['p99_ms']:.2f} ms ({batch['requests']} batches; "
        f"{batch['p50_ms_incl_after_answer']:.2f} ms until the app returned, work after the answer included)."
    )
    log = in_process.get("prediction_log")
    if log:
        print(
            f"Prediction log during the in-process run: {log['written']:,} rows written in "
            f"{log['transactions']:,} transactions, {log['dropped']:,} dropped (queue full), "
            f"{log['failed']:,} failed."
        )

    print("\n## Targets\n")
    print("| target | measured | met |")
    print("|---|---:|---|")
    labels = {
        "single_row_p50_server_ms": "single-row p50 <= 2 ms server-side",
        "vs_mlflow_throughput_ratio": "throughput >= 50x mlflow models serve",
        "vs_trivial_throughput_ratio": "throughput >= 50 % of the trivial floor",
        "batch_1000_p50_server_ms": "1000-row batch p50 <= 20 ms server-side",
    }
    for name, label in labels.items():
        verdict = payload["targets"][name]
        value = verdict["measured"]
        if value is None:
            shown = "-"
        elif name.endswith("_ms"):
            shown = f"{value:.2f} ms"
        elif name == "vs_trivial_throughput_ratio":
            shown = f"{value:.0%}"
        else:
            shown = f"{value:,.0f}x"
        met = "-" if verdict["met"] is None else ("yes" if verdict["met"] else "NO")
        print(f"| {label} | {shown} | {met} |")
    load_before, load_after = (
        ", ".join(f"{v:.2f}" for v in info[k]) for k in ("loadavg_before", "loadavg_after")
    )
    print(
        f"\nMachine: {info['cpus']} CPUs ({info['cpu_model']}), {info['memory_gib']} GiB RAM, "
        f"Python {info['python']}, {info['platform']}; load average (1/5/15 min) {load_before} before, "
        f"{load_after} after."
    )


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"bench_serving: error: {exc}", file=sys.stderr)
        sys.exit(1)
