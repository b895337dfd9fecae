"""``lifeboat preprocess``, ``train``, ``promote``, ``rollback``, ``models`` and ``serve``: training, the
registry and the prediction server."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lifeboat.cli import EXIT_FAILURE, EXIT_OK, arg, command
from lifeboat.settings import get_settings

if TYPE_CHECKING:
    from lifeboat.orchestration.results import GateRecord


def _latest_run_id() -> str:
    """The newest run folder under the state dir (runs are named so that they sort by time)."""
    runs = get_settings().runs_dir
    candidates = sorted(p.name for p in runs.glob("*") if (p / "preprocess" / "summary.json").is_file())
    if not candidates:
        raise FileNotFoundError(f"no preprocessed run under {runs}: run `lifeboat preprocess` first")
    return candidates[-1]


def _print_gate(result: GateRecord) -> None:
    verdict = (
        "PROMOTED" if result.promoted else "passed (dry run, not promoted)" if result.passed else "REJECTED"
    )
    print(f"gate: {result.model_name} version {result.version} {verdict}")
    for reason in result.reasons:
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
    holdout = summary.holdout
    family, name, version = summary.family, summary.model_name, summary.version
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

    from lifeboat.registry import promotion
    from lifeboat.registry import store as registry

    settings = get_settings()
    registry.configure_mlflow(settings)
    actor = args.actor or getpass.getuser()
    demoted, restored = promotion.rollback(settings.model_name, args.reason, actor)
    print(f"rollback: champion {demoted} -> {restored} ({settings.model_name}), by {actor}: {args.reason}")
    return EXIT_OK


@command("models", "show the champion, previous champion, challenger and recent versions as JSON")
def _models(args: argparse.Namespace) -> int:
    from lifeboat.registry import store as registry
    from lifeboat.registry import summary

    settings = get_settings()
    registry.configure_mlflow(settings)
    print(json.dumps(summary.model_summary(settings.model_name), indent=2, default=str))
    return EXIT_OK


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
