"""Where the server gets its model from: ``models:/<name>@champion`` in the MLflow registry.

Every call names the tracking URI explicitly (no global MLflow state), so several apps with different
registries can live in one process (tests) and nothing else in the process can redirect the server.

This module deliberately does not import :mod:`lifeboat.registry.store` (which pulls in scikit-learn and the
gate
for training-side work): the server needs only MLflow's client, onnxruntime and the feature code.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifeboat.registry.artifact import ArtifactError, ServingModel
from serving.model_holder import LoadedModel, ModelMeta

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)

#: The alias the server follows (the same name as ``lifeboat.registry.store.CHAMPION``; a test checks it).
CHAMPION_ALIAS = "champion"
METRIC_PREFIX = "holdout_"
GATE_METRIC_PREFIX = "gate.challenger."
GATE_DECISION_TAG = "gate.decision"
_FINGERPRINT_KEYS = ("data_fingerprint", "data.fingerprint", "dataset_fingerprint")
_NOT_FOUND_CODES = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND")


def _artifacts_missing(exc: BaseException) -> bool:
    """True when a download failed because the version's files do not exist (not: the store is down)."""
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        return True
    return getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST"


class RegistryUnavailable(RuntimeError):  # noqa: N818 (reads as the condition it reports)
    """The MLflow registry cannot be reached or answered with an error."""


class NoChampion(LookupError):  # noqa: N818
    """The registered model or its champion alias does not exist."""


class ChampionSource:
    """Resolve the champion alias and load registered versions from one MLflow registry."""

    def __init__(self, tracking_uri: str, model_name: str, alias: str = CHAMPION_ALIAS) -> None:
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.alias = alias

    def _client(self) -> MlflowClient:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def champion_version(self) -> str:
        """The version the alias points to; :class:`NoChampion` or :class:`RegistryUnavailable` otherwise."""
        from mlflow.exceptions import MlflowException

        try:
            version = self._client().get_model_version_by_alias(self.model_name, self.alias)
        except MlflowException as exc:
            if getattr(exc, "error_code", "") in _NOT_FOUND_CODES:
                raise NoChampion(
                    f"the registry at {self.tracking_uri} has no {self.model_name}@{self.alias}"
                ) from exc
            raise RegistryUnavailable(
                f"cannot resolve {self.model_name}@{self.alias} at {self.tracking_uri}: {exc}"
            ) from exc
        except Exception as exc:  # connection errors, SQLAlchemy errors: all mean "registry unavailable"
            raise RegistryUnavailable(
                f"cannot reach the MLflow registry at {self.tracking_uri}: {type(exc).__name__}: {exc}"
            ) from exc
        return str(version.version)

    def load(self, version: str) -> LoadedModel:
        """Download, load and canary-check one version (``ArtifactError`` when it is not servable)."""
        import mlflow.artifacts

        with tempfile.TemporaryDirectory(prefix="lifeboat-serving-") as tmp:
            try:
                # Resolve the storage location with our own client: MLflow resolves "models:/" URIs with
                # the process-wide registry URI, whatever registry_uri is passed.
                location = self._client().get_model_version_download_uri(self.model_name, version)
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=location,
                    dst_path=tmp,
                    tracking_uri=self.tracking_uri,
                    registry_uri=self.tracking_uri,
                )
            except Exception as exc:  # MLflow, HTTP and file errors alike mean the download failed
                if _artifacts_missing(exc):  # the registry answered: this version's files are gone
                    raise ArtifactError(
                        f"{self.model_name} version {version} has no artifacts at {location}: "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
                raise RegistryUnavailable(
                    f"cannot download {self.model_name} version {version} from {self.tracking_uri}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            # onnxruntime reads the graph into memory: the temporary copy can go once the session exists.
            try:
                model = ServingModel.load(Path(local), check=True)
            except ArtifactError as exc:  # name the version and where it is stored, not the temporary copy
                raise ArtifactError(f"{self.model_name} version {version} ({location}): {exc}") from exc
        return LoadedModel(model=model, meta=self.metadata(version, model.info))

    def metadata(self, version: str, info: Mapping[str, Any]) -> ModelMeta:
        """What the registry records about a version; a missing run only leaves fields empty."""
        client = self._client()
        meta: dict[str, Any] = {"model_name": self.model_name, "model_version": version, "info": dict(info)}
        try:
            model_version = client.get_model_version(self.model_name, version)
        except Exception as exc:  # provenance is informative: never refuse a servable model for it
            logger.warning(
                "cannot read the registry entry of %s version %s: %s", self.model_name, version, exc
            )
            return ModelMeta(**meta)
        tags = {str(k): str(v) for k, v in (model_version.tags or {}).items()}
        meta.update(
            run_id=model_version.run_id,
            tags=tags,
            gate_decision=tags.get(GATE_DECISION_TAG),
            registered_at=_iso(model_version.creation_timestamp),
        )
        run_tags: dict[str, str] = {}
        run_params: dict[str, str] = {}
        metrics: dict[str, float] = {}
        if model_version.run_id:
            try:
                run = client.get_run(model_version.run_id)
                run_tags, run_params = dict(run.data.tags), dict(run.data.params)
                metrics = {
                    k[len(METRIC_PREFIX) :]: float(v)
                    for k, v in run.data.metrics.items()
                    if k.startswith(METRIC_PREFIX)
                }
                meta["trained_at"] = _iso(run.info.end_time or run.info.start_time)
            except Exception as exc:  # see above
                logger.warning(
                    "cannot read run %s of %s version %s: %s",
                    model_version.run_id,
                    self.model_name,
                    version,
                    exc,
                )
        if not metrics:
            metrics = {
                k[len(GATE_METRIC_PREFIX) :]: number
                for k, v in tags.items()
                if k.startswith(GATE_METRIC_PREFIX) and (number := _float(v)) is not None
            }
        meta["metrics"] = metrics
        meta["data_fingerprint"] = _fingerprint(tags, run_tags, run_params)
        return ModelMeta(**meta)


def _iso(milliseconds: int | None) -> str | None:
    if not milliseconds:
        return None
    return datetime.fromtimestamp(milliseconds / 1000, UTC).isoformat(timespec="seconds")


def _float(raw: str) -> float | None:
    try:
        return float(raw)
    except ValueError:
        return None


def _fingerprint(*sources: Mapping[str, str]) -> str | None:
    """The training data fingerprint: a well-known key first, else any key naming a fingerprint."""
    for source in sources:
        for key in _FINGERPRINT_KEYS:
            if key in source:
                return source[key]
    for source in sources:
        for key, value in source.items():
            if "fingerprint" in key.lower() and not key.startswith("gate."):
                return value
    return None
