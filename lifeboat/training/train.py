"""Training: candidate Spark ML pipelines, cross-validation, holdout scoring, ONNX export, parity, MLflow.

``jobs/train.py`` calls :func:`run_training` on the output folder of the preprocess job. One call:

1. cross-validates every family's small grid (:func:`build_candidate`, :func:`cross_validate`) on the train
   split — or, when it holds more than ``cv_sample_rows`` rows, on a stratified sample of that many rows
   (:func:`stratified_sample`); folds and sample come from salted hashes of PassengerId, so they are the same
   on every run;
2. refits the configuration with the best mean CV ROC-AUC on the WHOLE train split and scores the holdout;
3. logs metrics, parameters, lineage tags and plots to one MLflow run (one nested run per family);
4. exports the fitted pipeline to ONNX (:func:`export_onnx`) and checks that the serving code path — raw
   holdout rows through :class:`lifeboat.registry.artifact.ServingModel` — reproduces Spark's probabilities
   (:func:`parity_check`); a failure ends the job before anything is logged as a model or registered;
5. logs the Spark pipeline and the serving artifact, registers the latter as the ``challenger`` version and
   writes ``train_summary.json``.

The feature columns are the float32 encodings written by preprocessing; categoricals are already plain 0/1
columns, so no stage carries categorical ML metadata and tree models convert to ONNX exactly (STACK_NOTES.md).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.pool import ThreadPool
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lifeboat.data.lineage import run_lineage
from lifeboat.dataset.features import FeatureSpec, FeatureSpecError
from lifeboat.registry.artifact import EXTRA_DIR, INFO_FILE, ONNX_FILE, SPEC_FILE, ArtifactError, ServingModel
from lifeboat.registry.evaluation import binary_metrics
from lifeboat.settings import DEFAULT_CV_SAMPLE_ROWS, MIN_CV_SAMPLE_ROWS
from lifeboat.training import plots
from lifeboat.training.preprocessing import (
    FEATURES_DIR,
    HOLDOUT,
    HOLDOUT_RAW_DIR,
    ID,
    LABEL,
    SPLIT,
    SUMMARY_FILE,
    TRAIN,
    TRAIN_RAW_DIR,
    load_summary,
    timed_step,
    to_pandas,
    write_json,
)
from lifeboat.training.preprocessing import SPEC_FILE as PREPROCESS_SPEC_FILE

if TYPE_CHECKING:
    from pyspark.ml import Pipeline, PipelineModel
    from pyspark.ml.param import Param
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)

FAMILIES: tuple[str, ...] = ("lr", "rf", "gbt")
FAMILY_NAMES = {"lr": "logistic regression", "rf": "random forest", "gbt": "gradient-boosted trees"}
GRID_SIZES: tuple[str, ...] = ("full", "small")
FOLD = "_fold"
PROBABILITY = "probability"
SPARK_MODEL_PATH = "spark_model"
SUMMARY_NAME = "train_summary.json"
#: Run artifacts other jobs read (the drift report uses the reference sample).
SPEC_ARTIFACT = "data/feature_spec.json"
PREPROCESS_SUMMARY_ARTIFACT = "data/preprocess_summary.json"
REFERENCE_ARTIFACT = "data/train_reference.csv"
TRAIN_SUMMARY_ARTIFACT = f"data/{SUMMARY_NAME}"
REFERENCE_MAX_ROWS = 100_000
#: Salt of the hash that orders passengers for the cross-validation sample.
CV_SAMPLE_SALT = "cv-sample"


class TrainingError(RuntimeError):
    """Training cannot complete."""


class TrainingInputError(TrainingError):
    """The preprocess output folder is missing or incomplete."""


class ParityError(TrainingError):
    """The serving artifact does not reproduce Spark's holdout probabilities, or does not load."""


class ExportError(TrainingError):
    """The fitted pipeline cannot be converted to ONNX exactly."""


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


@dataclass
class Candidate:
    """One model family: its unfitted pipeline and the grid of classifier parameters to cross-validate."""

    family: str
    pipeline: Pipeline
    classifier: Any
    grid: list[dict[Param, Any]]

    def grid_params(self, index: int) -> dict[str, Any]:
        """Readable parameters of grid point ``index`` (grid values over the classifier's fixed ones)."""
        fixed = {
            p.name: self.classifier.getOrDefault(p)
            for p in self.classifier.params
            if self.classifier.isSet(p) and not p.name.endswith("Col")
        }
        return {**fixed, **{p.name: v for p, v in self.grid[index].items()}}


@dataclass
class ConfigScore:
    """Cross-validation result of one grid point."""

    family: str
    index: int
    params: dict[str, Any]
    fold_metrics: list[dict[str, float]] = field(default_factory=list)

    def mean(self, metric: str) -> float:
        """Mean of ``metric`` over the folds."""
        return float(np.mean([m[metric] for m in self.fold_metrics]))

    def std(self, metric: str) -> float:
        """Standard deviation of ``metric`` over the folds."""
        return float(np.std([m[metric] for m in self.fold_metrics]))


@dataclass
class TrainResult:
    """What :func:`run_training` did; ``as_dict`` is ``train_summary.json``."""

    run_id: str
    model_name: str
    version: str | None
    family: str
    params: dict[str, Any]
    cv: dict[str, float]
    cv_by_family: dict[str, dict[str, Any]]
    holdout: dict[str, float]
    parity_max_abs_diff: float
    parity_tolerance: float
    spark_model_uri: str
    serving_model_uri: str
    data_fingerprint: str
    preprocess_dir: str
    durations: dict[str, float]
    cv_sample: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "run_id": self.run_id,
            "model_name": self.model_name,
            "version": self.version,
            "registered": self.version is not None,
            "family": self.family,
            "params": self.params,
            "cv": self.cv,
            "cv_by_family": self.cv_by_family,
            "cv_sample": self.cv_sample,
            "holdout": self.holdout,
            "parity": {"max_abs_diff": self.parity_max_abs_diff, "tolerance": self.parity_tolerance},
            "spark_model_uri": self.spark_model_uri,
            "serving_model_uri": self.serving_model_uri,
            "data_fingerprint": self.data_fingerprint,
            "preprocess_dir": self.preprocess_dir,
            "durations_seconds": self.durations,
        }


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


@dataclass(frozen=True)
class PreprocessOutput:
    """The pieces of a preprocess output folder that training reads."""

    directory: Path
    summary: dict[str, Any]
    spec: FeatureSpec

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The model's input columns, in order."""
        return self.spec.feature_names


def open_preprocess_output(directory: Path) -> PreprocessOutput:
    """Check a preprocess output folder and read its summary and feature spec."""
    directory = directory.resolve()
    missing = [
        name
        for name in (FEATURES_DIR, HOLDOUT_RAW_DIR, TRAIN_RAW_DIR, PREPROCESS_SPEC_FILE, SUMMARY_FILE)
        if not (directory / name).exists()
    ]
    if not directory.is_dir() or missing:
        raise TrainingInputError(
            f"{directory} is not a complete preprocess output "
            f"(missing: {', '.join(missing) or 'the folder'}); "
            "run jobs/preprocess.py first"
        )
    try:
        spec = FeatureSpec.load(directory / PREPROCESS_SPEC_FILE)
        summary = load_summary(directory)
    except (FeatureSpecError, OSError, json.JSONDecodeError) as exc:
        raise TrainingInputError(f"{directory}: {exc}") from exc
    return PreprocessOutput(directory=directory, summary=summary, spec=spec)


def fold_column(folds: int, seed: int) -> Any:
    """Fold 0..folds-1 of each passenger from a salted hash of PassengerId (stable across runs)."""
    from pyspark.sql import functions as F  # noqa: N812

    return F.pmod(
        F.xxhash64(F.col(ID).cast("long"), F.lit(seed).cast("long"), F.lit("cv-fold")), F.lit(folds)
    )


def load_split(spark: SparkSession, data: PreprocessOutput, split: str) -> DataFrame:
    """One split of the feature table: PassengerId, Survived and the feature columns."""
    from pyspark.sql import functions as F  # noqa: N812

    frame = spark.read.parquet(str(data.directory / FEATURES_DIR))
    return frame.filter(F.col(SPLIT) == split).select(ID, LABEL, *data.feature_names)


@dataclass(frozen=True)
class CvSample:
    """The train rows cross-validated: all of them, or a stratified sample (:func:`stratified_sample`)."""

    max_rows: int
    train_by_label: dict[int, int]
    by_label: dict[int, int]

    @property
    def train_rows(self) -> int:
        """Rows of the whole train split."""
        return sum(self.train_by_label.values())

    @property
    def rows(self) -> int:
        """Rows cross-validated."""
        return sum(self.by_label.values())

    @property
    def sampled(self) -> bool:
        """Whether model selection saw fewer rows than the train split holds."""
        return self.rows < self.train_rows

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (``cv_sample`` of ``train_summary.json``)."""
        return {
            "max_rows": self.max_rows,
            "sampled": self.sampled,
            "train_rows": self.train_rows,
            "rows": self.rows,
            "train_by_label": {str(k): v for k, v in sorted(self.train_by_label.items())},
            "by_label": {str(k): v for k, v in sorted(self.by_label.items())},
        }


def stratified_quotas(counts: dict[int, int], max_rows: int) -> dict[int, int]:
    """Rows to draw per label for a sample of ``max_rows``: each label's share of ``counts``, summing to it.

    Largest remainders decide the rounding; a label present in ``counts`` keeps at least one row. With
    ``max_rows`` 0 or not below the total, every row is kept.
    """
    total = sum(counts.values())
    if max_rows == 0 or total <= max_rows:
        return dict(counts)
    exact = {label: max_rows * n / total for label, n in counts.items()}
    quotas = {label: int(value) for label, value in exact.items()}
    by_remainder = sorted(exact, key=lambda label: (quotas[label] - exact[label], label))
    for label in by_remainder[: max_rows - sum(quotas.values())]:
        quotas[label] += 1
    for label, n in counts.items():
        if n > 0 and quotas[label] == 0:
            quotas[label] = 1
    return quotas


def sample_order(seed: int) -> Any:
    """The order passengers enter the CV sample in: a salted hash of PassengerId (stable across runs)."""
    from pyspark.sql import functions as F  # noqa: N812

    return F.xxhash64(F.col(ID).cast("long"), F.lit(seed).cast("long"), F.lit(CV_SAMPLE_SALT))


def stratified_sample(frame: DataFrame, counts: dict[int, int], max_rows: int, seed: int) -> DataFrame:
    """At most ``max_rows`` rows of ``frame`` with the label mix of ``counts`` (rows per label of ``frame``).

    ``frame`` itself when it is not larger (or ``max_rows`` is 0). Otherwise each label contributes its
    :func:`stratified_quotas` rows: those first in :func:`sample_order`, so the sample is exact in size and
    label mix, and depends only on the PassengerIds and the seed, never on partitioning.
    """
    from functools import reduce

    from pyspark.sql import functions as F  # noqa: N812

    quotas = stratified_quotas(counts, max_rows)
    if quotas == counts:
        return frame
    order = sample_order(seed)
    parts = [
        frame.filter(F.col(LABEL) == label).orderBy(order, ID).limit(quota)
        for label, quota in sorted(quotas.items())
    ]
    return reduce(lambda a, b: a.unionByName(b), parts)


# --- Candidates and cross-validation ------------------------------------------------------------------------


def build_candidate(family: str, feature_names: Sequence[str], seed: int, grid: str = "full") -> Candidate:
    """The pipeline (VectorAssembler -> [StandardScaler for LR] -> classifier) and parameter grid of a family.

    ``full`` grids are small on purpose (two points each; tree counts kept modest for 2-core machines and for
    the ONNX export); ``small`` is one point per family, for tests and smoke runs.
    """
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import GBTClassifier, LogisticRegression, RandomForestClassifier
    from pyspark.ml.feature import StandardScaler, VectorAssembler
    from pyspark.ml.tuning import ParamGridBuilder

    full = grid == "full"
    stages: list[Any] = [VectorAssembler(inputCols=list(feature_names), outputCol="features")]
    builder = ParamGridBuilder()
    classifier: Any
    if family == "lr":
        stages.append(StandardScaler(inputCol="features", outputCol="scaled", withMean=True, withStd=True))
        classifier = LogisticRegression(
            featuresCol="scaled",
            labelCol=LABEL,
            family="binomial",
            maxIter=100,
            tol=1e-4,
            elasticNetParam=0.0,
        )
        builder.addGrid(classifier.regParam, [0.01, 0.1] if full else [0.05])
    elif family == "rf":
        classifier = RandomForestClassifier(
            featuresCol="features",
            labelCol=LABEL,
            numTrees=50 if full else 20,
            featureSubsetStrategy="sqrt",
            minInstancesPerNode=2,
            seed=seed,
        )
        builder.addGrid(classifier.maxDepth, [5, 8] if full else [5])
    elif family == "gbt":
        classifier = GBTClassifier(
            featuresCol="features",
            labelCol=LABEL,
            maxIter=20 if full else 10,
            maxDepth=3,
            seed=seed,
        )
        builder.addGrid(classifier.stepSize, [0.1, 0.3] if full else [0.3])
    else:
        raise ValueError(f"unknown model family {family!r}; expected one of {FAMILIES}")
    stages.append(classifier)
    return Candidate(
        family=family, pipeline=Pipeline(stages=stages), classifier=classifier, grid=builder.build()
    )


def score(model: PipelineModel, frame: DataFrame) -> pd.DataFrame:
    """PassengerId, Survived and the survival probability of every row (collected to the driver)."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F  # noqa: N812

    scored = model.transform(frame).select(
        ID, LABEL, vector_to_array(F.col(PROBABILITY))[1].alias(PROBABILITY)
    )
    return to_pandas(scored).sort_values(ID).reset_index(drop=True)


def cross_validate(
    candidate: Candidate, data: DataFrame, folds: int, parallelism: int = 2
) -> list[ConfigScore]:
    """k-fold cross-validation of every grid point; ``data`` must carry the :data:`FOLD` column.

    Each (fold, grid point) fit is one task; ``parallelism`` tasks run at once in driver threads (as Spark's
    CrossValidator does). Validation predictions are collected and scored with
    :func:`lifeboat.registry.evaluation.binary_metrics`, the same definitions as the holdout metrics.
    """
    from pyspark.sql import functions as F  # noqa: N812
    from pyspark.util import inheritable_thread_target

    tasks = [(fold, index) for fold in range(folds) for index in range(len(candidate.grid))]

    def fit_and_score(task: tuple[int, int]) -> tuple[int, int, dict[str, float]]:
        fold, index = task
        started = time.monotonic()
        model = candidate.pipeline.fit(data.filter(F.col(FOLD) != fold), candidate.grid[index])
        fitted = time.monotonic()
        scored = score(model, data.filter(F.col(FOLD) == fold))
        logger.info(
            "cv %s fold %d grid point %d: fit %.1f s, score %.1f s",
            candidate.family,
            fold,
            index,
            fitted - started,
            time.monotonic() - fitted,
        )
        return fold, index, binary_metrics(scored[LABEL].to_numpy(), scored[PROBABILITY].to_numpy())

    with ThreadPool(max(1, min(parallelism, len(tasks)))) as pool:
        outcomes = pool.map(inheritable_thread_target(data.sparkSession)(fit_and_score), tasks)
    results = [ConfigScore(candidate.family, i, candidate.grid_params(i)) for i in range(len(candidate.grid))]
    for _fold, index, metrics in sorted(outcomes, key=lambda o: (o[1], o[0])):
        results[index].fold_metrics.append(metrics)
    return results


def best_of(scores: Sequence[ConfigScore]) -> ConfigScore:
    """The grid point with the highest mean CV ROC-AUC (the first one on ties)."""
    return max(scores, key=lambda s: (s.mean("roc_auc"), -s.index))


# --- ONNX export --------------------------------------------------------------------------------------------


class _NodeTable:
    """The two methods onnxmltools' tree reader calls on a Spark DataFrame, served from pandas."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self._frame = frame

    def toPandas(self) -> pd.DataFrame:  # noqa: N802 (the name onnxmltools calls)
        return self._frame

    def count(self) -> int:
        return len(self._frame)


def _tree_tables(ensemble: Any, spark: SparkSession, workdir: Path) -> list[pd.DataFrame]:
    """The node tables of every tree of a fitted ensemble, from ONE save of the ensemble.

    onnxmltools saves and re-reads each tree separately (five Spark jobs per tree: ~1.5 s a tree here); one
    save of the whole ensemble gives the same node data. Thresholds are rounded down to float32
    (:func:`float32_at_or_below`) and categorical splits refused (:func:`_float32_split`). ``workdir`` must be
    readable by the driver and the executors.
    """
    path = workdir / f"ensemble-{uuid.uuid4().hex[:8]}"
    ensemble.write().overwrite().save(str(path))
    try:
        nodes = to_pandas(spark.read.parquet(str(path / "data")).select("treeID", "nodeData.*"))
    finally:
        shutil.rmtree(path, ignore_errors=True)
    tables = []
    for tree_id, tree in enumerate(ensemble.trees):
        table = (
            nodes[nodes["treeID"] == tree_id].drop(columns="treeID").sort_values("id").reset_index(drop=True)
        )
        if len(table) != tree.numNodes:
            raise ExportError(f"tree {tree_id}: saved {len(table)} nodes, the model has {tree.numNodes}")
        table["split"] = [_float32_split(split, tree_id) for split in table["split"]]
        tables.append(table)
    return tables


def float32_at_or_below(value: float) -> float:
    """The largest float32 that is <= ``value`` (as a Python float).

    Spark sends a row left when ``x <= threshold`` with a double threshold (often the midpoint of two
    candidate values); ONNX stores thresholds as float32 and the model's inputs are float32. For a float32
    ``x``, ``x <= t`` holds exactly when ``x <= float32_at_or_below(t)`` — for every input, seen in training
    or not — whereas rounding ``t`` to the NEAREST float32 flips values lying between ``t`` and its rounding:
    values on a midpoint, which held-out or served rows can take, and so can training rows once Spark samples
    the candidate splits (above 10,000 rows: the 100k-row benchmark failed its parity check this way).
    """
    rounded = np.float32(value)
    if float(rounded) > value:
        rounded = np.nextafter(rounded, np.float32(-np.inf))
    return float(rounded)


def _float32_split(split: Any, tree_id: int) -> dict[str, Any]:
    """One node's split as the dict onnxmltools reads, its threshold made exact for float32 inputs.

    Categorical splits are refused: they would convert into wrong thresholds (STACK_NOTES.md).
    """
    if isinstance(split, dict):
        feature, values, categories = (
            split["featureIndex"],
            split["leftCategoriesOrThreshold"],
            split["numCategories"],
        )
    else:
        feature, values, categories = split[0], split[1], split[2]
    if categories is not None and categories != -1:
        raise ExportError(
            f"tree {tree_id} has a categorical split; encode categoricals as plain numeric columns"
        )
    values = list(values) if values is not None else []
    if values:
        values[0] = float32_at_or_below(float(values[0]))
    return {"featureIndex": feature, "leftCategoriesOrThreshold": values, "numCategories": categories}


def _forest_converter(tables: list[pd.DataFrame]) -> Callable[[Any, Any, Any], None]:
    """ONNX converter of a RandomForestClassificationModel whose trees are given as node tables.

    Same graph as onnxmltools' own converter: one TreeEnsembleClassifier averaging the trees' class
    distributions.
    """
    from onnxmltools.convert.common.tree_ensemble import (
        add_tree_to_attribute_pairs,
        get_default_tree_classifier_attribute_pairs,
    )
    from onnxmltools.convert.sparkml.operator_converters.tree_ensemble_common import (
        sparkml_tree_dataset_to_sklearn,
    )
    from onnxmltools.convert.sparkml.operator_converters.tree_helper import rewrite_ids_and_process

    def convert(scope: Any, operator: Any, container: Any) -> None:
        forest = operator.raw_operator
        op_type = "TreeEnsembleClassifier"
        attrs = get_default_tree_classifier_attribute_pairs()
        attrs["name"] = scope.get_unique_operator_name(op_type)
        attrs["classlabels_int64s"] = list(range(forest.numClasses))
        weight = 1.0 / len(tables)
        for tree_id, table in enumerate(tables):
            tree_attrs = get_default_tree_classifier_attribute_pairs()
            tree_attrs["name"] = attrs["name"]
            tree_attrs["classlabels_int64s"] = attrs["classlabels_int64s"]
            tree = sparkml_tree_dataset_to_sklearn(_NodeTable(table), is_classifier=True)
            add_tree_to_attribute_pairs(tree_attrs, True, tree, tree_id, weight, 0, True)
            for key, values in rewrite_ids_and_process(tree_attrs, logger).items():
                if isinstance(values, list) and key != "classlabels_int64s":
                    attrs[key].extend(values)
        container.add_node(
            op_type,
            operator.input_full_names,
            [operator.outputs[0].full_name, operator.outputs[1].full_name],
            op_domain="ai.onnx.ml",
            **attrs,
        )

    return convert


def _boosting_converter(
    tables: list[pd.DataFrame], weights: Sequence[float]
) -> Callable[[Any, Any, Any], None]:
    """ONNX converter of a GBTClassificationModel whose trees are given as node tables.

    One TreeEnsembleRegressor sums the weighted trees into the margin m; as in Spark, the raw prediction is
    [-m, m] and the probability 1 / (1 + exp(-2 * raw)).
    """
    from onnx import TensorProto
    from onnxmltools.convert.common._apply_operation import (
        apply_add,
        apply_argmax,
        apply_concat,
        apply_exp,
        apply_mul,
        apply_neg,
        apply_reciprocal,
    )
    from onnxmltools.convert.common.tree_ensemble import (
        add_tree_to_attribute_pairs,
        get_default_tree_regressor_attribute_pairs,
    )
    from onnxmltools.convert.sparkml.operator_converters.tree_ensemble_common import (
        sparkml_tree_dataset_to_sklearn,
    )
    from onnxmltools.convert.sparkml.operator_converters.tree_helper import rewrite_ids_and_process

    def convert(scope: Any, operator: Any, container: Any) -> None:
        op_type = "TreeEnsembleRegressor"
        attrs = get_default_tree_regressor_attribute_pairs()
        attrs["name"] = scope.get_unique_operator_name(op_type)
        attrs["n_targets"] = 1
        for tree_id, (table, weight) in enumerate(zip(tables, weights, strict=True)):
            tree_attrs = get_default_tree_regressor_attribute_pairs()
            tree_attrs["name"] = attrs["name"]
            tree_attrs["n_targets"] = 1
            tree = sparkml_tree_dataset_to_sklearn(_NodeTable(table), is_classifier=False)
            add_tree_to_attribute_pairs(tree_attrs, False, tree, tree_id, float(weight), 0, False)
            for key, values in rewrite_ids_and_process(tree_attrs, logger).items():
                if isinstance(values, list):
                    attrs[key].extend(values)
        margin = scope.get_unique_variable_name("margin")
        container.add_node(op_type, operator.input_full_names, [margin], op_domain="ai.onnx.ml", **attrs)
        negative = scope.get_unique_variable_name("negative_margin")
        apply_neg(scope, margin, negative, container)
        raw = scope.get_unique_variable_name("raw_prediction")
        apply_concat(scope, [negative, margin], raw, container, axis=1)
        minus_two = scope.get_unique_variable_name("minus_two")
        container.add_initializer(minus_two, TensorProto.FLOAT, [1], [-2.0])
        scaled = scope.get_unique_variable_name("scaled_raw")
        apply_mul(scope, [raw, minus_two], scaled, container, broadcast=1)
        exponent = scope.get_unique_variable_name("exp_raw")
        apply_exp(scope, scaled, exponent, container)
        one = scope.get_unique_variable_name("one")
        container.add_initializer(one, TensorProto.FLOAT, [1], [1.0])
        denominator = scope.get_unique_variable_name("one_plus_exp")
        apply_add(scope, [exponent, one], denominator, container, broadcast=1)
        apply_reciprocal(scope, denominator, operator.outputs[1].full_name, container)
        apply_argmax(scope, raw, operator.outputs[0].full_name, container, axis=1, keepdims=0)

    return convert


def export_onnx(
    model: PipelineModel, feature_names: Sequence[str], spark: SparkSession, workdir: Path
) -> Any:
    """Convert a fitted pipeline to ONNX: a float32 [N, 1] input per feature, output ``probability`` [N, 2].

    Tree ensembles go through :func:`_forest_converter` / :func:`_boosting_converter` (same graphs as
    onnxmltools', without its per-tree Spark round trips); everything else through onnxmltools.
    """
    from onnxmltools import convert_sparkml
    from onnxmltools.convert.common._registration import get_shape_calculator
    from onnxmltools.convert.common.data_types import FloatTensorType
    from pyspark.ml.classification import GBTClassificationModel, RandomForestClassificationModel

    custom: dict[str, Callable[[Any, Any, Any], None]] = {}
    final = model.stages[-1]
    if isinstance(final, RandomForestClassificationModel):
        custom["pyspark.ml.classification.RandomForestClassificationModel"] = _forest_converter(
            _tree_tables(final, spark, workdir)
        )
    elif isinstance(final, GBTClassificationModel):
        custom["pyspark.ml.classification.GBTClassificationModel"] = _boosting_converter(
            _tree_tables(final, spark, workdir), list(final.treeWeights)
        )
    initial_types = [(name, FloatTensorType([None, 1])) for name in feature_names]
    try:
        # onnxmltools 1.16's LR converter pprints its attributes to stdout: keep job output readable.
        with contextlib.redirect_stdout(io.StringIO()):
            return convert_sparkml(
                model,
                "lifeboat",
                initial_types,
                spark_session=spark,
                custom_conversion_functions=custom,
                # A custom converter skips shape inference unless its shape calculator is given too.
                custom_shape_calculators={alias: get_shape_calculator(alias) for alias in custom},
            )
    except (RuntimeError, ValueError, TypeError, KeyError) as exc:
        raise ExportError(f"cannot convert {type(final).__name__} pipeline to ONNX: {exc}") from exc


def write_serving_artifact(directory: Path, onnx_model: Any, spec: FeatureSpec, info: dict[str, Any]) -> Path:
    """Write the serving artifact in the layout :mod:`lifeboat.registry.artifact` documents (and MLflow
    logs)."""
    extra = directory / EXTRA_DIR
    extra.mkdir(parents=True, exist_ok=True)
    (directory / ONNX_FILE).write_bytes(onnx_model.SerializeToString())
    spec.save(extra / SPEC_FILE)
    (extra / INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True, default=str))
    return directory


def parity_check(
    onnx_model: Any,
    spec: FeatureSpec,
    info: dict[str, Any],
    holdout_raw: pd.DataFrame,
    spark_scores: pd.DataFrame,
    workdir: Path,
) -> float:
    """Max |p_spark - p_serving| over the holdout, scoring the RAW rows through the serving code path.

    The artifact is written and loaded exactly as serving loads it (:meth:`ServingModel.load`, canary
    included), then scores ``holdout_raw`` (encode + ONNX); the result is joined with Spark's probabilities on
    PassengerId. Raises :class:`ParityError` when the artifact does not load or the rows do not match.
    """
    directory = write_serving_artifact(workdir / "serving_artifact", onnx_model, spec, info)
    try:
        serving = ServingModel.load(directory)
        served = serving.predict_proba(holdout_raw)
    except ArtifactError as exc:
        raise ParityError(f"the serving artifact is not servable: {exc}") from exc
    joined = pd.DataFrame({ID: holdout_raw[ID].to_numpy(), "served": served}).merge(
        spark_scores[[ID, PROBABILITY]], on=ID, how="outer", validate="one_to_one"
    )
    unmatched = joined[joined["served"].isna() | joined[PROBABILITY].isna()]
    if len(unmatched):
        ids = ", ".join(str(i) for i in unmatched[ID].head(10))
        raise ParityError(
            f"{len(unmatched)} holdout rows are not in both holdout_raw and the feature table: {ids}"
        )
    return float(np.max(np.abs(joined["served"].to_numpy() - joined[PROBABILITY].to_numpy())))


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
    """The train split's raw rows (a deterministic sample of ``max_rows`` if larger): the drift reference."""
    from pyspark.sql import functions as F  # noqa: N812

    frame = spark.read.parquet(str(directory / TRAIN_RAW_DIR))
    if frame.count() > max_rows:
        frame = frame.orderBy(F.xxhash64(F.col(ID), F.lit(seed).cast("long"))).limit(max_rows)
    return to_pandas(frame).sort_values(ID).reset_index(drop=True)


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
                "families": ",".join(config.families),
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

        candidates = {f: build_candidate(f, names, config.seed, config.grid) for f in config.families}
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
            parity = parity_check(onnx_model, data.spec, info, holdout_raw, spark_scores, workdir)
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
            serving_uri = log_serving_model(onnx_model, data.spec, info)
            mlflow.log_text(json.dumps(data.spec.to_dict(), indent=2, sort_keys=True), SPEC_ARTIFACT)
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
        )
        mlflow.log_text(
            json.dumps(result.as_dict(), indent=2, sort_keys=True, default=str), TRAIN_SUMMARY_ARTIFACT
        )
    config.output_dir.mkdir(parents=True, exist_ok=True)
    write_json(config.output_dir / SUMMARY_NAME, result.as_dict())
    return result
