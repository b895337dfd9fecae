"""spark-submit application: a dataset's raw CSVs -> validated feature table + deterministic holdout split.

    spark-submit --master local[2] jobs/preprocess.py --output .lifeboat/titanic/runs/<run>/preprocess

Exit codes: 0 done; 2 invalid input data or dataset spec (nothing written to --output); 1 any other failure.
The logic lives in :mod:`lifeboat.training.preprocessing`; this file only parses arguments and runs it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from lifeboat.dataset.spec import DatasetSpecError, load_spec
from lifeboat.orchestration.pipeline import report_failure
from lifeboat.settings import get_settings
from lifeboat.training.errors import PreprocessError
from lifeboat.training.preprocessing import run_preprocess
from lifeboat.training.reading import discover_inputs, validate_inputs
from lifeboat.training.spark import job_session

logger = logging.getLogger("lifeboat.jobs.preprocess")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_DATA = 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments; defaults come from lifeboat's settings."""
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="preprocess", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--spec",
        type=Path,
        default=settings.dataset_spec,
        help="the dataset spec (data/<dataset>/dataset.yaml)",
    )
    parser.add_argument("--raw", type=Path, default=settings.raw_data, help="the labelled training CSV")
    parser.add_argument(
        "--incoming",
        type=Path,
        default=settings.incoming_dir,
        help="folder of new labelled batches: every *.csv in it, by name, after --raw (later files win)",
    )
    parser.add_argument("--output", type=Path, required=True, help="output folder (replaced atomically)")
    parser.add_argument(
        "--holdout-percent",
        type=int,
        default=settings.holdout_percent,
        choices=range(1, 100),
        metavar="1..99",
        help="share of rows (by a hash of the id) held out for evaluation",
    )
    parser.add_argument("--salt", type=int, default=settings.seed, help="salt of the split hash")
    return parser.parse_args(argv)


def _report(title: str, problems: list[str]) -> None:
    report_failure("preprocess", title, problems)


def main(argv: list[str] | None = None) -> int:
    """Validate, then preprocess with Spark; return the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        spec = load_spec(args.spec)
    except DatasetSpecError as exc:
        _report("invalid dataset spec", [str(exc)])
        return EXIT_BAD_DATA
    try:
        files = validate_inputs(discover_inputs(args.raw, args.incoming), spec)
    except PreprocessError as exc:
        _report("invalid input data", exc.problems)
        return EXIT_BAD_DATA
    try:
        with job_session("lifeboat-preprocess") as spark:
            summary = run_preprocess(spark, files, args.output, args.holdout_percent, args.salt, spec)
    except PreprocessError as exc:
        _report("invalid input data", exc.problems)
        return EXIT_BAD_DATA
    except Exception as exc:  # any other failure must still exit non-zero with a readable reason
        logger.exception("preprocess failed")
        _report("unexpected error", [f"{type(exc).__name__}: {exc}"])
        return EXIT_FAILED
    train, holdout = summary["train"], summary["holdout"]
    print(
        f"preprocessed {len(files)} file(s), {summary['rows_in']} rows -> {summary['rows_out']} "
        f"({summary['exact_duplicates_removed']} exact duplicates, "
        f"{summary['superseded_rows_removed']} superseded); "
        f"train {train['rows']} ({train['positive_rate']:.1%} positive), "
        f"holdout {holdout['rows']} ({holdout['positive_rate']:.1%} positive) -> {args.output}"
    )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
