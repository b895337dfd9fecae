"""spark-submit application: fit candidate pipelines, log to MLflow, export + parity-check ONNX, register.

    spark-submit --master local[2] jobs/train.py --input .lifeboat/titanic/runs/<run>/preprocess \\
        --output .lifeboat/titanic/runs/<run>/train

Exit codes: 0 done; 2 unusable input folder or arguments; 3 the ONNX serving artifact failed the parity check
(nothing registered); 1 any other failure. The logic lives in :mod:`lifeboat.training.train`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from lifeboat.orchestration.pipeline import report_failure
from lifeboat.registry.store import configure_mlflow
from lifeboat.settings import get_settings
from lifeboat.training.errors import ExportError, ParityError, TrainingInputError
from lifeboat.training.inputs import open_preprocess_output
from lifeboat.training.selection import FAMILIES, GRID_SIZES
from lifeboat.training.spark import job_session
from lifeboat.training.train import SUMMARY_NAME, TrainConfig, run_training

logger = logging.getLogger("lifeboat.jobs.train")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_PARITY = 3


def _families(text: str) -> tuple[str, ...]:
    families = tuple(f.strip() for f in text.split(",") if f.strip())
    unknown = [f for f in families if f not in FAMILIES]
    if not families or unknown:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated subset of {','.join(FAMILIES)}, got {text!r}"
        )
    return families


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments; defaults come from lifeboat's settings."""
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="train", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--input", type=Path, required=True, help="output folder of jobs/preprocess.py")
    parser.add_argument("--output", type=Path, required=True, help=f"folder for {SUMMARY_NAME}")
    parser.add_argument(
        "--families",
        type=_families,
        default=tuple(settings.model_families),
        help=f"comma-separated model families to cross-validate ({','.join(FAMILIES)})",
    )
    parser.add_argument(
        "--cv-folds", type=int, default=settings.cv_folds, choices=range(2, 11), metavar="2..10"
    )
    parser.add_argument("--seed", type=int, default=settings.seed, help="seed of the CV folds and the trees")
    parser.add_argument("--model-name", default=settings.model_name, help="registered model name")
    parser.add_argument("--experiment", default=settings.experiment_name, help="MLflow experiment name")
    parser.add_argument(
        "--parity-tolerance",
        type=_non_negative,
        default=settings.parity_tolerance,
        help="max |p_spark - p_onnx| allowed on the holdout",
    )
    parser.add_argument(
        "--register",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="register the serving artifact as the challenger version (default: yes)",
    )
    parser.add_argument(
        "--grid",
        choices=GRID_SIZES,
        default="full",
        help="parameter grids: full, or one point per family (small)",
    )
    parser.add_argument("--parallelism", type=int, default=2, help="CV fits run at once")
    parser.add_argument(
        "--cv-sample-rows",
        type=int,
        default=settings.cv_sample_rows,
        help="cross-validate on a stratified sample of at most this many train rows (0: all rows); "
        "the chosen model is always fitted on every train row",
    )
    return parser.parse_args(argv)


def _report(title: str, problems: list[str]) -> None:
    report_failure("train", title, problems)


def main(argv: list[str] | None = None) -> int:
    """Train, evaluate, export, parity-check and register; return the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        config = TrainConfig(
            input_dir=args.input,
            output_dir=args.output,
            model_name=args.model_name,
            families=args.families,
            cv_folds=args.cv_folds,
            seed=args.seed,
            parity_tolerance=args.parity_tolerance,
            register=args.register,
            grid=args.grid,
            parallelism=args.parallelism,
            cv_sample_rows=args.cv_sample_rows,
        )
        open_preprocess_output(config.input_dir)
    except (ValueError, TrainingInputError) as exc:
        _report("unusable input", [str(exc)])
        return EXIT_BAD_INPUT
    settings = get_settings().model_copy(update={"experiment_name": args.experiment})
    try:
        configure_mlflow(settings)
        with job_session("lifeboat-train") as spark:
            result = run_training(spark, config)
    except TrainingInputError as exc:
        _report("unusable input", [str(exc)])
        return EXIT_BAD_INPUT
    except (ParityError, ExportError) as exc:
        _report("the serving artifact does not reproduce the Spark model", [str(exc)])
        return EXIT_PARITY
    except Exception as exc:  # any other failure must still exit non-zero with a readable reason
        logger.exception("train failed")
        _report("unexpected error", [f"{type(exc).__name__}: {exc}"])
        return EXIT_FAILED
    registered = (
        f"registered {result.model_name} version {result.version} (@challenger)"
        if result.version
        else "not registered"
    )
    print(
        f"trained {result.family} ({', '.join(f'{k}={v}' for k, v in result.params.items())}): "
        f"CV ROC-AUC {result.cv['cv_roc_auc']:.4f}, CV accuracy {result.cv['cv_accuracy']:.4f}; "
        f"holdout ROC-AUC {result.holdout['holdout_roc_auc']:.4f}, "
        f"accuracy {result.holdout['holdout_accuracy']:.4f}; "
        f"parity {result.parity_max_abs_diff:.2e}; run {result.run_id}; {registered}; "
        f"{result.durations['total']:.0f} s -> {config.output_dir / SUMMARY_NAME}"
    )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
