"""MLflow tracking and model registry: log serving artifacts, register challengers, find versions by alias.

Aliases (not the deprecated stages) carry the lifecycle of a registered model:

* ``challenger`` — the newest trained version, waiting for the promotion gate;
* ``champion`` — the version serving traffic;
* ``previous_champion`` — the champion before the last promotion (target of a rollback).

The gate's decision itself is pure (:mod:`lifeboat.registry.gate`); :mod:`lifeboat.registry.promotion`
gathers its inputs (both versions scored on the same holdout), records it as ``gate.*`` version tags and
moves the aliases; :mod:`lifeboat.registry.summary` reads them back for the Models page.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifeboat.registry.artifact import INFO_FILE, ServingModel, encoding_file
from lifeboat.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from lifeboat.registry.artifact import Encoding

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous_champion"
SERVING_MODEL_NAME = "serving_model"


class RegistryError(RuntimeError):
    """The MLflow registry is unreachable or does not hold what was asked for."""


def configure_mlflow(settings: Settings) -> str:
    """Point MLflow at the configured tracking/registry URI and make sure the experiment exists.

    With a local (server-less) SQLite store the experiment's artifacts go under the state folder; with a
    tracking server the server decides. Returns the experiment id.
    """
    import mlflow

    uri = database_uri(settings.tracking_uri)
    if uri.startswith("sqlite:///"):
        settings.state_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    experiment = mlflow.get_experiment_by_name(settings.experiment_name)
    if experiment is not None:
        experiment_id = str(experiment.experiment_id)
    else:
        location = None
        if not uri.startswith(("http://", "https://", "databricks")):
            location = settings.artifact_root.as_uri()
        experiment_id = str(mlflow.create_experiment(settings.experiment_name, artifact_location=location))
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def database_uri(uri: str) -> str:
    """``uri`` with an explicit PostgreSQL driver when only psycopg2 is installed.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` URI to psycopg 3; the project ships psycopg2
    (docs/stack-notes.md), so such a URI is rewritten to ``postgresql+psycopg2://`` unless psycopg 3 is
    importable. Other URIs (SQLite, HTTP, URIs naming their driver) are returned unchanged.
    """
    from importlib.util import find_spec

    for prefix in ("postgresql://", "postgres://"):
        if uri.startswith(prefix) and find_spec("psycopg") is None and find_spec("psycopg2") is not None:
            return "postgresql+psycopg2://" + uri[len(prefix) :]
    return uri


def log_serving_model(onnx_model: Any, encoding: Encoding, info: Mapping[str, Any]) -> str:
    """Log an ONNX model with its encoding (a fitted encoder) and info as the run's serving artifact; return
    its URI.

    Must be called inside an active MLflow run.
    """
    import mlflow.onnx

    with tempfile.TemporaryDirectory(prefix="lifeboat-artifact-") as tmp:
        spec_path = Path(tmp) / encoding_file(encoding)
        encoding.save(spec_path)
        info_path = Path(tmp) / INFO_FILE
        info_path.write_text(json.dumps(dict(info), indent=2, sort_keys=True, default=str))
        model_info = mlflow.onnx.log_model(
            onnx_model,
            name=SERVING_MODEL_NAME,
            onnx_execution_providers=["CPUExecutionProvider"],
            extra_files=[str(spec_path), str(info_path)],
            save_as_external_data=False,
            pip_requirements=_serving_requirements(),
        )
    return str(model_info.model_uri)


def _serving_requirements() -> list[str]:
    """Pinned requirements of the serving artifact (given explicitly: inferring them takes seconds)."""
    from importlib.metadata import version

    return [
        f"onnxruntime=={version('onnxruntime')}",
        f"onnx=={version('onnx')}",
        f"numpy=={version('numpy')}",
    ]


def register_challenger(model_uri: str, model_name: str, tags: Mapping[str, str]) -> ModelVersion:
    """Register ``model_uri`` as a new version of ``model_name``, tag it, and alias it ``challenger``."""
    import mlflow
    from mlflow import MlflowClient

    version = mlflow.register_model(model_uri, model_name, tags={k: str(v) for k, v in tags.items()})
    client = MlflowClient()
    client.set_registered_model_alias(model_name, CHALLENGER, version.version)
    logger.info("registered %s version %s as %s", model_name, version.version, CHALLENGER)
    return version


def version_by_alias(model_name: str, alias: str) -> ModelVersion | None:
    """The version that ``alias`` points to, or None when the model or the alias does not exist."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return MlflowClient().get_model_version_by_alias(model_name, alias)
    except MlflowException as exc:
        code = getattr(exc, "error_code", "")
        if code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise RegistryError(f"cannot resolve {model_name}@{alias}: {exc}") from exc


def version_tags(model_name: str, version: str) -> dict[str, str]:
    """The tags of one registered version (raises :class:`RegistryError` when it cannot be read)."""
    from mlflow.exceptions import MlflowException

    try:
        found = mlflow_client().get_model_version(model_name, version)
    except MlflowException as exc:
        raise RegistryError(f"cannot read {model_name} version {version}: {exc}") from exc
    return {str(k): str(v) for k, v in (found.tags or {}).items()}


def set_version_tags(model_name: str, version: str, tags: Mapping[str, str]) -> None:
    """Set tags on one registered version (raises :class:`RegistryError`)."""
    from mlflow.exceptions import MlflowException

    client = mlflow_client()
    try:
        for key, value in tags.items():
            client.set_model_version_tag(model_name, version, key, value)
    except MlflowException as exc:
        raise RegistryError(f"cannot tag {model_name} version {version}: {exc}") from exc


def download_serving_model(model_name: str, version: str | int, destination: Path) -> Path:
    """Download a registered version's serving artifact into ``destination`` and return its folder."""
    import mlflow
    from mlflow.exceptions import MlflowException

    destination.mkdir(parents=True, exist_ok=True)
    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{model_name}/{version}", dst_path=str(destination)
        )
    except (MlflowException, OSError) as exc:
        raise RegistryError(f"cannot download {model_name} version {version}: {exc}") from exc
    return Path(local)


def load_serving_model(model_name: str, version: str | int, workdir: Path | None = None) -> ServingModel:
    """Download and load (with the canary check) a registered version's serving artifact."""
    if workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="lifeboat-model-"))
    return ServingModel.load(download_serving_model(model_name, version, workdir))


# --- The promotion gate, promotion and rollback -------------------------------------------------------------
#
# Who calls what: the DAG's evaluate_gate task calls evaluate_gate() (or promote_if_better()), the promote
# task promote(); the CLI and the Airflow/serving UIs call rollback() and model_summary(). Every function uses
# the MLflow URI configured by configure_mlflow() (or MLFLOW_TRACKING_URI).

#: Version tag written by the training job: max |p_spark - p_onnx| over the holdout.
PARITY_TAG = "parity_max_abs_diff"
PROMOTED_AT_TAG = "promoted_at"
GATE_TAG_PREFIX = "gate."
ROLLBACK_TAG_PREFIX = "rollback."


def holdout_metrics(version: ModelVersion) -> dict[str, float]:
    """The ``holdout_*`` metrics of the run that produced ``version`` (empty when the run is gone)."""
    from mlflow.exceptions import MlflowException

    if not version.run_id:
        return {}
    try:
        metrics = mlflow_client().get_run(version.run_id).data.metrics
    except MlflowException:
        return {}
    return {k: float(v) for k, v in metrics.items() if k.startswith("holdout_")}


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def mlflow_client() -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient()
