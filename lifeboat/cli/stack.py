"""``lifeboat up``, ``down``, ``status`` and ``trigger``: the embedded stack that ``make run`` starts."""

from __future__ import annotations

import argparse
import json
import shlex
from urllib.parse import quote

from lifeboat.cli import EXIT_FAILURE, EXIT_OK, arg, command
from lifeboat.data import versioning as data
from lifeboat.settings import Settings, get_settings

#: The dataset the seed's ``/predict`` route scores (its passenger contract).
TITANIC = "titanic"


@command(
    "up",
    "start MLflow, the prediction server and Airflow on loopback, then train every dataset: the default "
    "one's run followed, the others' started after it in the background",
    arg("--trigger", action="store_true", help="trigger new runs even if the DAGs have run before"),
    arg("--no-trigger", action="store_true", help="only start the services and unpause the DAGs"),
    arg("--wait-all", action="store_true", help="follow every dataset's run, not only the default one's"),
    arg("--timeout", type=float, default=1800.0, help="seconds to wait for one run (default: 1800)"),
)
def _up(args: argparse.Namespace) -> int:
    from lifeboat.stack import embedded as stack
    from lifeboat.stack import runs

    settings = get_settings()
    stack.up(settings, data.repo_root())
    options = runs.RunOptions(
        trigger=args.trigger, no_trigger=args.no_trigger, wait_all=args.wait_all, timeout=args.timeout
    )
    datasets = stack.stack_datasets(settings)
    with stack.airflow_client(settings) as client:
        done = runs.start_runs(client, datasets, options, stack.urls(settings)["airflow"])
    _print_stack_summary(settings, datasets)
    return EXIT_OK if runs.succeeded(done) else EXIT_FAILURE


def _print_stack_summary(settings: Settings, datasets: list[str]) -> None:
    from lifeboat.stack import embedded as stack
    from lifeboat.stack import processes

    where = stack.urls(settings)
    paths = processes.StackPaths.from_settings(settings)
    served = set(settings.served_datasets())
    examples = [_prediction_example(settings, d, where["serving"]) for d in datasets if d in served]
    print(
        f"\nAirflow UI      {where['airflow']}   (user {stack.AIRFLOW_USER})\n"
        f'                password: "airflow_admin_password" in {paths.secrets_file} (yours only)\n'
        f"MLflow UI       {where['mlflow']}\n"
        f"Prediction API  {where['serving']}/docs\n\n"
        "Try a prediction (each dataset answers once its first run has promoted a model):\n"
        + "\n".join(examples)
        + "\n\nStop everything with `make stop`; `make status` shows what runs."
    )


def _prediction_example(settings: Settings, dataset: str, serving_url: str) -> str:
    """A ``curl`` scoring the example record of the dataset's spec (Titanic, the default dataset, on the
    seed's ``/predict``)."""
    from lifeboat.dataset.spec import DatasetSpecError, spec_of

    try:
        example = spec_of(settings.for_dataset(dataset)).example
    except DatasetSpecError as exc:
        return f"  {dataset}: no example ({exc})"
    if not example:
        return f"  {dataset}: no example record in its dataset.yaml"
    # /predict keeps the seed's passenger contract, on the default dataset's model.
    seed_route = dataset == TITANIC == settings.dataset
    route = "/predict" if seed_route else f"/v1/datasets/{quote(dataset, safe='')}/predict"
    return (
        f"  {dataset}:\n  curl -s -X POST {serving_url}{route} -H 'Content-Type: application/json' "
        f"-d {shlex.quote(json.dumps(example))}"
    )


@command("down", "stop the processes `lifeboat up` started (by their recorded pids, nothing else)")
def _down(args: argparse.Namespace) -> int:
    from lifeboat.stack import embedded as stack

    stack.down(get_settings())
    return EXIT_OK


@command(
    "status",
    "show which processes of the stack run and whether they answer, and each dataset's last retraining run",
)
def _status(args: argparse.Namespace) -> int:
    from lifeboat.stack import embedded as stack

    settings = get_settings()
    report = stack.status(settings)
    for name, item in report.items():
        pid = item["pid"]
        state = f"running (pid {pid})" if pid else "stopped"
        health = "answers" if item["healthy"] else "does not answer"
        print(f"{name:<8} {state:<22} {item['url']:<24} {health}")
    if report["airflow"]["healthy"]:
        # --dataset NAME: that dataset's run only; without it, every dataset's.
        _print_last_runs(settings, [settings.dataset] if args.dataset else stack.stack_datasets(settings))
    return EXIT_OK if all(item["pid"] for item in report.values()) else EXIT_FAILURE


def _print_last_runs(settings: Settings, datasets: list[str]) -> None:
    """One line per dataset: its retraining DAG's newest run, its state and its page in the Airflow UI."""
    import httpx

    from lifeboat.orchestration.airflow_api import AirflowApiError
    from lifeboat.stack import embedded as stack
    from lifeboat.stack import runs

    airflow = stack.urls(settings)["airflow"]
    try:
        with stack.airflow_client(settings) as client:
            for dataset in datasets:
                dag_id = stack.retrain_dag(dataset)
                latest = client.runs(dag_id, limit=1)
                if not latest:
                    print(f"{dataset:<8} {dag_id}: no run yet")
                    continue
                run_id = str(latest[0]["dag_run_id"])
                state = latest[0].get("state")
                print(f"{dataset:<8} {dag_id}: {state:<8} {runs.run_url(airflow, dag_id, run_id)}")
    except (AirflowApiError, httpx.HTTPError) as exc:
        print(f"the runs cannot be read from Airflow: {exc}")


@command(
    "trigger",
    "trigger a DAG run on the running stack and follow it",
    arg("--dag", help="DAG id (default: the retraining DAG of --dataset, e.g. titanic_retrain)"),
    arg("--conf", default="{}", help="the run's params as JSON, e.g. '{\"dry_run\": true}'"),
    arg("--no-wait", action="store_true", help="return once the run is created"),
    arg("--timeout", type=float, default=1800.0, help="seconds to wait for the run (default: 1800)"),
)
def _trigger(args: argparse.Namespace) -> int:
    from lifeboat.stack import embedded as stack
    from lifeboat.stack import runs

    try:
        conf = json.loads(args.conf)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--conf is not valid JSON: {exc}") from exc
    if not isinstance(conf, dict):
        raise ValueError("--conf must be a JSON object")
    settings = get_settings()
    dag_id = args.dag or stack.retrain_dag(settings.dataset)
    with stack.airflow_client(settings) as client:
        run_id = client.trigger(dag_id, conf, note="started by `lifeboat trigger`")
        page = runs.run_url(stack.urls(settings)["airflow"], dag_id, run_id)
        print(f"triggered {dag_id} run {run_id}: {page}")
        if args.no_wait:
            return EXIT_OK
        state = runs.follow_run(client, dag_id, run_id, args.timeout)
    return EXIT_OK if state == "success" else EXIT_FAILURE
