"""Benchmark of one full `titanic_retrain` run on the embedded stack, broken down by task.

Run: ``.venv/bin/python benchmarks/bench_dag.py`` (``make bench``). Starts the same stack as ``make run``
(MLflow server, prediction server, ``airflow standalone``) on free loopback ports, its state in a temporary
folder, triggers one run with the default settings (891 rows, lr + rf + gbt, 5 CV folds, Spark local[*]),
and measures:

* per task: queued → start → end, from Airflow's task instances (duration as Airflow reports it);
* trigger → served: from the REST call that creates the run to the first moment the prediction server's
  ``/model`` reports the new champion (polled every 0.5 s);
* DAG parse time: ``DagBag`` over dags/ in a fresh interpreter (median of N), excluding Airflow's own import;
* the event-driven run (issue 12, after the first run unless ``--no-event``): ``lifeboat new-batch`` adds a
  drifted labelled batch (validate, DVC add + push, an event on ``<dataset>_incoming``) to the stack's
  incoming folder, made a git + DVC repository with a local remote. Measured from the command's start to
  its return, to the asset-triggered run appearing in the REST API (polled every 0.5 s), to that run
  finishing and, when its gate promotes, to the new champion answering on the prediction server.

Target (issue #5): trigger → served <= 4 minutes on a 2-core machine. Prints a markdown table and writes
``bench-results/dag.json``. ``--families lr`` (or ``LIFEBOAT_*`` variables) changes the configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from lifeboat.settings import Settings
from lifeboat.stack import embedded as stack

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO_ROOT / "bench-results" / "dag.json"
TARGET_SECONDS = 240.0


def free_port() -> int:
    """A free TCP port on loopback."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def parse_seconds(rounds: int, data_root: Path | None = None) -> list[float]:
    """Time DagBag over dags/ in fresh interpreters (Airflow imported before the clock starts).

    ``data_root`` (default: the repository's data/) decides how many datasets, hence DAGs, the file builds.
    """
    code = (
        "import time, os;"
        "from airflow.dag_processing.dagbag import DagBag;"
        "t = time.perf_counter();"
        f"b = DagBag(dag_folder={str(REPO_ROOT / 'dags')!r});"
        "assert not b.import_errors, b.import_errors;"
        "print(time.perf_counter() - t)"
    )
    seconds = []
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "AIRFLOW_HOME": home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
        if data_root is not None:
            env["LIFEBOAT_DATA_ROOT"] = str(data_root)
        for _ in range(rounds):
            done = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            )
            seconds.append(float(done.stdout.strip().splitlines()[-1]))
    return seconds


def parse_by_dataset_count(rounds: int, counts: tuple[int, ...] = (1, 3)) -> dict[int, list[float]]:
    """Parse times with 1 and 3 datasets: copies of Titanic's spec under a temporary data root, interleaved
    round by round so that the machine's load weighs on both alike."""
    spec = (REPO_ROOT / "data" / "titanic" / "dataset.yaml").read_text()
    results: dict[int, list[float]] = {n: [] for n in counts}
    with tempfile.TemporaryDirectory() as tmp:
        roots = {}
        for n in counts:
            root = Path(tmp) / f"root{n}"
            for i in range(n):
                name = "titanic" if i == 0 else f"titanic_copy{i}"
                (root / name).mkdir(parents=True)
                (root / name / "dataset.yaml").write_text(spec.replace("name: titanic", f"name: {name}", 1))
            roots[n] = root
        for _ in range(rounds):
            for n in counts:
                results[n] += parse_seconds(1, roots[n])
    return results


def _watch_served(
    url: str, dataset: str, before: str | None, seen: dict[str, Any], stop: threading.Event
) -> None:
    """Poll the Open Inference Protocol metadata of ``dataset`` until it serves a version other than
    ``before``."""
    while not stop.is_set():
        try:
            response = httpx.get(f"{url}/v2/models/{dataset}", timeout=5)
            if response.status_code == 200:
                version = str(response.json()["versions"][0])
                if version != before:
                    seen["version"] = version
                    seen["at"] = time.monotonic()
                    return
        except httpx.HTTPError:
            pass
        stop.wait(0.5)


def _dvc_repository(root: Path) -> None:
    """``root`` as a git + DVC repository whose default remote is ``root/remote`` (like data/ and its bundled
    remote), so that ``new-batch`` can add and push without touching the project's repository."""
    dvc = str(Path(sys.executable).parent / "dvc")
    for command in (["git", "init", "-q"], [dvc, "init", "-q"]):
        subprocess.run(command, cwd=root, check=True, capture_output=True)
    (root / ".dvc" / "config").write_text(
        "[core]\n    analytics = false\n    check_update = false\n    autostage = false\n"
        "    remote = bundled\n['remote \"bundled\"']\n    url = ../remote\n"
    )


def event_run(
    settings: Settings, client: Any, dag_id: str, served_before: str | None, timeout: float
) -> dict[str, Any]:
    """A drifted batch added with ``lifeboat new-batch`` → the run it starts → (if promoted) served."""
    from lifeboat.stack.processes import StackPaths

    dataset = settings.dataset
    paths = StackPaths.from_settings(settings)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LIFEBOAT_")},
        **stack.lifeboat_env(settings, REPO_ROOT, paths, stack.load_secrets(paths)),
    }
    _dvc_repository(settings.incoming_dir.parent)
    before = {r["dag_run_id"] for r in client.runs(dag_id, limit=100)}
    seen: dict[str, Any] = {}
    stop = threading.Event()
    watcher = threading.Thread(
        target=_watch_served, args=(stack.urls(settings)["serving"], dataset, served_before, seen, stop)
    )
    watcher.start()
    command = [str(Path(sys.executable).parent / "lifeboat"), "new-batch", "--dataset", dataset]
    command += ["--rows", "400", "--drift", "Age+15,Fare*3", "--seed", "5", "--name", "bench-event.csv"]
    started = time.monotonic()
    try:
        added = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
        returned = time.monotonic()
        if added.returncode != 0:
            raise RuntimeError(f"lifeboat new-batch failed: {added.stderr[-2000:]}")
        deadline = returned + 300
        while not (new := [r for r in client.runs(dag_id, limit=100) if r["dag_run_id"] not in before]):
            if time.monotonic() > deadline:
                raise RuntimeError("no run started within 300 s of the asset event")
            time.sleep(0.5)
        appeared = time.monotonic()
        run_id = new[0]["dag_run_id"]
        result = client.wait_for_run(dag_id, run_id, timeout=timeout)
        finished = time.monotonic()
        gate = client.xcom(dag_id, run_id, "evaluate_gate")
        promoted = isinstance(gate, dict) and gate.get("passed") is True
        if promoted:
            watcher.join(timeout=60)
    finally:
        stop.set()
        watcher.join(timeout=5)
    return {
        "run_id": run_id,
        "run_type": new[0].get("run_type"),
        "state": result.get("state"),
        "promoted": promoted,
        "gate_reasons": gate.get("reasons") if isinstance(gate, dict) else None,
        "command_seconds": round(returned - started, 1),
        "to_run_started_seconds": round(appeared - started, 1),
        "to_run_finished_seconds": round(finished - started, 1),
        "to_served_seconds": round(seen["at"] - started, 1) if "at" in seen else None,
        "served_version": seen.get("version"),
    }


def run(
    families: list[str] | None, timeout: float, dataset: str = "titanic", event: bool = True
) -> dict[str, Any]:
    """Start the stack, run ``<dataset>_retrain`` once (then the event-driven run unless ``event`` is false),
    stop the stack; return the measurements."""
    dag_id = f"{dataset}_retrain"
    with tempfile.TemporaryDirectory(prefix="lifeboat-bench-dag-") as tmp:
        root = Path(tmp)
        (root / "incoming").mkdir()
        settings = Settings(
            dataset=dataset,
            data_root=REPO_ROOT / "data",
            state_dir=root / "state",
            incoming_dir=root / "incoming",
            airflow_port=free_port(),
            mlflow_port=free_port(),
            serving_port=free_port(),
        )
        extra = {"LIFEBOAT_MODEL_FAMILIES": json.dumps(families)} if families else {}
        started = time.monotonic()
        try:
            stack.up(settings, REPO_ROOT, say=lambda line: print(line, file=sys.stderr), extra_env=extra)
            stack_seconds = time.monotonic() - started
            urls = stack.urls(settings)
            with stack.airflow_client(settings) as client:
                client.wait_for_dag(dag_id)
                client.set_paused(dag_id, False)
                seen: dict[str, Any] = {}
                stop = threading.Event()
                watcher = threading.Thread(
                    target=_watch_served, args=(urls["serving"], dataset, None, seen, stop)
                )
                watcher.start()
                triggered = time.monotonic()
                run_id = client.trigger(dag_id, note="benchmarks/bench_dag.py")
                result = client.wait_for_run(dag_id, run_id, timeout=timeout)
                finished = time.monotonic()
                watcher.join(timeout=30)
                stop.set()
                tasks = client.task_states(dag_id, run_id)
                measured_event = (
                    event_run(settings, client, dag_id, seen.get("version"), timeout) if event else None
                )
        finally:
            stack.down(settings, say=lambda line: print(line, file=sys.stderr))
    return {
        "dataset": dataset,
        "dag_id": dag_id,
        "run_id": run_id,
        "state": result.get("state"),
        "stack_start_seconds": round(stack_seconds, 1),
        "trigger_to_finished_seconds": round(finished - triggered, 1),
        "trigger_to_served_seconds": round(seen["at"] - triggered, 1) if "at" in seen else None,
        "served_version": seen.get("version"),
        "tasks": [
            {"task_id": t.task_id, "state": t.state, "seconds": round(t.duration, 1) if t.duration else None}
            for t in tasks
        ],
        "event": measured_event,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=None, help="comma-separated model families (default: settings)")
    parser.add_argument("--dataset", default="titanic", help="the dataset whose DAG runs (default: titanic)")
    parser.add_argument("--parse-rounds", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--no-event", action="store_true", help="skip the event-driven run (new-batch → run)")
    parser.add_argument(
        "--parse-only", action="store_true", help="only the DAG parse time with 1 and 3 datasets (no stack)"
    )
    args = parser.parse_args(argv)

    if args.parse_only:
        by_count = parse_by_dataset_count(args.parse_rounds)
        medians = {n: statistics.median(v) for n, v in by_count.items()}
        print("| datasets | DAGs | parse median (s) | all rounds (s) |\n|---|---|---|---|")
        for n, values in by_count.items():
            print(f"| {n} | {2 * n} | {medians[n]:.3f} | {', '.join(f'{v:.3f}' for v in values)} |")
        print(
            f"\n3 datasets / 1 dataset: {medians[3] / medians[1]:.2f}x; load average {os.getloadavg()[0]:.1f}"
        )
        return 0

    parse = parse_seconds(args.parse_rounds)
    families = args.families.split(",") if args.families else None
    measured = run(families, args.timeout, args.dataset, event=not args.no_event)
    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
        "families": families or Settings().model_families,
        "dag_parse_seconds": {
            "median": round(statistics.median(parse), 3),
            "all": [round(s, 3) for s in parse],
        },
        **measured,
        "target_trigger_to_served_seconds": TARGET_SECONDS,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))

    families_text = ", ".join(report["families"])
    print(f"\n### One `{report['dag_id']}` run ({families_text}; run state: {report['state']})\n")
    print("| task | state | seconds |\n|---|---|---|")
    for task in report["tasks"]:
        seconds = task["seconds"] if task["seconds"] is not None else "-"
        print(f"| {task['task_id']} | {task['state']} | {seconds} |")
    served = report["trigger_to_served_seconds"]
    print(
        f"\ntrigger → new champion served: {served} s (target ≤ {TARGET_SECONDS:.0f} s); "
        f"trigger → run finished: {report['trigger_to_finished_seconds']} s; "
        f"stack start: {report['stack_start_seconds']} s; "
        f"DAG parse median {report['dag_parse_seconds']['median']} s; "
        f"load average at the end {report['machine']['load'][0]:.1f}"
    )
    event = report["event"]
    if event is not None:
        outcome = (
            f"new champion v{event['served_version']} served after {event['to_served_seconds']} s"
            if event["promoted"]
            else f"the gate kept the champion ({'; '.join(event['gate_reasons'] or [])})"
        )
        print(
            f"\n`lifeboat new-batch` (drifted, 400 rows) → command returned {event['command_seconds']} s → "
            f"{event['run_type']} run started {event['to_run_started_seconds']} s → run {event['state']} "
            f"{event['to_run_finished_seconds']} s; {outcome}"
        )
        if event["state"] != "success":
            return 1
    return 0 if report["state"] == "success" and served is not None else 1


if __name__ == "__main__":
    sys.exit(main())
