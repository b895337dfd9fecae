"""jobs/train.py on the real 891 passengers: every family registers an exact ONNX twin of its Spark model."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lifeboat.registry.evaluation import METRIC_NAMES
from lifeboat.training import onnx_export
from lifeboat.training import train as training
from lifeboat.training.output import HOLDOUT_RAW_DIR, ID
from tests.support.models import titanic_spec

pytestmark = pytest.mark.spark

#: Titanic's 22 features (its spec names them).
FEATURE_NAMES: tuple[str, ...] = tuple(titanic_spec().feature_names or ())

#: Version tags later steps rely on (gate, benchmarks, audit).
REQUIRED_VERSION_TAGS = {
    "run_id",
    "dataset",
    "dataset_spec_fingerprint",
    "family",
    "parity_max_abs_diff",
    "holdout_roc_auc",
    "data_fingerprint",
    "spark_model_uri",
    "preprocess_dir",
}
PARITY_TOLERANCE = 1e-5
SMALL = ["--cv-folds", "2", "--grid", "small"]


def run_train(job: ModuleType, input_dir: Path, output_dir: Path, model_name: str, *extra: str) -> int:
    """Run train's main in-process and return its exit code."""
    code: int = job.main(
        ["--input", str(input_dir), "--output", str(output_dir), "--model-name", model_name, *extra]
    )
    return code


def read_summary(output_dir: Path) -> dict[str, Any]:
    """train_summary.json of a training run."""
    data: dict[str, Any] = json.loads((output_dir / training.SUMMARY_NAME).read_text())
    return data


def client_for(uri: str) -> Any:
    """An MLflow client on ``uri`` (also made the process-wide URI, as the job does)."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def holdout_raw(preprocessed: Path) -> pd.DataFrame:
    """The raw holdout rows, as the gate and the parity check read them."""
    return pd.read_parquet(preprocessed / HOLDOUT_RAW_DIR).sort_values(ID).reset_index(drop=True)


def check_registered_version(client: Any, name: str, summary: dict[str, Any], family: str) -> dict[str, str]:
    """The registered version carries the challenger alias and the tags later steps need; returns its tags."""
    version = client.get_model_version_by_alias(name, "challenger")
    assert str(version.version) == summary["version"]
    tags = dict(version.tags)
    assert set(tags) >= REQUIRED_VERSION_TAGS
    assert tags["family"] == family
    assert tags["run_id"] == summary["run_id"]
    assert float(tags["parity_max_abs_diff"]) <= PARITY_TOLERANCE
    assert float(tags["holdout_roc_auc"]) == pytest.approx(summary["holdout"]["holdout_roc_auc"])
    assert tags["spark_model_uri"] == summary["spark_model_uri"]
    assert tags["data_fingerprint"] == summary["data_fingerprint"]
    return tags


def check_both_artifacts(name: str, summary: dict[str, Any], family: str, workdir: Path) -> Any:
    """The Spark model is logged with its flavour; the serving artifact loads as the server loads it."""
    import mlflow

    from lifeboat.registry.store import load_serving_model

    spark_info = mlflow.models.get_model_info(summary["spark_model_uri"])
    assert "spark" in spark_info.flavors
    serving = load_serving_model(name, summary["version"], workdir)
    assert serving.info["family"] == family
    assert 0.0 <= serving.check() <= 1.0
    return serving


@pytest.fixture(scope="module")
def module_mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One MLflow store (SQLite) for the module's shared training run."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow-shared') / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        yield uri


@pytest.fixture(scope="module")
def lr_run(
    spark: object,
    train_job: ModuleType,
    titanic_preprocessed: Path,
    module_mlflow: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """One small logistic-regression training run shared by the tests that inspect its outputs."""
    output = tmp_path_factory.mktemp("lr-run")
    assert run_train(train_job, titanic_preprocessed, output, "lifeboat-lr", "--families", "lr", *SMALL) == 0
    return read_summary(output)


def test_lr_run_registers_a_challenger_with_the_tags_later_steps_need(
    lr_run: dict[str, Any], module_mlflow: str, titanic_preprocessed: Path
) -> None:
    client = client_for(module_mlflow)
    tags = check_registered_version(client, "lifeboat-lr", lr_run, "lr")
    preprocess_summary = json.loads((titanic_preprocessed / "summary.json").read_text())
    assert tags["data_fingerprint"] == preprocess_summary["data_fingerprint"]
    assert tags["preprocess_dir"] == str(titanic_preprocessed.resolve())
    assert lr_run["version"] == "1"
    assert lr_run["registered"] is True


def test_lr_run_spark_model_and_serving_artifact_agree_on_raw_passengers(
    lr_run: dict[str, Any], module_mlflow: str, titanic_preprocessed: Path, spark: Any, tmp_path: Path
) -> None:
    import mlflow.spark
    from pyspark.ml.functions import vector_to_array

    client_for(module_mlflow)
    serving = check_both_artifacts("lifeboat-lr", lr_run, "lr", tmp_path)
    raw = holdout_raw(titanic_preprocessed)
    served = serving.predict_proba(raw)

    spark_model = mlflow.spark.load_model(lr_run["spark_model_uri"])
    features = spark.read.parquet(str(titanic_preprocessed / "features")).filter("split = 'holdout'")
    scored = (
        spark_model.transform(features)
        .select(ID, vector_to_array("probability")[1].alias("p"))
        .toPandas()
        .sort_values(ID)
    )
    np.testing.assert_array_equal(scored[ID].to_numpy(), raw["PassengerId"].to_numpy())
    assert np.max(np.abs(scored["p"].to_numpy() - served)) <= PARITY_TOLERANCE


def test_lr_run_logs_metrics_lineage_plots_and_reference(
    lr_run: dict[str, Any], module_mlflow: str, spark: Any, titanic_preprocessed: Path, tmp_path: Path
) -> None:
    import mlflow

    client = client_for(module_mlflow)
    run = client.get_run(lr_run["run_id"])
    metrics, tags, params = run.data.metrics, run.data.tags, run.data.params
    assert {f"holdout_{m}" for m in METRIC_NAMES} <= set(metrics)
    assert {"cv_roc_auc", "cv_accuracy", "cv_roc_auc_lr", "cv_accuracy_lr", "parity_max_abs_diff"} <= set(
        metrics
    )
    assert metrics["holdout_roc_auc"] == pytest.approx(lr_run["holdout"]["holdout_roc_auc"])
    assert params["cv_folds"] == "2"
    assert params["model_regParam"] == "0.05"
    assert tags["family"] == "lr"
    in_git_checkout = (Path(training.__file__).resolve().parents[2] / ".git").exists()
    assert re.fullmatch(r"[0-9a-f]{40}" if in_git_checkout else "unknown", tags["git_commit"])
    assert tags["spark_version"] == spark.version
    assert json.loads(tags["spark_conf"])["spark.master"] == "local[2]"
    assert tags["features"] == ",".join(FEATURE_NAMES)
    assert (tags["dataset"], tags["dataset_spec_fingerprint"]) == ("titanic", titanic_spec().fingerprint())
    assert tags["holdout_percent"] == "20"
    assert tags["registered_version"] == lr_run["version"]

    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert artifacts == {
        "plots/roc_curve.png",
        "plots/pr_curve.png",
        "plots/confusion_matrix.png",
        "plots/calibration.png",
        "plots/coefficients.png",
    }
    reference = pd.read_csv(
        mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, artifact_path=training.REFERENCE_ARTIFACT, dst_path=str(tmp_path)
        )
    )
    assert len(reference) == lr_run_train_rows(titanic_preprocessed)
    # The raw columns as the dataset spec lists them (label last), without the bookkeeping key and 0/1 label.
    assert list(reference.columns) == [
        *(c.name for c in titanic_spec().columns if c.role != "label"),
        "Survived",
    ]

    children = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'"
    )
    assert [c.data.tags["family"] for c in children] == ["lr"]
    assert children[0].data.metrics["cv_roc_auc"] == pytest.approx(lr_run["cv"]["cv_roc_auc"])


def lr_run_train_rows(preprocessed: Path) -> int:
    """Rows of the train split according to the preprocess summary."""
    return int(json.loads((preprocessed / "summary.json").read_text())["train"]["rows"])


def test_lr_run_summary_file(lr_run: dict[str, Any]) -> None:
    assert lr_run["family"] == "lr"
    assert lr_run["parity"]["max_abs_diff"] <= lr_run["parity"]["tolerance"] == PARITY_TOLERANCE
    assert set(lr_run["holdout"]) == {f"holdout_{m}" for m in METRIC_NAMES}
    assert 0.75 < lr_run["holdout"]["holdout_roc_auc"] <= 1.0
    assert set(lr_run["cv_by_family"]) == {"lr"}
    assert {
        "load",
        "cv_lr",
        "refit",
        "holdout",
        "onnx_export",
        "parity",
        "log_models",
        "register",
        "total",
    } <= set(lr_run["durations_seconds"])


@pytest.mark.parametrize("family", ["rf", "gbt"])
def test_tree_family_registers_an_exact_onnx_twin(
    family: str,
    spark: object,
    train_job: ModuleType,
    titanic_preprocessed: Path,
    mlflow_uri: str,
    tmp_path: Path,
) -> None:
    import onnx

    name = f"lifeboat-{family}"
    assert (
        run_train(train_job, titanic_preprocessed, tmp_path / "out", name, "--families", family, *SMALL) == 0
    )

    summary = read_summary(tmp_path / "out")
    client = client_for(mlflow_uri)
    check_registered_version(client, name, summary, family)
    serving = check_both_artifacts(name, summary, family, tmp_path / "download")
    assert summary["parity"]["max_abs_diff"] <= PARITY_TOLERANCE
    graph = onnx.load(Path(serving.source) / "model.onnx").graph
    assert [i.name for i in graph.input] == list(FEATURE_NAMES)
    assert any(n.op_type.startswith("TreeEnsemble") for n in graph.node)
    plots = {a.path for a in client.list_artifacts(summary["run_id"], "plots")}
    assert "plots/feature_importances.png" in plots


def test_parity_failure_exits_non_zero_and_registers_nothing(
    spark: object,
    train_job: ModuleType,
    titanic_preprocessed: Path,
    mlflow_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    export = onnx_export.export_onnx

    def corrupted_export(*args: Any, **kwargs: Any) -> Any:
        model = export(*args, **kwargs)
        (node,) = [n for n in model.graph.node if n.op_type == "LinearClassifier"]
        (intercepts,) = [a for a in node.attribute if a.name == "intercepts"]
        intercepts.floats[:] = [x + 0.5 for x in intercepts.floats]
        return model

    monkeypatch.setattr(training, "export_onnx", corrupted_export)
    code = run_train(
        train_job, titanic_preprocessed, tmp_path / "out", "lifeboat-parity", "--families", "lr", *SMALL
    )

    assert code == 3
    err = capsys.readouterr().err
    assert "max |p_spark - p_onnx|" in err
    assert "nothing was registered" in err
    client = client_for(mlflow_uri)
    assert client.search_registered_models() == []
    assert client.search_model_versions("name = 'lifeboat-parity'") == []
    assert not (tmp_path / "out" / training.SUMMARY_NAME).exists()
    experiments = [e.experiment_id for e in client.search_experiments()]
    (run,) = client.search_runs(experiments, filter_string="tags.role = 'training'")
    assert run.info.status == "FAILED"
    assert run.data.metrics["parity_max_abs_diff"] > PARITY_TOLERANCE


def test_unusable_input_folder_exits_2(
    train_job: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "summary.json").write_text("{}")

    assert run_train(train_job, tmp_path / "half", tmp_path / "out", "lifeboat-none") == 2
    err = capsys.readouterr().err
    assert "not a complete preprocess output" in err
    assert "features" in err


def test_default_configuration_meets_the_quality_targets(
    spark: object, train_job: ModuleType, titanic_preprocessed: Path, mlflow_uri: str, tmp_path: Path
) -> None:
    """All three families, full grids, 5-fold CV: holdout ROC-AUC >= 0.85 and CV accuracy >= 0.82."""
    assert run_train(train_job, titanic_preprocessed, tmp_path / "out", "lifeboat-full") == 0

    summary = read_summary(tmp_path / "out")
    client = client_for(mlflow_uri)
    run = client.get_run(summary["run_id"])
    assert run.data.params["cv_folds"] == "5"
    assert run.data.params["families"] == "lr,rf,gbt"
    assert set(summary["cv_by_family"]) == {"lr", "rf", "gbt"}
    assert all(len(f["grid"]) == 2 for f in summary["cv_by_family"].values())
    best = max(summary["cv_by_family"].items(), key=lambda item: item[1]["cv_roc_auc"])
    assert summary["family"] == best[0]
    assert summary["holdout"]["holdout_roc_auc"] >= 0.85
    assert summary["cv"]["cv_accuracy"] >= 0.82
    assert summary["parity"]["max_abs_diff"] <= PARITY_TOLERANCE
    check_registered_version(client, "lifeboat-full", summary, summary["family"])
