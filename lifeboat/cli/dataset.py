"""``lifeboat dataset init|validate|list``: bring a dataset, check datasets, list them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lifeboat.cli import EXIT_BAD_DATA, EXIT_OK, arg, command, print_error
from lifeboat.settings import get_settings

ACTIONS = ("init", "validate", "list")
INIT_USAGE = (
    "usage: lifeboat dataset init NAME --from FILE --label COLUMN [--positive VALUE] [--id COLUMN] [--force]"
)


class DatasetUsageError(ValueError):
    """The arguments do not fit the action (e.g. ``init`` without ``--from``)."""


#: Options that only one action takes: dest -> (flag, action).
ACTION_OPTIONS = {
    "source": ("--from", "init"),
    "label": ("--label", "init"),
    "positive": ("--positive", "init"),
    "id_column": ("--id", "init"),
    "force": ("--force", "init"),
    "all_datasets": ("--all", "validate"),
    "as_json": ("--json", "list"),
}


def _check_options(args: argparse.Namespace) -> None:
    """Refuse an option given to an action that does not take it (it would be silently ignored)."""
    for dest, (flag, action) in ACTION_OPTIONS.items():
        if getattr(args, dest) not in (None, False) and args.action != action:
            raise DatasetUsageError(f"{flag} is an option of `lifeboat dataset {action}`, not {args.action}")
    if args.action == "list" and args.name is not None:
        raise DatasetUsageError("`lifeboat dataset list` takes no NAME")


@command(
    "dataset",
    "bring a dataset (init: draft its spec from a CSV/Parquet file and version the data), validate, list",
    arg("action", choices=ACTIONS, help="init NAME --from FILE --label COLUMN | validate [NAME] | list"),
    arg(
        "name",
        nargs="?",
        metavar="NAME",
        help="the dataset: data/NAME/ (validate: default the --dataset one)",
    ),
    arg("--from", dest="source", type=Path, metavar="FILE", help="init: the CSV or Parquet file to bring"),
    arg("--label", metavar="COLUMN", help="init: the label column"),
    arg(
        "--positive",
        metavar="VALUE",
        help="init: the label's positive value (unless 0/1, true/false, yes/no)",
    ),
    arg("--id", dest="id_column", metavar="COLUMN", help="init: the column that identifies a row"),
    arg("--force", action="store_true", help="init: overwrite an existing data/NAME/"),
    arg("--all", dest="all_datasets", action="store_true", help="validate: every dataset of the data folder"),
    arg("--json", dest="as_json", action="store_true", help="list: JSON instead of lines"),
)
def _dataset(args: argparse.Namespace) -> int:
    try:
        _check_options(args)
        if args.action == "init":
            return _init(args)
        if args.action == "validate":
            return _validate(args)
        return _list(args)
    except DatasetUsageError as exc:
        print_error("dataset", exc)
        return EXIT_BAD_DATA


def _init(args: argparse.Namespace) -> int:
    from lifeboat.data.datasets import DatasetFolderError, InferenceError, create_dataset

    if args.name is None or args.source is None or args.label is None:
        raise DatasetUsageError(INIT_USAGE)
    try:
        check, pointer = create_dataset(
            args.name,
            args.source,
            args.label,
            positive=args.positive,
            id_column=args.id_column,
            force=args.force,
        )
    except (DatasetFolderError, InferenceError) as exc:
        print_error("dataset", exc)
        return EXIT_BAD_DATA
    print(f"wrote {check.spec_path} (a draft: review it) and {pointer} (pushed to the DVC remote)")
    print(check.summary())
    name = check.name
    print(
        f"next: review the spec, `lifeboat dataset validate {name}`, then `lifeboat train --dataset {name}`"
    )
    return EXIT_OK


def _validate(args: argparse.Namespace) -> int:
    from lifeboat.data.datasets import DatasetFolderError, check_dataset, dataset_names
    from lifeboat.dataset.schema import DataValidationError
    from lifeboat.dataset.spec import DatasetSpecError

    if args.all_datasets and args.name is not None:
        raise DatasetUsageError("give a NAME or --all, not both")
    names = dataset_names() if args.all_datasets else [args.name or get_settings().dataset]
    if not names:
        raise DatasetUsageError(f"no dataset.yaml in any folder of {get_settings().data_root}")
    failures = 0
    for name in names:
        try:
            print(check_dataset(name).summary())
        except (DatasetSpecError, DataValidationError, DatasetFolderError) as exc:
            failures += 1
            print_error("dataset validate", exc)
    return EXIT_BAD_DATA if failures else EXIT_OK


def _list(args: argparse.Namespace) -> int:
    from lifeboat.data.datasets import FINGERPRINT_PREFIX, list_datasets

    entries = list_datasets()
    if args.as_json:
        print(json.dumps([e.as_dict() for e in entries], indent=2))
        return EXIT_OK
    names = max((len(e.name) for e in entries), default=0)
    models = max((len(e.registered_model or "") for e in entries), default=0)
    for e in entries:
        rows = f"{e.rows} rows" if e.rows is not None else "not pulled"
        if e.error is not None:
            print(f"{e.name:<{names}}  invalid spec: {e.error}  ({rows})")
            continue
        fingerprint = (e.fingerprint or "")[:FINGERPRINT_PREFIX]
        print(f"{e.name:<{names}}  model {e.registered_model:<{models}}  {rows:>12}  spec {fingerprint}")
    return EXIT_OK
