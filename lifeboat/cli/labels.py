"""``lifeboat labels add FILE``: ground-truth labels of served predictions, into the dataset's prediction log.

The same ingestion as the server's ``POST /v1/datasets/{dataset}/feedback``
(:func:`lifeboat.monitoring.feedback.ingest_labels`), on the log file the server writes
(``<state>/<dataset>/predictions.sqlite``); no token is needed, the file system is the access control.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lifeboat.cli import EXIT_BAD_DATA, EXIT_OK, arg, command, print_error
from lifeboat.settings import get_settings

ACTIONS = ("add",)


@command(
    "labels",
    'add ground-truth labels of served predictions (a CSV request_id,label or a JSON {"labels": [...]})',
    arg("action", choices=ACTIONS, help="add FILE: store the labels of FILE"),
    arg("file", type=Path, metavar="FILE", help="a CSV with the columns request_id,label, or a .json file"),
)
def _labels(args: argparse.Namespace) -> int:
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
    return EXIT_OK
