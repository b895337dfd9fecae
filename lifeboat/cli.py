"""The ``lifeboat`` command: one subcommand per job, each a small function registered with :func:`command`.

Adding a subcommand is two lines plus its body::

    @command("drift", "write a drift report", arg("--batch", type=Path, help="the batch to compare"))
    def _drift(args: argparse.Namespace) -> int: ...

Exit codes: 0 success, 2 bad data (or a usage error), 1 any other failure. Errors are one readable
message on stderr; ``--traceback`` shows the full Python traceback instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lifeboat.data import versioning as data
from lifeboat.dataset.schema import DataValidationError, validate_csv
from lifeboat.orchestration.pipeline import JobDataError
from lifeboat.settings import get_settings

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_DATA = 2

#: Exceptions that mean "the data is wrong" (exit code 2); everything else exits with 1.
BAD_DATA_ERRORS: tuple[type[BaseException], ...] = (DataValidationError, JobDataError)

Handler = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Argument:
    """The positional and keyword arguments of one ``ArgumentParser.add_argument`` call."""

    flags: tuple[str, ...]
    options: dict[str, Any]


@dataclass(frozen=True)
class Command:
    """A registered subcommand: its name, one-line help, arguments and handler."""

    name: str
    help: str
    arguments: tuple[Argument, ...]
    handler: Handler


#: Every subcommand, in registration order (the order ``lifeboat --help`` lists them).
COMMANDS: dict[str, Command] = {}


def arg(*flags: str, **options: Any) -> Argument:
    """Describe one argument of a subcommand, exactly as ``ArgumentParser.add_argument`` takes it."""
    return Argument(flags, options)


def command(name: str, summary: str, *arguments: Argument) -> Callable[[Handler], Handler]:
    """Register the decorated function as the subcommand ``name``; it returns the process exit code.

    Import heavy modules (Spark, MLflow, Airflow) inside the handler, so ``lifeboat --help`` stays fast.
    """

    def register(handler: Handler) -> Handler:
        if name in COMMANDS:
            raise ValueError(f"lifeboat subcommand {name!r} is registered twice")
        COMMANDS[name] = Command(name, summary, arguments, handler)
        return handler

    return register


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="lifeboat",
        description="Retraining platform for Titanic survival: data, training, registry and serving.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback of an error")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in COMMANDS.values():
        sub = subparsers.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        for argument in cmd.arguments:
            sub.add_argument(*argument.flags, **argument.options)
        sub.set_defaults(handler=cmd.handler)
    return parser


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _error(name: str, exc: BaseException) -> None:
    print(f"lifeboat {name}: error: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run the ``lifeboat`` command line; return the process exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help (0) and on usage errors (2)
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_DATA
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_BAD_DATA
    _configure_logging(args.verbose)
    handler: Handler = args.handler
    try:
        return handler(args)
    except BAD_DATA_ERRORS as exc:
        if args.traceback:
            raise
        _error(args.command, exc)
        return EXIT_BAD_DATA
    except KeyboardInterrupt:
        print(f"lifeboat {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.traceback:
            raise
        logger.debug("lifeboat %s failed", args.command, exc_info=True)
        _error(args.command, exc)
        return EXIT_FAILURE


# --- data commands ---------------------------------------------------------------------------------


@command(
    "pull",
    "fetch the DVC-tracked data (raw CSVs and incoming batches) from the DVC remote",
    arg("targets", nargs="*", type=Path, metavar="TARGET", help="files or .dvc pointers (default: all)"),
)
def _pull(args: argparse.Namespace) -> int:
    data.pull(args.targets or None)
    if args.targets:
        print(f"pulled {', '.join(map(str, args.targets))}")
        return EXIT_OK
    fingerprint = data.fingerprint(data.training_files())
    for f in fingerprint.files:
        print(f"{f.path}: {f.rows} rows, md5 {f.md5}")
    print(f"training data: {len(fingerprint.files)} file(s), {fingerprint.total_rows} rows")
    return EXIT_OK


@command(
    "validate",
    "check CSV files against the passenger schema (default: the training files)",
    arg("paths", nargs="*", type=Path, metavar="PATH", help="CSV files to check"),
    arg(
        "--unlabelled",
        action="store_true",
        help="the files have no Survived column (default PATH: the unlabelled data set)",
    ),
)
def _validate(args: argparse.Namespace) -> int:
    paths: list[Path] = args.paths
    if not paths:
        paths = [get_settings().unlabelled_data] if args.unlabelled else data.training_files()
    failures = 0
    for path in paths:
        try:
            summary = validate_csv(path, require_label=not args.unlabelled)
        except DataValidationError as exc:
            failures += 1
            _error("validate", exc)
            continue
        rate = f", {summary.positive_rate:.1%} survived" if summary.positive_rate is not None else ""
        print(f"ok {path}: {summary.rows} rows{rate}")
    return EXIT_BAD_DATA if failures else EXIT_OK


@command(
    "add-batch",
    "validate a labelled CSV, copy it into the incoming folder and version it with DVC (add + push)",
    arg("path", type=Path, metavar="PATH", help="the labelled CSV file"),
    arg("--name", help="file name in the incoming folder (default: batch-<UTC timestamp>.csv)"),
)
def _add_batch(args: argparse.Namespace) -> int:
    target = data.add_batch(args.path, name=args.name)
    print(f"added {target} (pointer {data.pointer_path(target)}); commit the pointer and data/remote/")
    return EXIT_OK


@command("fingerprint", "print the training data's md5s and row counts as JSON")
def _fingerprint(args: argparse.Namespace) -> int:
    print(json.dumps(data.fingerprint(data.training_files()).as_dict(), indent=2))
    return EXIT_OK


# --- training and registry commands --------------------------------------------------------------


def _latest_run_id() -> str:
    """The newest run folder under the state dir (runs are named so that they sort by time)."""
    runs = get_settings().runs_dir
    candidates = sorted(p.name for p in runs.glob("*") if (p / "preprocess" / "summary.json").is_file())
    if not candidates:
        raise FileNotFoundError(f"no preprocessed run under {runs}: run `lifeboat preprocess` first")
    return candidates[-1]


def _print_gate(result: dict[str, Any]) -> None:
    verdict = (
        "PROMOTED"
        if result["promoted"]
        else "passed (dry run, not promoted)"
        if result["passed"]
        else "REJECTED"
    )
    print(f"gate: {result['model_name']} version {result['version']} {verdict}")
    for reason in result["reasons"]:
        print(f"  - {reason}")


@command(
    "preprocess",
    "validate the training data and build the feature table + holdout with Spark (jobs/preprocess.py)",
    arg("--run-id", help="run folder name under <state>/runs (default: a new manual__<time> id)"),
)
def _preprocess(args: argparse.Namespace) -> int:
    from lifeboat.orchestration import pipeline

    settings = get_settings()
    run_id = args.run_id or pipeline.new_run_id()
    output = pipeline.preprocess(settings, run_id)
    summary = json.loads((output / "summary.json").read_text())
    print(f"run {run_id}: preprocessed into {output}")
    print(json.dumps({k: summary[k] for k in sorted(summary) if k not in ("feature_names",)}, indent=2))
    return EXIT_OK


@command(
    "train",
    "preprocess (unless --run-id names a preprocessed run), train, gate and promote: one retraining run",
    arg("--run-id", help="reuse this run's preprocess output (default: preprocess into a new run)"),
    arg("--families", help="comma-separated model families to try: lr,rf,gbt (default: settings)"),
    arg("--dry-run", action="store_true", help="train, register and gate, but never move the champion"),
)
def _train(args: argparse.Namespace) -> int:
    from lifeboat.orchestration import pipeline

    settings = get_settings()
    run_id = args.run_id or pipeline.new_run_id()
    if not (pipeline.run_dir(settings, run_id) / "preprocess" / "summary.json").is_file():
        pipeline.preprocess(settings, run_id)
    families = args.families.split(",") if args.families else None
    summary = pipeline.train(settings, run_id, families)
    holdout = summary.get("holdout", {})
    family, name, version = summary.get("family"), summary["model_name"], summary["version"]
    print(f"run {run_id}: trained {family} -> {name} version {version}")
    print("  " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(holdout.items())))
    _print_gate(pipeline.gate_and_promote(settings, run_id, dry_run=args.dry_run))
    print(f"MLflow: {settings.tracking_uri}")
    return EXIT_OK


@command(
    "promote",
    "run the promotion gate on a trained run's challenger (champion and challenger on the same holdout)",
    arg("--run-id", help="the run (default: the newest run)"),
    arg("--dry-run", action="store_true", help="record the decision but never move the champion"),
)
def _promote(args: argparse.Namespace) -> int:
    from lifeboat.orchestration import pipeline

    result = pipeline.gate_and_promote(get_settings(), args.run_id or _latest_run_id(), dry_run=args.dry_run)
    _print_gate(result)
    return EXIT_OK


@command(
    "rollback",
    "move the champion back to the previous champion (records who and why on both versions)",
    arg("--reason", required=True, help="why (recorded as a tag)"),
    arg("--actor", default=None, help="who (default: $USER)"),
)
def _rollback(args: argparse.Namespace) -> int:
    import getpass

    from lifeboat.registry import store as registry

    settings = get_settings()
    registry.configure_mlflow(settings)
    actor = args.actor or getpass.getuser()
    demoted, restored = registry.rollback(settings.model_name, args.reason, actor)
    print(f"rollback: champion {demoted} -> {restored} ({settings.model_name}), by {actor}: {args.reason}")
    return EXIT_OK


@command("models", "show the champion, previous champion, challenger and recent versions as JSON")
def _models(args: argparse.Namespace) -> int:
    from lifeboat.registry import store as registry

    settings = get_settings()
    registry.configure_mlflow(settings)
    print(json.dumps(registry.model_summary(settings.model_name), indent=2, default=str))
    return EXIT_OK


# --- serving commands ----------------------------------------------------------------------------


@command(
    "serve",
    "run the prediction server (uvicorn; host, port and workers from settings unless given)",
    arg("--host", help="bind address (default: LIFEBOAT_SERVING_HOST)"),
    arg("--port", type=int, help="port (default: LIFEBOAT_SERVING_PORT)"),
    arg("--workers", type=int, help="worker processes (default: LIFEBOAT_SERVING_WORKERS)"),
)
def _serve(args: argparse.Namespace) -> int:
    import os

    settings = get_settings()
    command_line = [
        str(Path(sys.executable).parent / "uvicorn"),
        "--factory",
        "serving.app:create_app",
        "--host",
        args.host or settings.serving_host,
        "--port",
        str(args.port or settings.serving_port),
        "--workers",
        str(args.workers or settings.serving_workers),
    ]
    os.execv(command_line[0], command_line)  # replaces this process: signals reach uvicorn directly
    return EXIT_FAILURE  # pragma: no cover


# --- drift commands ------------------------------------------------------------------------------


@command(
    "new-batch",
    "simulate a labelled batch (resampled training rows, optionally drifted) and add it with DVC",
    arg("--rows", type=int, default=500, help="passengers in the batch (default 500; reports need >= 300)"),
    arg("--drift", default=None, help="drift spec, e.g. 'Age+15,Fare*3,Sex=male:0.8,missing=Age:0.3'"),
    arg("--seed", type=int, default=0, help="random seed (default 0)"),
    arg("--name", default=None, help="file name in the incoming folder (default: batch-<UTC time>.csv)"),
)
def _new_batch(args: argparse.Namespace) -> int:
    import tempfile

    import pandas as pd

    from lifeboat.data import simulate

    settings = get_settings()
    spec = simulate.parse_spec(args.drift)
    files = data.training_files()
    start_id = 1 + max(int(pd.read_csv(f, usecols=["PassengerId"])["PassengerId"].max()) for f in files)
    batch = simulate.make_batch(pd.read_csv(settings.raw_data), args.rows, spec, args.seed, start_id)
    with tempfile.TemporaryDirectory(prefix="lifeboat-batch-") as tmp:
        written = simulate.write_batch(batch, Path(tmp) / (args.name or "batch.csv"))
        target = data.add_batch(written, name=args.name)
    last_id = start_id + len(batch) - 1
    print(f"added {len(batch)} passengers (ids {start_id}..{last_id}, drift: {spec or 'none'})")
    print(f"  {target} (pointer {data.pointer_path(target)}); commit the pointer and data/remote/")
    return EXIT_OK


@command(
    "replay",
    "send passengers of a CSV (optionally drifted) to the prediction server, so its request log drifts too",
    arg("--input", type=Path, default=None, help="passenger CSV (default: the unlabelled data set)"),
    arg("--rows", type=int, default=500, help="passengers to send (default 500)"),
    arg("--drift", default=None, help="drift spec, as for new-batch"),
    arg("--seed", type=int, default=0, help="random seed (default 0)"),
    arg("--url", default=None, help="server base URL (default: LIFEBOAT_SERVING_URL)"),
    arg("--batch-size", type=int, default=100, help="passengers per /predict/batch request (default 100)"),
)
def _replay(args: argparse.Namespace) -> int:
    import httpx

    from lifeboat.data import simulate

    settings = get_settings()
    source = args.input or settings.unlabelled_data
    rows = simulate.replay_rows(source, args.rows, simulate.parse_spec(args.drift), args.seed)
    url = (args.url or settings.serving_url).rstrip("/") + "/predict/batch"
    sent = failed = 0
    with httpx.Client(timeout=30.0) as client:
        for start in range(0, len(rows), args.batch_size):
            chunk = rows[start : start + args.batch_size]
            response = client.post(url, json={"passengers": chunk})
            if response.status_code == 200:
                sent += len(chunk)
            else:
                failed += len(chunk)
                where = f"rows {start}..{start + len(chunk) - 1}"
                print(f"{where}: HTTP {response.status_code} {response.text[:300]}", file=sys.stderr)
    print(f"replayed {sent} passengers to {url} ({failed} failed)")
    return EXIT_FAILURE if failed else EXIT_OK


@command(
    "drift",
    "compute a drift report against the champion's training data and print the summary",
    arg(
        "--current",
        choices=("batch", "requests"),
        default="batch",
        help="batch: the newest incoming batch (or --batch); requests: the prediction log window",
    ),
    arg("--batch", type=Path, action="append", default=None, help="batch CSV(s) to compare (repeatable)"),
    arg(
        "--last-n",
        type=int,
        default=None,
        help="requests: newest N rows (default LIFEBOAT_DRIFT_WINDOW_ROWS)",
    ),
    arg("--hours", type=float, default=None, help="requests: within the last H hours (default: settings)"),
    arg("--name", default=None, help="report name (default: <current>-<UTC time>)"),
)
def _drift(args: argparse.Namespace) -> int:
    from lifeboat.monitoring.checks import run_drift

    summary = run_drift(get_settings(), args.current, args.name, args.batch, args.last_n, args.hours)
    print(f"drift report {summary.name}: {summary.message}")
    for column, verdict in summary.columns.items():
        flag = "DRIFT" if verdict.drifted else "ok"
        score = "n/a" if verdict.score is None else f"{verdict.score:.4f}"
        print(
            f"  {column:<12} {verdict.method:<14} score {score:>8}  threshold {verdict.threshold:<8g} {flag}"
        )
    print(f"  html: {summary.html_path}")
    print(f"  json: {summary.json_path}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())


# --- the embedded stack (make run / stop / status) ---------------------------------------------------


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

    where = stack.urls(settings)
    found = stack.load_secrets(stack.StackPaths.from_settings(settings))
    sample = json.dumps(
        {"Pclass": 3, "Sex": "male", "Age": 34.5, "SibSp": 0, "Parch": 0, "Fare": 7.83, "Embarked": "Q"}
    )
    print(
        f"\nAirflow UI      {where['airflow']}   (user {stack.AIRFLOW_USER}, password "
        f"{found['airflow_admin_password']})\n"
        f"                password kept in {stack.StackPaths.from_settings(settings).secrets_file}\n"
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
