"""``lifeboat pull``, ``validate``, ``add-batch`` and ``fingerprint``: the DVC-versioned data."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lifeboat.cli import EXIT_BAD_DATA, EXIT_OK, arg, command, print_error
from lifeboat.data import versioning as data
from lifeboat.dataset.schema import DataValidationError
from lifeboat.dataset.spec import spec_of
from lifeboat.dataset.validation import validate_csv
from lifeboat.settings import get_settings


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
    "check CSV files against the dataset spec (default: the training files)",
    arg("paths", nargs="*", type=Path, metavar="PATH", help="CSV files to check"),
    arg(
        "--unlabelled",
        action="store_true",
        help="the files have no label column (default PATH: the unlabelled data set)",
    ),
)
def _validate(args: argparse.Namespace) -> int:
    paths: list[Path] = args.paths
    spec = spec_of(get_settings())
    if not paths:
        paths = [get_settings().unlabelled_data] if args.unlabelled else data.training_files()
    failures = 0
    for path in paths:
        try:
            summary = validate_csv(spec, path, require_label=not args.unlabelled)
        except DataValidationError as exc:
            failures += 1
            print_error("validate", exc)
            continue
        label = f"{spec.label.column} = {spec.label.positive}"
        rate = f", {summary.positive_rate:.1%} {label}" if summary.positive_rate is not None else ""
        print(f"ok {path}: {summary.rows} rows{rate}")
    return EXIT_BAD_DATA if failures else EXIT_OK


@command(
    "add-batch",
    "validate a labelled CSV, copy it into the incoming folder, version it with DVC (add + push) and tell "
    "Airflow (an event on the dataset's incoming asset starts its retraining run)",
    arg("path", type=Path, metavar="PATH", help="the labelled CSV file"),
    arg("--name", help="file name in the incoming folder (default: batch-<UTC timestamp>.csv)"),
)
def _add_batch(args: argparse.Namespace) -> int:
    from lifeboat.orchestration.assets import announce_batch

    target = data.add_batch(args.path, name=args.name)
    print(f"added {target} (pointer {data.pointer_path(target)}); commit the pointer and data/remote/")
    print(announce_batch(get_settings(), target).message)
    return EXIT_OK


@command("fingerprint", "print the training data's md5s and row counts as JSON")
def _fingerprint(args: argparse.Namespace) -> int:
    print(json.dumps(data.fingerprint(data.training_files()).as_dict(), indent=2))
    return EXIT_OK
