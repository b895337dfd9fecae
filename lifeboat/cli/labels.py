"""``lifeboat labels add FILE`` and ``lifeboat labels export``: ground truth of served predictions.

``add``: the same ingestion as the server's ``POST /v1/datasets/{dataset}/feedback``
(:func:`lifeboat.monitoring.feedback.ingest_labels`), on the log file the server writes
(``<state>/<dataset>/predictions.sqlite``); no token is needed, the file system is the access control.
When labels were stored it records an event on the dataset's incoming asset, so the retraining DAG runs
and measures the live performance (its ``monitor_performance`` task).

``export``: the labelled rows not exported yet become a new DVC batch of the incoming folder
(:func:`lifeboat.monitoring.labelled_batch.export_labelled_batch`), announced like ``add-batch``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lifeboat.cli import EXIT_BAD_DATA, EXIT_OK, arg, command, print_error
from lifeboat.settings import get_settings

ACTIONS = ("add", "export")


@command(
    "labels",
    'add ground-truth labels of served predictions (a CSV request_id,label or a JSON {"labels": [...]})',
    arg(
        "action",
        choices=ACTIONS,
        help="add FILE: store the labels of FILE; export: the labelled rows not exported yet as a new batch",
    ),
    arg(
        "file",
        type=Path,
        metavar="FILE",
        nargs="?",
        help="add: a CSV with the columns request_id,label, or a .json file",
    ),
    arg("--min-rows", type=int, default=1, help="export: add a batch only from this many rows (default 1)"),
    arg("--name", default=None, help="export: the batch's file name (default: batch-<UTC time>.csv)"),
)
def _labels(args: argparse.Namespace) -> int:
    if args.action == "export":
        return _export(args)
    if args.file is None:
        print_error("labels", ValueError("labels add needs FILE"))
        return EXIT_BAD_DATA
    from lifeboat.dataset.spec import spec_of
    from lifeboat.monitoring.feedback import FeedbackError, ingest_labels
    from lifeboat.monitoring.label_input import labels_from_file

    settings = get_settings()
    path: Path = args.file
    if not path.is_file():
        print_error("labels", FileNotFoundError(f"no such file: {path}"))
        return EXIT_BAD_DATA
    try:
        result = ingest_labels(
            settings.prediction_log_path,
            spec_of(settings),
            labels_from_file(path),
            max_labels=None,  # a file from the operator: no per-request bound
            keep_labels=settings.prediction_log_max_rows,
        )
    except FeedbackError as exc:
        print(f"lifeboat labels: error: {path}: {exc}", file=sys.stderr)
        return EXIT_BAD_DATA
    print(
        f"{path}: {result.received} label(s) for dataset {settings.dataset}: "
        f"{result.matched} matched (stored), {result.unknown} unknown "
        f"(not in {settings.prediction_log_path}), {result.duplicate} duplicate"
    )
    if result.matched:
        from lifeboat.orchestration.assets import announce_to_embedded_stack

        extra = {"dataset": settings.dataset, "labels": result.matched, "source": path.name}
        print(announce_to_embedded_stack(settings, extra).message)
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    from lifeboat.monitoring.labelled_batch import export_labelled_batch
    from lifeboat.orchestration.assets import announce_batch

    if args.min_rows < 1:
        print_error("labels", ValueError(f"--min-rows must be at least 1, got {args.min_rows}"))
        return EXIT_BAD_DATA
    settings = get_settings()
    exported = export_labelled_batch(settings, min_rows=args.min_rows, name=args.name)
    print(exported.message)
    if exported.path is not None:
        print(announce_batch(settings, exported.path).message)
    return EXIT_OK
