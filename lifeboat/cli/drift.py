"""``lifeboat new-batch``, ``replay`` and ``drift``: simulated batches and drift reports."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lifeboat.cli import EXIT_FAILURE, EXIT_OK, arg, command
from lifeboat.data import versioning as data
from lifeboat.settings import DEFAULT_DATASET, get_settings


@command(
    "new-batch",
    "simulate a labelled batch of the dataset (resampled training rows, maybe drifted) and add it with DVC",
    arg("--rows", type=int, default=500, help="rows in the batch (default 500; reports need >= 300)"),
    arg(
        "--drift",
        default=None,
        help="drift spec on the dataset's columns, e.g. 'Age+15,Fare*3,Sex=male:0.8,missing=Age:0.3' "
        "(Titanic) or 'age+10,sex=Female:0.7' (--dataset adult)",
    ),
    arg("--seed", type=int, default=0, help="random seed (default 0)"),
    arg("--name", default=None, help="file name in the incoming folder (default: batch-<UTC time>.csv)"),
)
def _new_batch(args: argparse.Namespace) -> int:
    import tempfile

    import pandas as pd

    from lifeboat.data import simulate
    from lifeboat.dataset.spec import spec_of

    settings = get_settings()
    dataset = spec_of(settings)
    spec = simulate.parse_spec(args.drift, dataset)
    start_id = data.next_training_id(dataset.id_column, data.training_files(settings))
    train = pd.read_csv(settings.raw_data)
    batch = simulate.make_batch(train, args.rows, spec, args.seed, start_id, dataset=dataset)
    with tempfile.TemporaryDirectory(prefix="lifeboat-batch-") as tmp:
        written = simulate.write_batch(batch, Path(tmp) / (args.name or "batch.csv"), dataset)
        target = data.add_batch(written, name=args.name, settings=settings)
    ids = "" if start_id is None else f"ids {start_id}..{start_id + len(batch) - 1}, "
    print(f"added {len(batch)} {dataset.name} rows ({ids}drift: {spec or 'none'})")
    print(f"  {target} (pointer {data.pointer_path(target)}); commit the pointer and data/remote/")
    from lifeboat.orchestration.assets import announce_batch

    print(announce_batch(settings, target).message)
    return EXIT_OK


def batch_route(dataset: str) -> tuple[str, str]:
    """The server's batch path and JSON key of ``dataset``: Titanic keeps the original ``/predict/batch``
    (``{"passengers": [...]}``), every other dataset has ``/v1/datasets/<name>/predict/batch``
    (``{"records": [...]}``)."""
    if dataset == DEFAULT_DATASET:
        return "/predict/batch", "passengers"
    return f"/v1/datasets/{dataset}/predict/batch", "records"


@command(
    "replay",
    "send rows of a CSV (optionally drifted) to the prediction server, so its request log drifts too",
    arg(
        "--input",
        type=Path,
        default=None,
        help="CSV of the dataset (default: its unlabelled data, else its training data without the label)",
    ),
    arg("--rows", type=int, default=500, help="rows to send (default 500)"),
    arg("--drift", default=None, help="drift spec, as for new-batch"),
    arg("--seed", type=int, default=0, help="random seed (default 0)"),
    arg("--url", default=None, help="server base URL (default: LIFEBOAT_SERVING_URL)"),
    arg("--batch-size", type=int, default=100, help="rows per batch request (default 100)"),
)
def _replay(args: argparse.Namespace) -> int:
    import httpx

    from lifeboat.data import simulate
    from lifeboat.dataset.spec import spec_of

    settings = get_settings()
    dataset = spec_of(settings)
    source = args.input or (
        settings.unlabelled_data if settings.unlabelled_data.is_file() else settings.raw_data
    )
    spec = simulate.parse_spec(args.drift, dataset)
    rows = simulate.replay_rows(source, args.rows, spec, args.seed, dataset=dataset)
    path, key = batch_route(dataset.name)
    url = (args.url or settings.serving_url).rstrip("/") + path
    sent = failed = 0
    with httpx.Client(timeout=30.0) as client:
        for start in range(0, len(rows), args.batch_size):
            chunk = rows[start : start + args.batch_size]
            response = client.post(url, json={key: chunk})
            if response.status_code == 200:
                sent += len(chunk)
            else:
                failed += len(chunk)
                where = f"rows {start}..{start + len(chunk) - 1}"
                print(f"{where}: HTTP {response.status_code} {response.text[:300]}", file=sys.stderr)
    print(f"replayed {sent} {key} to {url} ({failed} failed)")
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
