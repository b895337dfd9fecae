"""Training at scale: model selection on a stratified sample, the final fit on every row, exact tree export.

The benchmark (benchmarks/bench_training.py) showed two things these tests pin down: cross-validating every
family on 800k rows does not fit a 15-minute budget on 2 cores (hence ``cv_sample_rows``), and tree models
trained on more than 10,000 rows exported with thresholds rounded to the NEAREST float32 disagree with Spark
on rows lying on a split midpoint (hence :func:`lifeboat.training.onnx_export.float32_at_or_below`).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lifeboat.settings import get_settings
from lifeboat.training import inputs, onnx_export, selection
from lifeboat.training import train as training
from lifeboat.training.output import ID, LABEL, TRAIN

pytestmark = pytest.mark.spark

PARITY_TOLERANCE = 1e-5
FAST = ["--families", "lr", "--grid", "small", "--cv-folds", "2", "--no-register"]


def run_train(job: ModuleType, input_dir: Path, output_dir: Path, *extra: str) -> dict[str, Any]:
    """Run train's main in-process (exit code 0 expected) and return its summary."""
    code = job.main(["--input", str(input_dir), "--output", str(output_dir), *extra])
    assert code == 0
    summary: dict[str, Any] = json.loads((output_dir / training.SUMMARY_NAME).read_text())
    return summary


def labelled_frame(spark: Any, rows: int, positives: int) -> Any:
    """``rows`` passengers (ids 1..rows), the first ``positives`` of them labelled 1."""
    frame = pd.DataFrame({ID: np.arange(1, rows + 1, dtype=np.int64)})
    frame[LABEL] = (frame[ID] <= positives).astype(np.int64)
    frame["x"] = np.linspace(0.0, 1.0, rows, dtype=np.float32)
    return spark.createDataFrame(frame)  # type: ignore[attr-defined]


# --- The stratified sample ----------------------------------------------------------------------------------


def test_stratified_sample_is_exact_in_size_and_label_mix_and_ignores_partitioning(spark: Any) -> None:
    frame = labelled_frame(spark, 5_000, 1_900)
    counts = {1: 1_900, 0: 3_100}
    sample = selection.stratified_sample(frame, counts, 1_000, seed=42).toPandas()
    assert len(sample) == 1_000
    assert sample[ID].is_unique
    assert int(sample[LABEL].sum()) == 380  # 38 % of 1,000, as in the whole frame
    assert set(sample[ID]) <= set(range(1, 5_001))
    # The same passengers whatever the partitioning; another seed draws other passengers.
    reshuffled = selection.stratified_sample(frame.repartition(7), counts, 1_000, seed=42).toPandas()
    assert set(reshuffled[ID]) == set(sample[ID])
    other = selection.stratified_sample(frame, counts, 1_000, seed=7).toPandas()
    assert set(other[ID]) != set(sample[ID])


def test_small_data_and_zero_are_never_sampled(spark: Any) -> None:
    frame = labelled_frame(spark, 300, 100)
    counts = {1: 100, 0: 200}
    assert selection.stratified_sample(frame, counts, 300, seed=42) is frame
    assert selection.stratified_sample(frame, counts, 100_000, seed=42) is frame
    assert selection.stratified_sample(frame, counts, 0, seed=42) is frame


def test_cv_runs_on_the_sample_and_the_final_model_on_every_train_row(
    spark: Any,
    train_job: ModuleType,
    titanic_preprocessed: Path,
    mlflow_uri: str,
    tmp_path: Path,
) -> None:
    import mlflow.spark

    summary = run_train(train_job, titanic_preprocessed, tmp_path / "train", *FAST, "--cv-sample-rows", "300")
    sample = summary["cv_sample"]
    train_rows = json.loads((titanic_preprocessed / "summary.json").read_text())["train"]["rows"]
    assert sample["sampled"] is True
    assert sample["rows"] == 300
    assert sample["train_rows"] == train_rows
    # Stratified: the sample keeps the train split's survival rate (to the nearest row).
    rate = sample["train_by_label"]["1"] / train_rows
    assert sample["by_label"]["1"] == round(300 * rate)
    run = mlflow.get_run(summary["run_id"])
    assert run.data.params["cv_rows"] == "300"
    assert run.data.params["train_rows"] == str(train_rows)

    # The logged model is the chosen configuration fitted on ALL train rows, not on the sample.
    data = inputs.open_preprocess_output(titanic_preprocessed)
    cores = spark.sparkContext.defaultParallelism
    train = inputs.load_split(spark, data, TRAIN).repartition(cores, ID).sortWithinPartitions(ID)
    candidate = selection.build_candidate("lr", data.feature_names, 42, "small")
    on_all = candidate.pipeline.fit(train, candidate.grid[0])
    counts = {int(r[LABEL]): int(r["count"]) for r in train.groupBy(LABEL).count().collect()}
    sampled = selection.stratified_sample(train, counts, 300, seed=42)
    assert sampled.count() == 300
    on_sample = candidate.pipeline.fit(sampled, candidate.grid[0])
    logged = mlflow.spark.load_model(summary["spark_model_uri"])
    logged_coefficients = logged.stages[-1].coefficients.toArray()
    np.testing.assert_allclose(logged_coefficients, on_all.stages[-1].coefficients.toArray(), atol=1e-6)
    assert np.max(np.abs(logged_coefficients - on_sample.stages[-1].coefficients.toArray())) > 1e-3


def test_default_setting_cross_validates_every_row_of_small_data(
    train_job: ModuleType, titanic_preprocessed: Path, mlflow_uri: str, tmp_path: Path
) -> None:
    summary = run_train(train_job, titanic_preprocessed, tmp_path / "train", *FAST)
    sample = summary["cv_sample"]
    assert sample["sampled"] is False
    assert sample["rows"] == sample["train_rows"] > 0
    assert sample["max_rows"] == get_settings().cv_sample_rows


def test_a_too_small_sample_exits_2_before_training(
    train_job: ModuleType, titanic_preprocessed: Path, mlflow_uri: str, tmp_path: Path
) -> None:
    output = tmp_path / "train"
    code = train_job.main(
        ["--input", str(titanic_preprocessed), "--output", str(output), *FAST, "--cv-sample-rows", "50"]
    )
    assert code == 2
    assert not (output / training.SUMMARY_NAME).exists()


# --- Exact tree export on split midpoints -------------------------------------------------------------------


@pytest.mark.parametrize("family", ["rf", "gbt"])
def test_tree_export_is_exact_for_rows_on_a_split_midpoint(spark: Any, family: str, tmp_path: Path) -> None:
    """Spark splits at the double midpoint of 0.1f and 0.2f; 0.15f lies just ABOVE it but rounds onto it.

    Rounding the threshold to the nearest float32 (0.15f) sent 0.15f left in ONNX and right in Spark.
    """
    import onnxruntime as ort
    from pyspark.ml.functions import vector_to_array

    midpoint = (float(np.float32(0.1)) + float(np.float32(0.2))) / 2
    on_it = np.float32(0.15)
    assert float(on_it) > midpoint
    assert onnx_export.float32_at_or_below(midpoint) < float(on_it)

    rng = np.random.default_rng(0)
    rows = 400
    low = rng.random(rows) < 0.5
    fit_rows = pd.DataFrame(
        {
            ID: np.arange(1, rows + 1, dtype=np.int64),
            LABEL: np.where(low, 0, 1).astype(np.int64),
            "x": np.where(low, np.float32(0.1), np.float32(0.2)).astype(np.float32),
            "noise": rng.random(rows).astype(np.float32),
        }
    )
    names = ["x", "noise"]
    candidate = selection.build_candidate(family, names, 42, "small")
    model = candidate.pipeline.fit(spark.createDataFrame(fit_rows), candidate.grid[0])

    probe = pd.DataFrame(
        {
            ID: np.arange(1, 6, dtype=np.int64),
            LABEL: np.zeros(5, dtype=np.int64),
            "x": np.array([0.1, 0.2, on_it, 0.15000001, 0.149], dtype=np.float32),
            "noise": np.full(5, 0.5, dtype=np.float32),
        }
    )
    scored = model.transform(spark.createDataFrame(probe)).select(
        ID, vector_to_array("probability")[1].alias("p")
    )
    spark_p = scored.toPandas().sort_values(ID)["p"].to_numpy()

    onnx_model = onnx_export.export_onnx(model, names, spark, tmp_path)
    session = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {name: probe[[name]].to_numpy(dtype=np.float32) for name in names}
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds), strict=True))
    onnx_p = np.asarray(outputs["probability"])[:, 1]
    assert spark_p[2] == pytest.approx(spark_p[1], abs=1e-9)  # 0.15f goes the way 0.2f goes in Spark
    assert np.max(np.abs(spark_p - onnx_p)) <= PARITY_TOLERANCE


def _grid_values(candidate: selection.Candidate) -> list[dict[str, Any]]:
    return [{p.name: v for p, v in point.items()} for point in candidate.grid]


def _fixed_values(candidate: selection.Candidate) -> dict[str, Any]:
    names = ("regParam", "numTrees", "maxDepth", "maxIter", "stepSize")
    classifier = candidate.classifier
    return {n: classifier.getOrDefault(n) for n in names if classifier.hasParam(n)}


def test_titanic_spec_grids_are_the_built_in_full_grids(spark: Any) -> None:
    """data/titanic/dataset.yaml's ``models`` gives the built-in grids: same search, same fixed values."""
    from tests.support.models import titanic_spec

    spec = titanic_spec()
    names = list(spec.feature_names or ())
    for family in selection.FAMILIES:
        built_in = selection.build_candidate(family, names, 42)
        from_spec = selection.build_candidate(family, names, 42, "full", spec.models[family])
        assert _grid_values(from_spec) == _grid_values(built_in), family
        assert _fixed_values(from_spec) == _fixed_values(built_in), family


def test_spec_grid_sets_one_value_searches_several_and_refuses_unknown_parameters(spark: Any) -> None:
    rf = selection.build_candidate("rf", ["a", "b"], 1, "full", {"numTrees": [7], "maxDepth": [2, 3, 4]})
    assert rf.classifier.getOrDefault("numTrees") == 7
    assert _grid_values(rf) == [{"maxDepth": 2}, {"maxDepth": 3}, {"maxDepth": 4}]
    small = selection.build_candidate("rf", ["a", "b"], 1, "small", {"numTrees": [7]})
    assert small.classifier.getOrDefault("numTrees") == 20  # the small grid ignores the spec (smoke runs)
    with pytest.raises(
        ValueError, match=r"models\.gbt: 'learningRate' is not a tunable parameter of GBTClassifier"
    ):
        selection.build_candidate("gbt", ["a"], 1, "full", {"learningRate": [0.1]})
    with pytest.raises(ValueError, match=r"models\.lr: 'labelCol' is not a tunable parameter"):
        selection.build_candidate("lr", ["a"], 1, "full", {"labelCol": ["x"]})


def test_spec_models_restrict_the_families_trained(tmp_path: Path) -> None:
    config = training.TrainConfig(
        input_dir=tmp_path, output_dir=tmp_path, model_name="m", families=("lr", "rf")
    )
    assert training.families_of(config, {}) == ("lr", "rf")
    assert training.families_of(config, {"rf": {}, "gbt": {}}) == ("rf",)
    with pytest.raises(
        training.TrainingInputError,
        match=r"asks for \['lr', 'rf'\], the dataset spec's models list \['gbt'\]",
    ):
        training.families_of(config, {"gbt": {}})


def test_a_feature_constant_in_training_exports_exactly(spark: Any) -> None:
    """A one-hot ``_other`` column no training row uses has zero spread: Spark's scaler outputs 0 for it, and
    so must the ONNX graph (1/std would be inf, and (x - mean) * inf is NaN)."""
    import onnxruntime as ort
    from pyspark.ml.functions import vector_to_array

    rng = np.random.default_rng(7)
    x = rng.normal(size=400)
    frame = pd.DataFrame(
        {
            ID: np.arange(400, dtype=np.int64),
            LABEL: (x + rng.normal(scale=0.5, size=400) > 0).astype(np.int64),
            "x": x.astype(np.float32),
            "never": np.zeros(400, dtype=np.float32),
        }
    )
    candidate = selection.build_candidate("lr", ["x", "never"], 1, "small")
    model = candidate.pipeline.fit(spark.createDataFrame(frame))  # type: ignore[attr-defined]
    graph = onnx_export.export_onnx(model, ["x", "never"], spark, Path("."))
    expected = (
        model.transform(spark.createDataFrame(frame))  # type: ignore[attr-defined]
        .select(vector_to_array("probability")[1].alias("p"))
        .toPandas()["p"]
        .to_numpy()
    )
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {"x": frame[["x"]].to_numpy(), "never": frame[["never"]].to_numpy()}
    output = next(o.name for o in session.get_outputs() if o.name.lower().startswith("probabilit"))
    (served,) = session.run([output], feeds)
    assert np.isfinite(served).all()
    assert np.max(np.abs(np.asarray(served)[:, 1] - expected)) <= PARITY_TOLERANCE
