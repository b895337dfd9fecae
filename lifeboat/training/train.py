"""Training: one run from preprocessed features to a registered, parity-checked serving artifact.

``jobs/train.py`` calls :func:`run_training` on the output folder of the preprocess job. One call:

1. cross-validates every family's small grid (:mod:`lifeboat.training.selection`) on the train split, or,
   when it holds more than ``cv_sample_rows`` rows, on a stratified sample of that many rows; folds and
   sample come from salted hashes of the id, so they are the same on every run;
2. refits the configuration with the best mean CV ROC-AUC on the WHOLE train split and scores the holdout;
3. logs metrics, parameters, lineage tags and plots to one MLflow run (one nested run per family);
4. exports the fitted pipeline to ONNX and checks that the serving code path reproduces Spark's
   probabilities (:mod:`lifeboat.training.onnx_export`); a failure ends the job before anything is logged
   as a model or registered;
5. logs the Spark pipeline and the serving artifact, registers the latter as the ``challenger`` version and
   writes ``train_summary.json``.

The feature columns are the float32 encodings written by preprocessing; categoricals are already plain 0/1
columns, so no stage carries categorical ML metadata and tree models convert to ONNX exactly
(docs/stack-notes.md).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lifeboat.data.lineage import run_lineage
from lifeboat.registry.evaluation import binary_metrics
from lifeboat.settings import DEFAULT_CV_SAMPLE_ROWS, MIN_CV_SAMPLE_ROWS
from lifeboat.training import plots
from lifeboat.training.errors import ParityError, TrainingInputError
from lifeboat.training.inputs import load_split, open_preprocess_output
from lifeboat.training.onnx_export import export_onnx, parity_check
from lifeboat.training.output import (
    HOLDOUT,
    HOLDOUT_RAW_DIR,
    ID,
    LABEL,
    TRAIN,
    TRAIN_RAW_DIR,
    timed_step,
    to_pandas,
    write_json,
)
from lifeboat.training.selection import (
    FAMILIES,
    FAMILY_NAMES,
    FOLD,
    GRID_SIZES,
    PROBABILITY,
    ConfigScore,
    CvSample,
    best_of,
    build_candidate,
    cross_validate,
    fold_column,
    score,
    stratified_sample,
)
from lifeboat.training.summary import DATASET_SPEC_TAG, INPUT_ROWS_TAG, SUMMARY_NAME, TrainResult

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)

SPARK_MODEL_PATH = "spark_model"
#: Run artifacts other jobs read (the drift report uses the reference sample).
SPEC_ARTIFACT = "data/encoder.json"
PREPROCESS_SUMMARY_ARTIFACT = "data/preprocess_summary.json"
REFERENCE_ARTIFACT = "data/train_reference.csv"
TRAIN_SUMMARY_ARTIFACT = f"data/{SUMMARY_NAME}"
REFERENCE_MAX_ROWS = 100_000


@dataclass(frozen=True)
class TrainConfig:
    """What one training run does (see ``jobs/train.py`` for the matching command-line arguments)."""

    input_dir: Path
    output_dir: Path
    model_name: str
    families: tuple[str, ...] = FAMILIES
    cv_folds: int = 5
    seed: int = 42
    parity_tolerance: float = 1e-5
    register: bool = True
    grid: str = "full"
    parallelism: int = 2
    cv_sample_rows: int = DEFAULT_CV_SAMPLE_ROWS

    def __post_init__(self) -> None:
        unknown = [f for f in self.families if f not in FAMILIES]
        if not self.families or unknown:
            raise ValueError(f"families must be a non-empty subset of {FAMILIES}, got {self.families}")
        if self.cv_folds < 2:
            raise ValueError(f"cv_folds must be at least 2, got {self.cv_folds}")
        if self.grid not in GRID_SIZES:
            raise ValueError(f"grid must be one of {GRID_SIZES}, got {self.grid!r}")
        if self.parity_tolerance < 0:
            raise ValueError(f"parity_tolerance must not be negative, got {self.parity_tolerance}")
        if self.parallelism < 1:
            raise ValueError(f"parallelism must be at least 1, got {self.parallelism}")
        if self.cv_sample_rows < 0 or 0 < self.cv_sample_rows < MIN_CV_SAMPLE_ROWS:
            raise ValueError(
                f"cv_sample_rows must be 0 (no sampling) or at least {MIN_CV_SAMPLE_ROWS}, "
                f"got {self.cv_sample_rows}"
            )


@contextmanager
def _spark_cache() -> Iterator[Callable[[DataFrame], DataFrame]]:
    """Yield ``cached(frame)``: caches a DataFrame until the block ends, even when it ends with an error."""
    frames: list[DataFrame] = []

    def cached(frame: DataFrame) -> DataFrame:
        frames.append(frame.cache())
        return frame

    try:
        yield cached
    finally:
        for frame in frames:
            frame.unpersist()


# --- Data ---------------------------------------------------------------------------------------------------


# --- Candidates and cross-validation ------------------------------------------------------------------------


# --- ONNX export --------------------------------------------------------------------------------------------


# --- Plots and importances ----------------------------------------------------------------------------------


def feature_weights(model: PipelineModel, feature_names: Sequence[str]) -> tuple[str, dict[str, float]]:
    """Tree feature importances, or LR coefficients (on standardised features): (kind, name -> value)."""
    final: Any = model.stages[-1]
    if hasattr(final, "featureImportances"):
        values = final.featureImportances.toArray()
        kind = "importance"
    else:
        values = final.coefficients.toArray()
        kind = "coefficient"
    return kind, {name: float(v) for name, v in zip(feature_names, values, strict=True)}


def log_plots(
    labels: np.ndarray, probabilities: np.ndarray, family: str, weights: tuple[str, dict[str, float]]
) -> None:
    """Log the evaluation figures of the holdout to the active MLflow run."""
    import mlflow

    kind, values = weights
    figures = {
        "plots/roc_curve.png": plots.roc_figure(labels, probabilities),
        "plots/pr_curve.png": plots.pr_figure(labels, probabilities),
        "plots/confusion_matrix.png": plots.confusion_figure(labels, probabilities),
        "plots/calibration.png": plots.calibration_figure(labels, probabilities),
    }
    if kind == "importance":
        figures["plots/feature_importances.png"] = plots.importance_figure(
            list(values), list(values.values()), f"Feature importances ({FAMILY_NAMES[family]})", "importance"
        )
    else:
        figures["plots/coefficients.png"] = plots.importance_figure(
            list(values), list(values.values()), "Coefficients (standardised features)", "coefficient"
        )
    for path, figure in figures.items():
        try:
            mlflow.log_figure(figure, path)
        finally:
            plots.close(figure)


# --- The whole run ------------------------------------------------------------------------------------------


def reference_sample(spark: SparkSession, directory: Path, max_rows: int, seed: int) -> pd.DataFrame:
    """The train split's raw rows (a deterministic sample of ``max_rows`` if larger, without the bookkeeping
    key and 0/1 label): the drift reference."""
    from pyspark.sql import functions as F  # noqa: N812

    frame = spark.read.parquet(str(directory / TRAIN_RAW_DIR))
    if frame.count() > max_rows:
        frame = frame.orderBy(F.xxhash64(F.col(ID), F.lit(seed).cast("long"))).limit(max_rows)
    raw = to_pandas(frame).sort_values(ID).reset_index(drop=True)
    return raw.drop(columns=[c for c in (ID, LABEL) if c in raw.columns])


def _log_cv(scores: dict[str, list[ConfigScore]]) -> dict[str, dict[str, Any]]:
    """One nested MLflow run per family (every grid point's CV metrics); returns the per-family summary."""
    import mlflow

    by_family: dict[str, dict[str, Any]] = {}
    for family, family_scores in scores.items():
        best = best_of(family_scores)
        with mlflow.start_run(run_name=f"cv-{family}", nested=True):
            mlflow.set_tags({"family": family, "role": "cross-validation"})
            mlflow.log_params({f"best_{k}": v for k, v in best.params.items()})
            for config in family_scores:
                mlflow.log_metrics(
                    {"grid_cv_roc_auc": config.mean("roc_auc"), "grid_cv_accuracy": config.mean("accuracy")},
                    step=config.index,
                )
            mlflow.log_metrics(
                {
                    "cv_roc_auc": best.mean("roc_auc"),
                    "cv_roc_auc_std": best.std("roc_auc"),
                    "cv_accuracy": best.mean("accuracy"),
                    "cv_accuracy_std": best.std("accuracy"),
                }
            )
        by_family[family] = {
            "cv_roc_auc": best.mean("roc_auc"),
            "cv_accuracy": best.mean("accuracy"),
            "cv_roc_auc_std": best.std("roc_auc"),
            "params": best.params,
            "grid": [
                {"params": c.params, "cv_roc_auc": c.mean("roc_auc"), "cv_accuracy": c.mean("accuracy")}
                for c in family_scores
            ],
        }
    return by_family


def families_of(config: TrainConfig, grids: Mapping[str, Any]) -> tuple[str, ...]:
    """The families to train: the configured ones, restricted to those the dataset spec's ``models`` lists
    (when it lists any). Raises :class:`TrainingInputError` when nothing is left."""
    if not grids:
        return config.families
    chosen = tuple(f for f in config.families if f in grids)
    if not chosen:
        raise TrainingInputError(
            f"no model family to train: the run asks for {list(config.families)}, the dataset spec's models "
            f"list {sorted(grids)}"
        )
    return chosen


def run_training(spark: SparkSession, config: TrainConfig) -> TrainResult:
    """Cross-validate, refit, evaluate, export, parity-check, log and register (see the module docstring).

    MLflow must already point at the tracking store and experiment
    (``lifeboat.registry.store.configure_mlflow``).
    Raises :class:`TrainingInputError` for an unusable input folder and :class:`ParityError` when the serving
    artifact does not reproduce Spark; in both cases nothing is registered.
    """
    import mlflow
    import mlflow.spark
    import pyspark

    from lifeboat.registry.store import log_serving_model, register_challenger

    started = time.monotonic()
    durations: dict[str, float] = {}
    data = open_preprocess_output(config.input_dir)
    names = data.feature_names
    grids = data.encoder.spec.models
    families = families_of(config, grids)
    lineage = run_lineage(data.summary, spark)
    run_name = f"train-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"

    with (
        mlflow.start_run(run_name=run_name) as run,
        tempfile.TemporaryDirectory(prefix="lifeboat-train-") as tmp,
        _spark_cache() as cached,
    ):
        workdir = Path(tmp)
        run_id = run.info.run_id
        mlflow.set_tags({**lineage, "preprocess_dir": str(data.directory), "role": "training"})
        mlflow.log_params(
            {
                "families": ",".join(families),
                "cv_folds": config.cv_folds,
                "seed": config.seed,
                "grid": config.grid,
                "parity_tolerance": config.parity_tolerance,
                "train_rows": data.summary["train"]["rows"],
                "holdout_rows": data.summary["holdout"]["rows"],
            }
        )

        # Partitions are assigned and ordered by PassengerId: tree bagging then depends only on the rows, the
        # seed and the partition count, not on the parquet files' layout. The final fit is one model: it gets
        # every core. CV fits run `parallelism` at a time in threads, so each gets its share of the cores.
        cores = spark.sparkContext.defaultParallelism
        with timed_step(durations, "load", logger):
            train = cached(
                load_split(spark, data, TRAIN).repartition(max(1, cores), ID).sortWithinPartitions(ID)
            )
            holdout = cached(load_split(spark, data, HOLDOUT))
            train_by_label = {int(r[LABEL]): int(r["count"]) for r in train.groupBy(LABEL).count().collect()}
            holdout.count()
        with timed_step(durations, "cv_sample", logger):
            selection = cached(
                stratified_sample(train, train_by_label, config.cv_sample_rows, config.seed)
                .withColumn(FOLD, fold_column(config.cv_folds, config.seed))
                .repartition(max(1, cores // config.parallelism), ID)
                .sortWithinPartitions(ID)
            )
            counted = selection.groupBy(FOLD, LABEL).count().collect()
            fold_sizes: dict[int, int] = {}
            for r in counted:
                fold_sizes[int(r[FOLD])] = fold_sizes.get(int(r[FOLD]), 0) + int(r["count"])
            sample = CvSample(
                max_rows=config.cv_sample_rows,
                train_by_label=train_by_label,
                by_label={
                    label: sum(int(r["count"]) for r in counted if int(r[LABEL]) == label)
                    for label in train_by_label
                },
            )
        mlflow.log_params({"cv_sample_rows": config.cv_sample_rows, "cv_rows": sample.rows})
        logger.info(
            "train rows %d; cross-validating %s rows in folds %s",
            sample.train_rows,
            f"a stratified sample of {sample.rows}" if sample.sampled else f"all {sample.rows}",
            dict(sorted(fold_sizes.items())),
        )

        candidates = {f: build_candidate(f, names, config.seed, config.grid, grids.get(f)) for f in families}
        scores: dict[str, list[ConfigScore]] = {}
        for family, candidate in candidates.items():
            with timed_step(durations, f"cv_{family}", logger):
                scores[family] = cross_validate(candidate, selection, config.cv_folds, config.parallelism)
            best = best_of(scores[family])
            logger.info(
                "%s: best CV ROC-AUC %.4f, accuracy %.4f with %s",
                family,
                best.mean("roc_auc"),
                best.mean("accuracy"),
                best.params,
            )
        cv_by_family = _log_cv(scores)
        winner = max((best_of(s) for s in scores.values()), key=lambda s: s.mean("roc_auc"))
        family = winner.family
        cv = {
            "cv_roc_auc": winner.mean("roc_auc"),
            "cv_accuracy": winner.mean("accuracy"),
            "cv_roc_auc_std": winner.std("roc_auc"),
            "cv_accuracy_std": winner.std("accuracy"),
        }
        mlflow.set_tag("family", family)
        mlflow.set_tags({"dataset": data.encoder.spec.name, DATASET_SPEC_TAG: data.encoder.fingerprint})
        mlflow.log_params({f"model_{k}": v for k, v in winner.params.items()})
        mlflow.log_metrics(cv)
        mlflow.log_metrics(
            {
                f"cv_{metric}_{f}": v[f"cv_{metric}"]
                for f, v in cv_by_family.items()
                for metric in ("roc_auc", "accuracy")
            }
        )

        with timed_step(durations, "refit", logger):
            candidate = candidates[family]
            model = candidate.pipeline.fit(train, candidate.grid[winner.index])
        with timed_step(durations, "holdout", logger):
            spark_scores = score(model, holdout)
            labels = spark_scores[LABEL].to_numpy().astype(np.int64)
            probabilities = spark_scores[PROBABILITY].to_numpy()
            holdout_metrics = {f"holdout_{k}": v for k, v in binary_metrics(labels, probabilities).items()}
        mlflow.log_metrics(holdout_metrics)
        logger.info("holdout: %s", {k: round(v, 4) for k, v in holdout_metrics.items()})

        with timed_step(durations, "plots", logger):
            log_plots(labels, probabilities, family, feature_weights(model, names))

        info = {
            "family": family,
            "family_name": FAMILY_NAMES[family],
            "params": winner.params,
            "feature_names": list(names),
            "run_id": run_id,
            "data_fingerprint": lineage["data_fingerprint"],
            "spark_version": spark.version,
            "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        with timed_step(durations, "onnx_export", logger):
            # Spark writes (executors) and reads back the tree data here: it must be a folder the driver and
            # every executor share, as --output is for a cluster run (a driver-local temp dir is not).
            export_dir = config.output_dir / f".onnx-export-{uuid.uuid4().hex[:8]}"
            export_dir.mkdir(parents=True)
            try:
                onnx_model = export_onnx(model, names, spark, export_dir)
            finally:
                shutil.rmtree(export_dir, ignore_errors=True)
        with timed_step(durations, "parity", logger):
            holdout_raw = pd.read_parquet(data.directory / HOLDOUT_RAW_DIR)
            parity = parity_check(onnx_model, data.encoder, info, holdout_raw, spark_scores, workdir)
        mlflow.log_metric("parity_max_abs_diff", parity)
        mlflow.set_tag("parity_max_abs_diff", f"{parity:.3e}")
        if not parity <= config.parity_tolerance:
            raise ParityError(
                "ONNX serving artifact differs from the Spark pipeline on the holdout: "
                f"max |p_spark - p_onnx| = {parity:.3e} > tolerance {config.parity_tolerance:g} ({family}); "
                "nothing was registered"
            )
        logger.info("parity: max abs diff %.3e over %d holdout rows", parity, len(holdout_raw))

        with timed_step(durations, "log_models", logger):
            spark_info = mlflow.spark.log_model(
                model, artifact_path=SPARK_MODEL_PATH, pip_requirements=[f"pyspark=={pyspark.__version__}"]
            )
            spark_model_uri = str(spark_info.model_uri)
            info["spark_model_uri"] = spark_model_uri
            serving_uri = log_serving_model(onnx_model, data.encoder, info)
            mlflow.log_text(json.dumps(data.encoder.to_dict(), indent=2, sort_keys=True), SPEC_ARTIFACT)
            mlflow.log_text(
                json.dumps(data.summary, indent=2, sort_keys=True, default=str), PREPROCESS_SUMMARY_ARTIFACT
            )
            reference = reference_sample(spark, data.directory, REFERENCE_MAX_ROWS, config.seed)
            mlflow.log_text(reference.to_csv(index=False), REFERENCE_ARTIFACT)

        version: str | None = None
        if config.register:
            with timed_step(durations, "register", logger):
                tags = {
                    "run_id": run_id,
                    "family": family,
                    "parity_max_abs_diff": repr(parity),
                    "data_fingerprint": lineage["data_fingerprint"],
                    "spark_model_uri": spark_model_uri,
                    "preprocess_dir": str(data.directory),
                    "git_commit": lineage["git_commit"],
                    "holdout_percent": lineage["holdout_percent"],
                    "salt": lineage["salt"],
                    "reference_artifact": f"runs:/{run_id}/{REFERENCE_ARTIFACT}",
                    "cv_rows": str(sample.rows),
                    INPUT_ROWS_TAG: str(sum(int(i.get("rows", 0)) for i in data.summary.get("inputs", []))),
                    "dataset": data.encoder.spec.name,
                    DATASET_SPEC_TAG: data.encoder.fingerprint,
                    **{k: repr(v) for k, v in {**holdout_metrics, **cv}.items()},
                }
                version = str(register_challenger(serving_uri, config.model_name, tags).version)
            mlflow.set_tag("registered_version", version)

        durations["total"] = round(time.monotonic() - started, 2)
        result = TrainResult(
            run_id=run_id,
            model_name=config.model_name,
            version=version,
            family=family,
            params=winner.params,
            cv=cv,
            cv_by_family=cv_by_family,
            holdout=holdout_metrics,
            parity_max_abs_diff=parity,
            parity_tolerance=config.parity_tolerance,
            spark_model_uri=spark_model_uri,
            serving_model_uri=serving_uri,
            data_fingerprint=lineage["data_fingerprint"],
            preprocess_dir=str(data.directory),
            durations=durations,
            cv_sample=sample.as_dict(),
            dataset=data.encoder.spec.name,
            dataset_spec_fingerprint=data.encoder.fingerprint,
        )
        mlflow.log_text(
            json.dumps(result.as_dict(), indent=2, sort_keys=True, default=str), TRAIN_SUMMARY_ARTIFACT
        )
    config.output_dir.mkdir(parents=True, exist_ok=True)
    write_json(config.output_dir / SUMMARY_NAME, result.as_dict())
    return result
