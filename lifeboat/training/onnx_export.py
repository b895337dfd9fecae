"""ONNX export of fitted Spark pipelines, the serving artifact, and the parity check against Spark.

Tree ensembles are converted exactly: split thresholds are rounded down to float32
(:func:`float32_at_or_below`).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import uuid
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lifeboat.registry.artifact import (
    EXTRA_DIR,
    INFO_FILE,
    ONNX_FILE,
    ArtifactError,
    Encoding,
    ServingModel,
    encoding_file,
)
from lifeboat.training.errors import ExportError, ParityError
from lifeboat.training.output import ID, to_pandas
from lifeboat.training.selection import PROBABILITY

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)


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

    Categorical splits are refused: they would convert into wrong thresholds (docs/stack-notes.md).
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
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # 1/std of a constant feature: fixed below
            converted = convert_sparkml(
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
    return zero_scale_for_constant_features(converted)


def zero_scale_for_constant_features(model: Any) -> Any:
    """Make the graph's ``Scaler`` nodes output 0 for a feature of zero training spread, as Spark does.

    onnxmltools writes ``scale = 1 / std``: for a feature constant in training (say, a one-hot ``_other``
    column no training row uses) that is ``inf``, and ``(x - mean) * inf`` is NaN even for ``x == mean``,
    while Spark's StandardScaler outputs 0.0 there. Non-finite scales become 0.0 (in place; returns
    ``model``).
    """
    import math

    for node in model.graph.node:
        if node.op_type != "Scaler":
            continue
        for attribute in node.attribute:
            if attribute.name == "scale":
                fixed = [value if math.isfinite(value) else 0.0 for value in attribute.floats]
                del attribute.floats[:]
                attribute.floats.extend(fixed)
    return model


def write_serving_artifact(directory: Path, onnx_model: Any, spec: Encoding, info: dict[str, Any]) -> Path:
    """Write the serving artifact in the layout :mod:`lifeboat.registry.artifact` documents (and MLflow
    logs)."""
    extra = directory / EXTRA_DIR
    extra.mkdir(parents=True, exist_ok=True)
    (directory / ONNX_FILE).write_bytes(onnx_model.SerializeToString())
    spec.save(extra / encoding_file(spec))
    (extra / INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True, default=str))
    return directory


def parity_check(
    onnx_model: Any,
    spec: Encoding,
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
