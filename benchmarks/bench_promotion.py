"""Promotion-to-served benchmark: from the champion alias change to the first answer of the new version.

Run: ``.venv/bin/python benchmarks/bench_promotion.py`` (``make bench-promotion``). Prints a markdown table
and writes ``bench-results/promotion.json``. Everything runs on 127.0.0.1 and every wait is bounded.

* **The registry.** A real ``mlflow server`` (SQLite backend, ``--serve-artifacts``, 1 worker) on a free
  loopback port, over a *copy* of the trained store (the state folder itself is never changed). The champion
  comes from a real retraining run as in ``bench_serving.py`` (``lifeboat train --families lr``, 2-4 min,
  into ``--state-dir``; ``--reuse-state DIR`` skips it). Its serving artifact (ONNX graph + feature spec) is
  downloaded and logged twice through that server with lifeboat's own ``log_serving_model`` and
  ``register_challenger``: two new registered versions, A and B, real and loadable, whose artifacts the
  server stores and proxies (``mlflow-artifacts:/``), as in ``make run``.
* **The prediction server.** ``uvicorn --factory serving.app:create_app``, 1 worker, pointed at the MLflow
  server (``bench_serving``'s uvicorn settings and environment).
* **A round.** A client thread POSTs one Kaggle passenger (``data/titanic/raw/test.csv``) to ``/predict``
  in a tight
  loop for the whole round. t0 is taken just before ``MlflowClient.set_registered_model_alias(model,
  "champion", v)``; the latency is the arrival of the first answer whose ``model_version`` is v, minus t0.
  Rounds alternate between A and B. Before the first round of each mode the benchmark waits until both
  servers are idle (< 10 % of a CPU over 1 s): a fresh ``mlflow server`` starts its job runner 10-20 s
  after it first answers, a start-up cost that is not part of a promotion on a running platform.
* **Two modes.** ``reload``: right after the alias change, ``POST /admin/reload`` with the Bearer token,
  through the DAG's own ``lifeboat.orchestration.retrain.reload_serving``; the server's alias poll is off
  (``LIFEBOAT_REGISTRY_POLL_SECONDS=0``), so the reload is the only way the server learns of v.
  ``poll``: no reload; the server polls the alias every ``--poll-seconds`` (default 1 s; the setting's default
  is 30 s, and the poll runs inside a sync loop that sleeps 0.5 s between steps). The pause between poll
  rounds gets a random (seeded) extra of up to one poll period, so the alias changes do not lock onto the
  poll's phase.
* **Also per round:** the alias call's own time, when the reload call returned, the server's load time
  (download + canary check, from its log), the answers given during the switch (by the old version), every
  non-200 answer and every old-version answer after the first new one (both expected 0: reported, not
  asserted).

Target (issue #7): alias change -> first answer from the new version <= 2 s, in the reload mode. Nothing is
asserted: the target is reported as met or not.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import secrets
import signal
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

# The sibling script (this file's folder is on sys.path when it runs): its helpers, not copies of them.
from bench_serving import (
    BIN,
    DEFAULT_STATE,
    HOST,
    TEST_CSV,
    TRAIN_CSV,
    BenchError,
    Champion,
    Server,
    _percentile,
    _tail,
    find_champion,
    free_port,
    lifeboat_env,
    machine,
    passengers_from_csv,
    process_tree_cpu_seconds,
    running,
    train_champion,
    uvicorn_command,
    wait_until,
)

from serving.champion_sync import SYNC_INTERVAL_SECONDS

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO_ROOT / "bench-results" / "promotion.json"
TARGET_SECONDS = 2.0
MODES = ("reload", "poll")
CHAMPION_ALIAS = "champion"
EXPERIMENT = "promotion-benchmark"
#: Keep the benchmark's own MLflow client calls bounded (MLflow retries 7 times with backoff by default).
CLIENT_LIMITS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
#: The line ``serving.champion_sync`` logs after every successful load.
LOADED_LINE = re.compile(
    r"serving (?P<model>\S+) version (?P<version>\S+) \(was (?P<old>\S+); "
    r"trigger (?P<trigger>\w+); loaded in (?P<seconds>[0-9.]+) s\)"
)


# --- the registry --------------------------------------------------------------------------------------


def copy_store(champion: Champion, destination: Path) -> Path:
    """A private copy of the trained SQLite store (its artifacts are only read: they stay where they are)."""
    source = champion.tracking_uri.removeprefix("sqlite:///")
    destination.mkdir(parents=True, exist_ok=True)
    target = destination / "mlflow.db"
    with (
        contextlib.closing(sqlite3.connect(source)) as src,
        contextlib.closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)
    return target


def mlflow_server_command(store: Path, artifacts: Path, port: int) -> list[str]:
    """``mlflow server`` as ``make run`` starts it: SQLite backend, artifact proxy, 1 worker, loopback."""
    return [
        str(BIN / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{store}",
        "--artifacts-destination",
        str(artifacts),
        "--serve-artifacts",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        "1",
    ]


def _mlflow_healthy(client: httpx.Client, server: Server) -> bool:
    return client.get(server.url("/health")).status_code == 200


def register_copies(champion: Champion, server: Server, copies: int, workdir: Path) -> list[str]:
    """Log the champion's serving artifact ``copies`` times through the server; register each as a version.

    Uses lifeboat's own ``log_serving_model`` and ``register_challenger`` (what the training job does), so
    each copy is a complete serving artifact stored by the server's artifact proxy. Returns the versions.
    """
    from mlflow.exceptions import MlflowException

    from lifeboat.registry.artifact import ArtifactError
    from lifeboat.registry.store import RegistryError

    try:
        return _register_copies(champion, server.url(""), copies, workdir)
    except (MlflowException, RegistryError, ArtifactError, OSError) as exc:
        raise BenchError(
            f"cannot register copies of {champion.model_name} version {champion.version} on the mlflow "
            f"server: {type(exc).__name__}: {exc}; its log:\n{_tail(server.log)}"
        ) from exc


def _register_copies(champion: Champion, tracking_uri: str, copies: int, workdir: Path) -> list[str]:
    """:func:`register_copies` itself (errors not translated)."""
    import mlflow
    import onnx

    from lifeboat.registry.artifact import ONNX_FILE, ServingModel
    from lifeboat.registry.store import (
        configure_mlflow,
        download_serving_model,
        log_serving_model,
        register_challenger,
    )
    from lifeboat.settings import Settings

    settings = Settings(
        mlflow_tracking_uri=tracking_uri,
        experiment_name=EXPERIMENT,
        model_name=champion.model_name,
        state_dir=workdir / "client-state",
    )
    configure_mlflow(settings)
    local = download_serving_model(champion.model_name, champion.version, workdir / "champion-artifact")
    model = ServingModel.load(local)  # with the canary check: only a servable artifact is copied
    if not (local / ONNX_FILE).is_file():
        raise BenchError(f"{champion.model_name} version {champion.version} has no {ONNX_FILE} in {local}")
    graph = onnx.load(str(local / ONNX_FILE))
    versions = []
    for copy in range(1, copies + 1):
        with mlflow.start_run(run_name=f"promotion-bench-copy-{copy}"):
            uri = log_serving_model(
                graph, model.encoding, {**model.info, "copy_of_version": champion.version}
            )
        tags = {"benchmark": "promotion", "copy_of_version": champion.version}
        versions.append(str(register_challenger(uri, champion.model_name, tags).version))
    return versions


# --- the client loop -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One answer of ``/predict``: when it arrived (perf_counter), its status, the version that answered."""

    at: float
    status: int
    version: str | None
    error: str | None = None


@dataclass
class PredictLoop:
    """POST one passenger to ``/predict`` back to back in a thread, recording every answer.

    ``seen`` is set by the first 200 answer from ``target``; ``first`` by the first answer of all.
    """

    url: str
    body: bytes
    target: str
    interval: float
    answers: list[Answer] = field(default_factory=list)
    first: threading.Event = field(default_factory=threading.Event)
    seen: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the loop (a daemon thread: an interrupted run never waits for it)."""
        self._thread = threading.Thread(target=self._run, name="predict-loop", daemon=True)
        self._thread.start()

    def stop(self) -> list[Answer]:
        """Stop the loop (bounded wait) and return its answers, oldest first."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        return list(self.answers)

    def _run(self) -> None:
        headers = {"Content-Type": "application/json"}
        with httpx.Client(timeout=10.0) as client:
            while not self._stop.is_set():
                try:
                    response = client.post(self.url, content=self.body, headers=headers)
                    version = _answer_version(response)
                    answer = Answer(time.perf_counter(), response.status_code, version)
                except httpx.HTTPError as exc:
                    answer = Answer(time.perf_counter(), 0, None, f"{type(exc).__name__}: {exc}")
                self.answers.append(answer)
                self.first.set()
                if answer.status == 200 and answer.version == self.target:
                    self.seen.set()
                if self.interval > 0:
                    self._stop.wait(self.interval)


def _answer_version(response: httpx.Response) -> str | None:
    with contextlib.suppress(ValueError, AttributeError):
        version = response.json().get("model_version")
        return None if version is None else str(version)
    return None


# --- rounds ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Round:
    """One alias change and what the client saw until the new version answered."""

    mode: str
    round: int
    from_version: str
    to_version: str
    latency_s: float
    alias_call_s: float
    reload_returned_s: float | None
    reload_status: int | None
    server_load_s: float | None
    server_trigger: str | None
    loadavg_1min: float
    answers_total: int
    answers_during_switch: int
    non_200: int
    non_200_statuses: dict[str, int]
    old_after_new: int


@dataclass(frozen=True)
class RoundSetup:
    """What every round of one mode needs."""

    mode: str
    server: Server
    registry: Server
    model_name: str
    token: str
    body: bytes
    switch_timeout: float
    interval: float
    tail_seconds: float = 0.2


@dataclass
class Switch:
    """The benchmark's side of one alias change (times in seconds from t0)."""

    t0: float
    alias_call_s: float
    log_offset: int
    loadavg_1min: float
    reload_returned_s: float | None = None
    reload_status: int | None = None


def run_round(setup: RoundSetup, number: int, current: str, target: str) -> Round:
    """Move ``champion`` from ``current`` to ``target``; time it until ``/predict`` answers from it."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri = setup.registry.url("")
    registry = MlflowClient(tracking_uri=uri, registry_uri=uri)
    log_offset = setup.server.log.stat().st_size if setup.server.log.exists() else 0
    loop = PredictLoop(setup.server.url("/predict"), setup.body, target, setup.interval)
    loop.start()
    try:
        if not loop.first.wait(15):
            raise BenchError(f"/predict did not answer within 15 s:\n{_tail(setup.server.log)}")
        t0 = time.perf_counter()
        try:
            registry.set_registered_model_alias(setup.model_name, CHAMPION_ALIAS, target)
        except MlflowException as exc:
            raise BenchError(
                f"cannot point {setup.model_name}@{CHAMPION_ALIAS} at version {target}: {exc}; "
                f"mlflow server log:\n{_tail(setup.registry.log)}"
            ) from exc
        switch = Switch(t0, time.perf_counter() - t0, log_offset, os.getloadavg()[0])
        if setup.mode == "reload":
            switch.reload_status = reload(setup, target)
            switch.reload_returned_s = time.perf_counter() - t0
        remaining = setup.switch_timeout - (time.perf_counter() - t0)
        if not loop.seen.wait(max(0.0, remaining)):
            raise BenchError(
                f"{setup.mode} round {number}: version {target} not served {setup.switch_timeout:g} s after "
                f"the alias change (last answer: {loop.answers[-1] if loop.answers else None}); server log:\n"
                f"{_tail(setup.server.log)}"
            )
        time.sleep(setup.tail_seconds)  # a little longer: would an answer from the old version follow?
    finally:
        answers = loop.stop()
    return _round_result(setup, number, current, target, switch, answers)


def reload(setup: RoundSetup, target: str) -> int:
    """``POST /admin/reload`` by the DAG's ``reload_serving`` (which then checks ``/model``); its status."""
    from lifeboat.orchestration.retrain import ServingReloadError, reload_serving
    from lifeboat.settings import Settings

    settings = Settings(
        serving_url=setup.server.url(""),
        reload_token=setup.token,
        reload_wait_seconds=setup.switch_timeout,
        model_name=setup.model_name,
    )
    try:
        result = reload_serving(settings, target, poll_seconds=0.05, timeout=setup.switch_timeout)
    except ServingReloadError as exc:
        raise BenchError(f"POST /admin/reload failed: {exc}; server log:\n{_tail(setup.server.log)}") from exc
    return int(result["reload_status"])


def _round_result(
    setup: RoundSetup, number: int, current: str, target: str, switch: Switch, answers: list[Answer]
) -> Round:
    """The round's figures from the client's answers and the server's log."""
    t0 = switch.t0
    first_new = next(a for a in answers if a.at >= t0 and a.status == 200 and a.version == target)
    failed = [a for a in answers if a.status != 200]
    statuses: dict[str, int] = {}
    for answer in failed:
        key = str(answer.status) if answer.status else "no answer"
        statuses[key] = statuses.get(key, 0) + 1
    load = server_load(setup.server.log, switch.log_offset, target)
    return Round(
        mode=setup.mode,
        round=number,
        from_version=current,
        to_version=target,
        latency_s=first_new.at - t0,
        alias_call_s=switch.alias_call_s,
        reload_returned_s=switch.reload_returned_s,
        reload_status=switch.reload_status,
        server_load_s=load[0] if load else None,
        server_trigger=load[1] if load else None,
        loadavg_1min=switch.loadavg_1min,
        answers_total=len(answers),
        answers_during_switch=sum(1 for a in answers if t0 <= a.at < first_new.at),
        non_200=len(failed),
        non_200_statuses=statuses,
        old_after_new=sum(
            1 for a in answers if a.at > first_new.at and a.status == 200 and a.version != target
        ),
    )


def server_load(log: Path, log_offset: int, version: str) -> tuple[float, str] | None:
    """(seconds, trigger) of the load of ``version`` the server logged after ``log_offset``, or None."""
    try:
        with log.open("rb") as handle:
            handle.seek(log_offset)
            text = handle.read().decode(errors="replace")
    except OSError:
        return None
    found = None
    for match in LOADED_LINE.finditer(text):
        if match["version"] == version:
            found = (float(match["seconds"]), match["trigger"])
    return found


# --- modes -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bench:
    """The fixed inputs of one run."""

    args: argparse.Namespace
    champion: Champion
    registry: Server
    versions: list[str]
    work: Path
    logs: Path
    token: str
    body: bytes
    client_only_env: frozenset[str]


def lifeboat_server_env(bench: Bench, mode: str) -> dict[str, str]:
    """``bench_serving``'s lifeboat environment on the MLflow server, the reload token, the mode's poll."""
    remote = replace(bench.champion, tracking_uri=bench.registry.url(""))
    env = lifeboat_env(remote, bench.work / f"serve-{mode}")
    for key in bench.client_only_env:
        env.pop(key, None)
    env["LIFEBOAT_REGISTRY_POLL_SECONDS"] = "0" if mode == "reload" else f"{bench.args.poll_seconds:g}"
    env["LIFEBOAT_RELOAD_TOKEN"] = bench.token
    return env


def set_champion(tracking_uri: str, model_name: str, version: str) -> None:
    """Point ``champion`` at ``version`` (the starting point of the rounds)."""
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri).set_registered_model_alias(
        model_name, CHAMPION_ALIAS, version
    )


def settle(servers: list[Server], busy_fraction: float, timeout: float, window: float = 1.0) -> float:
    """Wait until every server's processes use less than ``busy_fraction`` of a CPU over ``window`` seconds.

    A freshly started ``mlflow server`` starts its job runner 10-20 s after it answers, and that start-up
    (not a promotion) would otherwise be measured. Returns the seconds waited; at ``timeout`` it goes on.
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        used = _cpu_used(servers, window)
        if used is None or all(seconds < busy_fraction * window for seconds in used):
            return time.monotonic() - started
    _progress(f"the servers are still busy after {timeout:.0f} s: measuring anyway")
    return time.monotonic() - started


def _cpu_used(servers: list[Server], window: float) -> list[float] | None:
    """CPU seconds each server's processes used during ``window`` seconds (None without Linux's /proc)."""
    before = [process_tree_cpu_seconds(s.process.pid) for s in servers]
    time.sleep(window)
    after = [process_tree_cpu_seconds(s.process.pid) for s in servers]
    used = []
    for first, last in zip(before, after, strict=True):
        if first is None or last is None:
            return None
        used.append(last - first)
    return used


def champion_version(tracking_uri: str, model_name: str) -> str:
    """The version ``champion`` points to in the benchmark's registry."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    return str(client.get_model_version_by_alias(model_name, CHAMPION_ALIAS).version)


def run_mode(bench: Bench, mode: str) -> dict[str, Any]:
    """Start a prediction server for ``mode`` and run the rounds, alternating between the two versions."""
    args, name = bench.args, bench.champion.model_name
    rng = random.Random(args.seed)
    current = champion_version(bench.registry.url(""), name)
    port = free_port()
    command = uvicorn_command("serving.app:create_app", port, 1)
    label = f"lifeboat ({mode})"
    env = lifeboat_server_env(bench, mode)
    with running(
        f"lifeboat-{mode}", label, "one Kaggle passenger", 1, command, env, port, bench.logs
    ) as server:

        def ready(client: httpx.Client, server: Server) -> bool:
            return bool(client.get(server.url("/ready")).json().get("model_version") == current)

        startup = wait_until(server, ready, args.start_timeout)
        _progress(f"{label} serves version {current} (ready in {startup:.1f} s); log: {server.log}")
        settled = settle([bench.registry, server], args.settle_cpu, args.settle_timeout)
        _progress(f"servers idle after {settled:.1f} s (< {args.settle_cpu:.0%} of a CPU each)")
        setup = RoundSetup(
            mode,
            server,
            bench.registry,
            name,
            bench.token,
            bench.body,
            args.switch_timeout,
            args.interval,
        )
        rounds = []
        for number in range(1, args.rounds + 1):
            target = bench.versions[1] if current == bench.versions[0] else bench.versions[0]
            result = run_round(setup, number, current, target)
            rounds.append(result)
            load = "-" if result.server_load_s is None else f"{result.server_load_s:.2f} s"
            _progress(
                f"{mode} round {number}: {current} -> {target} served after {result.latency_s:.3f} s "
                f"(alias call {result.alias_call_s * 1000:.0f} ms, server load {load}, "
                f"{result.answers_during_switch} answers during the switch, {result.non_200} non-200)"
            )
            current = target
            # In the poll mode a random extra pause, so that alias changes do not lock onto the poll's phase.
            jitter = rng.uniform(0, args.poll_seconds + SYNC_INTERVAL_SECONDS) if mode == "poll" else 0.0
            time.sleep(args.pause + jitter)
    return {
        "poll_seconds": 0.0 if mode == "reload" else args.poll_seconds,
        "startup_seconds": startup,
        "settle_seconds": settled,
        "summary": summarize(rounds),
        "rounds": [asdict(r) for r in rounds],
    }


def summarize(rounds: list[Round]) -> dict[str, Any]:
    """Median / p90 / max / min of the latency, medians of its parts, totals of the answers."""
    latencies = sorted(r.latency_s for r in rounds)
    statuses: dict[str, int] = {}
    for result in rounds:
        for status, count in result.non_200_statuses.items():
            statuses[status] = statuses.get(status, 0) + count
    return {
        "rounds": len(rounds),
        "median_s": statistics.median(latencies),
        "p90_s": _percentile(latencies, 90),
        "max_s": latencies[-1],
        "min_s": latencies[0],
        "alias_call_ms_median": statistics.median(r.alias_call_s for r in rounds) * 1000,
        "reload_returned_s_median": _median_or_none([r.reload_returned_s for r in rounds]),
        "server_load_s_median": _median_or_none([r.server_load_s for r in rounds]),
        "answers_total": sum(r.answers_total for r in rounds),
        "answers_during_switch": sum(r.answers_during_switch for r in rounds),
        "non_200": sum(r.non_200 for r in rounds),
        "non_200_statuses": statuses,
        "old_after_new": sum(r.old_after_new for r in rounds),
    }


def _median_or_none(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


# --- the benchmark ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def registry(
    champion: Champion, work: Path, logs: Path, timeout: float, drop: frozenset[str]
) -> Iterator[Server]:
    """A real ``mlflow server`` over a copy of the champion's store; stopped on exit."""
    store = copy_store(champion, work / "store")
    port = free_port()
    command = mlflow_server_command(store, work / "store" / "mlartifacts", port)
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    with running("mlflow", "mlflow server", "-", 1, command, env, port, logs) as server:
        started = wait_until(server, _mlflow_healthy, timeout)
        _progress(f"mlflow server on {server.url('')} (healthy in {started:.1f} s); log: {server.log}")
        yield server


def _progress(message: str) -> None:
    print(f"[bench_promotion {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE, help="where to train the champion")
    parser.add_argument("--reuse-state", type=Path, default=None, help="use this state folder's champion")
    parser.add_argument(
        "--rounds", type=int, default=10, help="alias changes per mode (alternating versions)"
    )
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="which modes to run")
    parser.add_argument(
        "--poll-seconds", type=float, default=1.0, help="LIFEBOAT_REGISTRY_POLL_SECONDS of the poll mode"
    )
    parser.add_argument(
        "--interval", type=float, default=0.0, help="pause between two /predict calls (0: back to back)"
    )
    parser.add_argument(
        "--switch-timeout", type=float, default=60.0, help="seconds a round may take before it fails"
    )
    parser.add_argument(
        "--pause", type=float, default=0.5, help="seconds between rounds (poll mode: plus a random jitter)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the poll mode's jitter")
    parser.add_argument(
        "--settle-cpu",
        type=float,
        default=0.1,
        help="before the rounds, wait until each server uses less than this share of a CPU",
    )
    parser.add_argument("--settle-timeout", type=float, default=90.0, help="at most this many seconds")
    parser.add_argument("--start-timeout", type=float, default=120.0, help="seconds to wait for each server")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.poll_seconds <= 0:
        parser.error("--poll-seconds must be positive (0 turns the poll off)")
    if min(args.interval, args.pause) < 0 or min(args.switch_timeout, args.start_timeout) <= 0:
        parser.error("--interval and --pause must be >= 0, the timeouts > 0")
    return args


def _limit_client_calls() -> frozenset[str]:
    """Bound this process's MLflow HTTP calls; return the variables set here (kept from the servers)."""
    added = frozenset(k for k in CLIENT_LIMITS if k not in os.environ)
    for key in added:
        os.environ[key] = CLIENT_LIMITS[key]
    return added


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the markdown tables; write the JSON results."""
    args = parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    client_only = _limit_client_calls()
    needed = [TEST_CSV] + ([TRAIN_CSV] if args.reuse_state is None else [])
    for path in needed:
        if not path.is_file():
            raise BenchError(f"{path} is missing: run `make pull` (or `lifeboat pull`) first")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    logs = args.output.parent / "promotion-logs"
    load_before = os.getloadavg()
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if args.reuse_state is None:
        train_champion(args.state_dir, args.output.parent / "promotion-train.log")
    champion = find_champion(args.reuse_state or args.state_dir)
    _progress(f"champion: {champion.model_name} version {champion.version} ({champion.tracking_uri})")
    body = json.dumps(passengers_from_csv(TEST_CSV, 1)[0]).encode()

    with tempfile.TemporaryDirectory(prefix="bench-promotion-") as tmp:
        work = Path(tmp)
        with registry(champion, work, logs, args.start_timeout, client_only) as mlflow_server:
            tracking_uri = mlflow_server.url("")
            with contextlib.redirect_stdout(sys.stderr):  # MLflow prints run links: stdout is for the tables
                versions = register_copies(champion, mlflow_server, 2, work)
            _progress(f"registered versions {versions[0]} and {versions[1]} (copies of {champion.version})")
            set_champion(tracking_uri, champion.model_name, versions[0])
            bench = Bench(
                args,
                champion,
                mlflow_server,
                versions,
                work,
                logs,
                secrets.token_urlsafe(24),
                body,
                client_only,
            )
            modes = {mode: run_mode(bench, mode) for mode in args.modes}
    load_after = os.getloadavg()

    reload_summary = modes["reload"]["summary"] if "reload" in modes else None
    target = {
        "seconds": TARGET_SECONDS,
        "mode": "reload",
        "median_s": reload_summary["median_s"] if reload_summary else None,
        "max_s": reload_summary["max_s"] if reload_summary else None,
        "met_median": reload_summary["median_s"] <= TARGET_SECONDS if reload_summary else None,
        "met_every_round": reload_summary["max_s"] <= TARGET_SECONDS if reload_summary else None,
    }
    payload = {
        "benchmark": "promotion",
        "created_at": started_at,
        "machine": {**machine(), "loadavg_before": load_before, "loadavg_after": load_after},
        "settings": {
            "rounds": args.rounds,
            "modes": args.modes,
            "poll_seconds": args.poll_seconds,
            "predict_interval_s": args.interval,
            "pause_s": args.pause,
            "poll_jitter_s": f"uniform 0..{args.poll_seconds + SYNC_INTERVAL_SECONDS:g} (seed {args.seed})",
            "settle": f"< {args.settle_cpu:g} CPU per server over 1 s, at most {args.settle_timeout:g} s",
            "switch_timeout_s": args.switch_timeout,
            "workers": 1,
            "uvicorn": "--no-access-log --log-level warning (bench_serving's settings)",
        },
        "champion": {**asdict(champion), "state_dir": str(champion.state_dir)},
        "versions": versions,
        "passenger": json.loads(body),
        "modes": modes,
        "target": target,
    }
    print_tables(payload)
    args.output.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"\nwrote {args.output}")
    return 0


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def print_tables(payload: dict[str, Any]) -> None:
    """The markdown tables of one run (also what docs/benchmarks.md shows)."""
    settings, info = payload["settings"], payload["machine"]
    a, b = payload["versions"]
    print(
        f"\n## Promotion to served: alias change -> first /predict answer from the new version "
        f"({settings['rounds']} rounds per mode, versions {a} <-> {b}, 1 uvicorn worker)\n"
    )
    print(
        "| mode | rounds | median s | p90 s | max s | min s | alias call ms | reload returned s "
        "| server load s | answers during switch | non-200 | old after new |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for mode, result in payload["modes"].items():
        s = result["summary"]
        label = (
            "reload (POST /admin/reload)"
            if mode == "reload"
            else f"poll only (every {result['poll_seconds']:g} s)"
        )
        print(
            f"| {label} | {s['rounds']} | {_fmt(s['median_s'])} | {_fmt(s['p90_s'])} | {_fmt(s['max_s'])} | "
            f"{_fmt(s['min_s'])} | {_fmt(s['alias_call_ms_median'], 0)} | "
            f"{_fmt(s['reload_returned_s_median'])} | "
            f"{_fmt(s['server_load_s_median'], 2)} | {s['answers_during_switch']:,} | {s['non_200']} | "
            f"{s['old_after_new']} |"
        )
    print(
        "\nmedians over rounds for the alias call, the reload call and the server's load (download + canary, "
        "from its log); answer counts are totals over rounds."
    )
    target = payload["target"]
    if target["median_s"] is not None:
        print("\n## Target (issue #7)\n")
        print("| target | measured | met |")
        print("|---|---:|---|")
        for label, key, met in (
            (
                "alias change -> first answer of the new version <= 2 s (reload, median)",
                "median_s",
                "met_median",
            ),
            ("the same, every round (reload, max)", "max_s", "met_every_round"),
        ):
            print(f"| {label} | {target[key]:.3f} s | {'yes' if target[met] else 'NO'} |")
    load_before, load_after = (
        ", ".join(f"{v:.2f}" for v in info[k]) for k in ("loadavg_before", "loadavg_after")
    )
    print(
        f"\nMachine: {info['cpus_usable']} usable CPUs of {info['cpus']} ({info['cpu_model']}), "
        f"{info['memory_gib']} GiB RAM, Python {info['python']}, {info['platform']}; load average "
        f"(1/5/15 min) {load_before} before, {load_after} after."
    )


def _terminate(signum: int, frame: object) -> None:
    print("bench_promotion: terminated (stopping the servers)", file=sys.stderr, flush=True)
    raise SystemExit(128 + signum)  # unwinds the with-blocks: every server started here is stopped


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminate)
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"bench_promotion: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("bench_promotion: interrupted (servers stopped)", file=sys.stderr)
        sys.exit(130)
