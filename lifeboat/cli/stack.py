"""``lifeboat up``, ``down``, ``status`` and ``trigger``: the embedded stack that ``make run`` starts."""

from __future__ import annotations

import argparse
import json
from typing import Any

from lifeboat.cli import EXIT_FAILURE, EXIT_OK, arg, command
from lifeboat.data import versioning as data
from lifeboat.settings import get_settings


@command(
    "up",
    "start MLflow, the prediction server and Airflow on loopback, then run the retraining DAG and follow it",
    arg("--trigger", action="store_true", help="trigger a new run even if the DAG has run before"),
    arg("--no-trigger", action="store_true", help="only start the services and unpause the DAGs"),
    arg("--timeout", type=float, default=1800.0, help="seconds to wait for the run (default: 1800)"),
)
def _up(args: argparse.Namespace) -> int:
    from lifeboat.stack import embedded as stack

    settings = get_settings()
    stack.up(settings, data.repo_root())
    with stack.airflow_client(settings) as client:
        for dag_id in (stack.RETRAIN_DAG, stack.ROLLBACK_DAG):
            client.wait_for_dag(dag_id)
            client.set_paused(dag_id, False)
        print(f"DAGs {stack.RETRAIN_DAG} and {stack.ROLLBACK_DAG} are unpaused")
        latest = client.runs(stack.RETRAIN_DAG, limit=1)
        run_id: str | None = None
        if args.trigger or (not latest and not args.no_trigger):
            run_id = client.trigger(stack.RETRAIN_DAG, note="started by `lifeboat up`")
            print(f"triggered {stack.RETRAIN_DAG} run {run_id}")
        elif latest and latest[0].get("state") in ("queued", "running"):
            run_id = str(latest[0]["dag_run_id"])
            print(f"following the run in progress: {run_id}")
        elif latest:
            last = latest[0]
            print(f"last run {last['dag_run_id']}: {last.get('state')} (`make run TRIGGER=1` starts one)")
        state = "success"
        if run_id is not None:
            state = _follow_run(client, stack.RETRAIN_DAG, run_id, args.timeout)
    _print_stack_summary(settings)
    return EXIT_OK if state == "success" else EXIT_FAILURE


def _follow_run(client: Any, dag_id: str, run_id: str, timeout: float) -> str:
    """Print each task's state changes until the run ends; return the run's final state."""
    import time

    started = time.monotonic()

    def show(task: Any) -> None:
        took = f" ({task.duration:.0f} s)" if task.duration else ""
        print(f"  {time.monotonic() - started:6.0f} s  {task.task_id:<17} {task.state or 'waiting'}{took}")

    run = client.wait_for_run(dag_id, run_id, timeout=timeout, on_change=show)
    state = str(run.get("state"))
    print(f"run {run_id}: {state} after {time.monotonic() - started:.0f} s")
    if state != "success":
        failed = [t.task_id for t in client.task_states(dag_id, run_id) if t.state == "failed"]
        if failed:
            print(f"failed task(s): {', '.join(failed)} — see their logs in the Airflow UI")
    return state


def _print_stack_summary(settings: Any) -> None:
    from lifeboat.stack import embedded as stack
    from lifeboat.stack import processes

    where = stack.urls(settings)
    found = stack.load_secrets(processes.StackPaths.from_settings(settings))
    sample = json.dumps(
        {"Pclass": 3, "Sex": "male", "Age": 34.5, "SibSp": 0, "Parch": 0, "Fare": 7.83, "Embarked": "Q"}
    )
    print(
        f"\nAirflow UI      {where['airflow']}   (user {stack.AIRFLOW_USER}, password "
        f"{found['airflow_admin_password']})\n"
        f"                password kept in {processes.StackPaths.from_settings(settings).secrets_file}\n"
        f"MLflow UI       {where['mlflow']}\n"
        f"Prediction API  {where['serving']}/docs\n\n"
        f"Try a prediction:\n  curl -s -X POST {where['serving']}/predict "
        f"-H 'Content-Type: application/json' -d '{sample}'\n\n"
        "Stop everything with `make stop`; `make status` shows what runs."
    )


@command("down", "stop the processes `lifeboat up` started (by their recorded pids, nothing else)")
def _down(args: argparse.Namespace) -> int:
    from lifeboat.stack import embedded as stack

    stack.down(get_settings())
    return EXIT_OK


@command("status", "show which processes of the stack run and whether they answer")
def _status(args: argparse.Namespace) -> int:
    from lifeboat.stack import embedded as stack

    report = stack.status(get_settings())
    for name, item in report.items():
        pid = item["pid"]
        state = f"running (pid {pid})" if pid else "stopped"
        health = "answers" if item["healthy"] else "does not answer"
        print(f"{name:<8} {state:<22} {item['url']:<24} {health}")
    return EXIT_OK if all(item["pid"] for item in report.values()) else EXIT_FAILURE


@command(
    "trigger",
    "trigger a DAG run on the running stack and follow it",
    arg("--dag", default="titanic_retrain", help="DAG id (default: titanic_retrain)"),
    arg("--conf", default="{}", help="the run's params as JSON, e.g. '{\"dry_run\": true}'"),
    arg("--no-wait", action="store_true", help="return once the run is created"),
    arg("--timeout", type=float, default=1800.0, help="seconds to wait for the run (default: 1800)"),
)
def _trigger(args: argparse.Namespace) -> int:
    from lifeboat.stack import embedded as stack

    try:
        conf = json.loads(args.conf)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--conf is not valid JSON: {exc}") from exc
    if not isinstance(conf, dict):
        raise ValueError("--conf must be a JSON object")
    with stack.airflow_client(get_settings()) as client:
        run_id = client.trigger(args.dag, conf, note="started by `lifeboat trigger`")
        print(f"triggered {args.dag} run {run_id}")
        if args.no_wait:
            return EXIT_OK
        state = _follow_run(client, args.dag, run_id, args.timeout)
    return EXIT_OK if state == "success" else EXIT_FAILURE
