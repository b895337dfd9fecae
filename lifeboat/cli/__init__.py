"""The ``lifeboat`` command: one subcommand per job, each a small function registered with :func:`command`.

Adding a subcommand is two lines plus its body::

    @command("drift", "write a drift report", arg("--batch", type=Path, help="the batch to compare"))
    def _drift(args: argparse.Namespace) -> int: ...

Exit codes: 0 success, 2 bad data (or a usage error), 1 any other failure. Errors are one readable
message on stderr; ``--traceback`` shows the full Python traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lifeboat.dataset.schema import DataValidationError
from lifeboat.dataset.spec import DatasetSpecError
from lifeboat.orchestration.pipeline import JobDataError

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_DATA = 2


class UnknownDatasetError(ValueError):
    """``--dataset`` names no dataset folder."""


#: Exceptions that mean "the data is wrong" (exit code 2); everything else exits with 1.
BAD_DATA_ERRORS: tuple[type[BaseException], ...] = (
    DataValidationError,
    DatasetSpecError,
    JobDataError,
    UnknownDatasetError,
)

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
        description="Retraining platform: data, training, registry, serving and drift, per dataset.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback of an error")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in COMMANDS.values():
        sub = subparsers.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        sub.add_argument(
            "--dataset",
            metavar="NAME",
            help="the dataset to work on: data/NAME/ (default: the LIFEBOAT_DATASET setting, titanic)",
        )
        for argument in cmd.arguments:
            sub.add_argument(*argument.flags, **argument.options)
        sub.set_defaults(handler=cmd.handler)
    return parser


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def select_dataset(name: str) -> None:
    """Make ``name`` the dataset of this process and of the processes it starts (``LIFEBOAT_DATASET``).

    The environment variable (not a settings argument) carries the choice, so spark-submit jobs and every
    ``get_settings()`` call see the same dataset; the settings cache is cleared.
    """
    from pydantic import ValidationError

    from lifeboat.settings import Settings, get_settings

    try:
        settings = Settings(dataset=name)
    except ValidationError as exc:
        raise UnknownDatasetError(
            f"--dataset {name!r}: a dataset name is lowercase letters, digits and _ (starting with a letter)"
        ) from exc
    folder = settings.data_root / name
    if not folder.is_dir():
        known = sorted(raw.parent.name for raw in settings.data_root.glob("*/raw") if raw.is_dir())
        raise UnknownDatasetError(
            f"--dataset {name!r}: no folder {folder} (datasets here: {', '.join(known) or 'none'})"
        )
    os.environ["LIFEBOAT_DATASET"] = name
    get_settings.cache_clear()


def print_error(name: str, exc: BaseException) -> None:
    """Print ``lifeboat <name>: error: <exc>`` on stderr."""
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
    # main() also runs in-process (tests, notebooks): --dataset holds for this call only.
    previous_dataset = os.environ.get("LIFEBOAT_DATASET")
    try:
        if args.dataset is not None:
            select_dataset(args.dataset)
        return handler(args)
    except BAD_DATA_ERRORS as exc:
        if args.traceback:
            raise
        print_error(args.command, exc)
        return EXIT_BAD_DATA
    except KeyboardInterrupt:
        print(f"lifeboat {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.traceback:
            raise
        logger.debug("lifeboat %s failed", args.command, exc_info=True)
        print_error(args.command, exc)
        return EXIT_FAILURE
    finally:
        if args.dataset is not None:
            _restore_dataset(previous_dataset)


def _restore_dataset(previous: str | None) -> None:
    """Put ``LIFEBOAT_DATASET`` back as it was before ``--dataset`` (and re-read the settings)."""
    from lifeboat.settings import get_settings

    if previous is None:
        os.environ.pop("LIFEBOAT_DATASET", None)
    else:
        os.environ["LIFEBOAT_DATASET"] = previous
    get_settings.cache_clear()


# The subcommands register themselves (@command) when their modules are imported: last, as they use the above.
from lifeboat.cli import data, dataset, drift, labels, models, monitor, stack  # noqa: E402, F401

if __name__ == "__main__":
    sys.exit(main())
