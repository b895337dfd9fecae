"""Model selection: candidate Spark ML pipelines per family, stable folds, stratified CV samples and
cross-validation."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.pool import ThreadPool
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lifeboat.registry.evaluation import binary_metrics
from lifeboat.training.output import ID, LABEL, to_pandas

if TYPE_CHECKING:
    from pyspark.ml import Pipeline, PipelineModel
    from pyspark.ml.param import Param
    from pyspark.sql import DataFrame


logger = logging.getLogger(__name__)

FAMILIES: tuple[str, ...] = ("lr", "rf", "gbt")


FAMILY_NAMES = {"lr": "logistic regression", "rf": "random forest", "gbt": "gradient-boosted trees"}


GRID_SIZES: tuple[str, ...] = ("full", "small")


FOLD = "_fold"


PROBABILITY = "probability"


#: Salt of the hash that orders passengers for the cross-validation sample.
CV_SAMPLE_SALT = "cv-sample"


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


def fold_column(folds: int, seed: int) -> Any:
    """Fold 0..folds-1 of each passenger from a salted hash of PassengerId (stable across runs)."""
    from pyspark.sql import functions as F  # noqa: N812

    return F.pmod(
        F.xxhash64(F.col(ID).cast("long"), F.lit(seed).cast("long"), F.lit("cv-fold")), F.lit(folds)
    )


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


def build_candidate(
    family: str,
    feature_names: Sequence[str],
    seed: int,
    grid: str = "full",
    params: Mapping[str, Sequence[Any]] | None = None,
) -> Candidate:
    """The pipeline (VectorAssembler -> [StandardScaler for LR] -> classifier) and parameter grid of a family.

    ``full`` grids are small on purpose (two points each; tree counts kept modest for 2-core machines and for
    the ONNX export); ``small`` is one point per family, for tests and smoke runs. ``params`` (a dataset
    spec's ``models.<family>``: Spark parameter -> values) replaces the ``full`` grid: a one-value list fixes
    the parameter, a longer one is searched. Unknown parameter names raise ``ValueError``.
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
    if params is not None and full:
        builder = _spec_grid(classifier, family, params)
    stages.append(classifier)
    return Candidate(
        family=family, pipeline=Pipeline(stages=stages), classifier=classifier, grid=builder.build()
    )


def _spec_grid(classifier: Any, family: str, params: Mapping[str, Sequence[Any]]) -> Any:
    """A grid from a spec's ``{param: [values]}``: one value is set on the classifier, several searched."""
    from pyspark.ml.tuning import ParamGridBuilder

    builder = ParamGridBuilder()
    for name, values in params.items():
        if not classifier.hasParam(name) or name in ("featuresCol", "labelCol", "seed"):
            raise ValueError(
                f"models.{family}: {name!r} is not a tunable parameter of {type(classifier).__name__}"
            )
        param = classifier.getParam(name)
        if len(values) == 1:
            classifier.set(param, values[0])
        else:
            builder.addGrid(param, list(values))
    return builder


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
