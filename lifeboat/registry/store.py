"""MLflow tracking and model registry: log serving artifacts, register challengers, gate, promote, roll back.

Aliases (not the deprecated stages) carry the lifecycle of a registered model:

* ``challenger`` — the newest trained version, waiting for the promotion gate;
* ``champion`` — the version serving traffic;
* ``previous_champion`` — the champion before the last promotion (target of a rollback).

The gate's decision itself is pure (:mod:`lifeboat.registry.gate`); this module gathers its inputs (both
versions
scored on the same holdout), records it as ``gate.*`` version tags, and moves the aliases.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifeboat.dataset.features import FeatureSpecError
from lifeboat.registry.artifact import INFO_FILE, SPEC_FILE, ArtifactError, ServingModel
from lifeboat.registry.evaluation import EvaluationError, binary_metrics
from lifeboat.registry.gate import MAX_TAG_LENGTH, GateConfig, GateDecision, decide
from lifeboat.settings import Settings

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from lifeboat.dataset.features import FeatureSpec

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


def log_serving_model(onnx_model: Any, spec: FeatureSpec, info: Mapping[str, Any]) -> str:
    """Log an ONNX model with its feature spec and info as the run's serving artifact; return its URI.

    Must be called inside an active MLflow run.
    """
    import mlflow.onnx

    with tempfile.TemporaryDirectory(prefix="lifeboat-artifact-") as tmp:
        spec_path = Path(tmp) / SPEC_FILE
        spec.save(spec_path)
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
#: Errors that mean "this version's serving artifact cannot be loaded or scored", as opposed to bad input.
_UNSERVABLE_ERRORS: tuple[type[Exception], ...] = (
    RegistryError,
    ArtifactError,
    FeatureSpecError,
    EvaluationError,
)


class GateRejected(RegistryError):  # noqa: N818 (the name reads as the event it reports)
    """A version whose gate decision is a rejection was asked to be promoted."""


class StaleDecisionError(RegistryError):
    """The champion moved between the gate's evaluation and the promotion: the decision no longer holds."""


class RollbackError(RegistryError):
    """A rollback is impossible (no previous champion, no reason given, target not servable)."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _client() -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient()


def _get_version(client: MlflowClient, model_name: str, version: str) -> ModelVersion:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(model_name, version)
    except MlflowException as exc:
        raise RegistryError(f"cannot read {model_name} version {version}: {exc}") from exc


def _set_tags(client: MlflowClient, model_name: str, version: str, tags: Mapping[str, str]) -> None:
    from mlflow.exceptions import MlflowException

    try:
        for key, value in tags.items():
            client.set_model_version_tag(model_name, version, key, value)
    except MlflowException as exc:
        raise RegistryError(f"cannot tag {model_name} version {version}: {exc}") from exc


def _parity_from_tags(tags: Mapping[str, str]) -> float | None:
    """The challenger's recorded parity, or None when the training job did not record a number."""
    raw = tags.get(PARITY_TAG)
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        logger.warning("version tag %s=%r is not a number", PARITY_TAG, raw)
        return None


def holdout_fingerprint(holdout: pd.DataFrame) -> str:
    """A short content hash of the holdout rows, recorded so two decisions can be told apart by their data."""
    import pandas as pd

    hashed = pd.util.hash_pandas_object(holdout.reset_index(drop=True), index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


def _holdout_labels(holdout: pd.DataFrame, model_name: str, version: str) -> np.ndarray:
    """The 0/1 labels of the holdout; a holdout the gate cannot use is an input error, not a decision."""
    import numpy as np

    where = f"holdout for {model_name} version {version}"
    if "Survived" not in holdout.columns:
        raise EvaluationError(f"{where} has no Survived column (columns: {list(holdout.columns)})")
    if len(holdout) == 0:
        raise EvaluationError(f"{where} has no rows")
    labels = holdout["Survived"]
    if labels.isna().any():
        raise EvaluationError(f"{where}: Survived is missing in {int(labels.isna().sum())} rows")
    if not labels.isin([0, 1]).all():
        raise EvaluationError(f"{where}: Survived must be 0 or 1")
    if labels.nunique() < 2:
        raise EvaluationError(f"{where} has only one class; ROC-AUC is undefined")
    return np.asarray(labels, dtype=np.int64)


def _score_version(
    model_name: str, version: str, holdout: pd.DataFrame, labels: np.ndarray, workdir: Path
) -> dict[str, float]:
    """Load a version's serving artifact (with the canary check) and compute its holdout metrics."""
    model = load_serving_model(model_name, version, workdir / f"v{version}")
    return binary_metrics(labels, model.predict_proba(holdout))


def evaluate_gate(
    model_name: str, challenger_version: str | int, holdout: pd.DataFrame, settings: Settings
) -> GateDecision:
    """Score the challenger and the champion on ``holdout``, decide, and record the decision as version tags.

    Both versions are scored by their own serving artifacts (each with its own feature spec) on the same rows:
    the champion's old logged metrics are never used. The challenger's parity comes from its version tag
    ``parity_max_abs_diff``. All ``gate.*`` tags of the challenger are replaced by the new decision's, so
    re-running the gate leaves no stale numbers behind.

    Special cases (each recorded in the decision's notes):

    * the challenger cannot be loaded or scored -> rejected (not servable);
    * the champion cannot be loaded or scored (artifact deleted or corrupt) -> the champion is treated as
      *unservable*: it cannot be what traffic should stay on, so the challenger is judged on the floors and
      parity only (as on a first run), and ``gate.champion_unservable`` is ``true``;
    * the challenger already is the champion (a re-run after promotion) -> it is compared with
      ``previous_champion``, the version it replaced, which reproduces the original decision.

    A holdout the gate cannot use (no ``Survived`` column, one class, no rows) raises ``EvaluationError``.
    """
    config = GateConfig.from_settings(settings)
    version = str(challenger_version)
    client = _client()
    model_version = _get_version(client, model_name, version)
    labels = _holdout_labels(holdout, model_name, version)
    parity = _parity_from_tags(model_version.tags)
    compared_on = f"holdout of {len(holdout)} rows, sha256 {holdout_fingerprint(holdout)}"

    notes: list[str] = []
    champion = version_by_alias(model_name, CHAMPION)
    baseline = str(champion.version) if champion is not None else None
    if baseline == version:
        previous = version_by_alias(model_name, PREVIOUS_CHAMPION)
        baseline = str(previous.version) if previous is not None else None
        notes.append(
            f"version {version} already is the champion: compared with previous_champion {baseline or 'none'}"
        )

    champion_metrics: dict[str, float] | None = None
    unservable = False
    with tempfile.TemporaryDirectory(prefix="lifeboat-gate-") as tmp:
        try:
            challenger_metrics = _score_version(model_name, version, holdout, labels, Path(tmp))
        except _UNSERVABLE_ERRORS as exc:
            logger.warning("%s version %s is not servable: %s", model_name, version, exc)
            decision = GateDecision(
                passed=False,
                reasons=[f"challenger {model_name} version {version} cannot be loaded or scored: {exc}"],
                challenger={},
                champion=None,
                deltas={},
                parity_max_abs_diff=parity,
                config=config,
                notes=notes,
                compared_on=compared_on,
                challenger_version=version,
                champion_version=baseline,
            )
            _write_gate_tags(client, model_name, version, decision)
            return decision
        if baseline is not None:
            try:
                champion_metrics = _score_version(model_name, baseline, holdout, labels, Path(tmp))
            except _UNSERVABLE_ERRORS as exc:
                logger.warning("champion %s version %s is unservable: %s", model_name, baseline, exc)
                unservable = True
                notes.append(
                    f"champion version {baseline} cannot be loaded or scored ({exc}): it is treated as "
                    "unservable and the challenger is judged on the floors and parity only"
                )

    decision = decide(
        challenger_metrics,
        champion_metrics,
        parity,
        config,
        notes=notes,
        compared_on=compared_on,
        challenger_version=version,
        champion_version=baseline,
        champion_unservable=unservable,
    )
    _write_gate_tags(client, model_name, version, decision)
    logger.info("gate for %s version %s: %s", model_name, version, decision.summary())
    return decision


def _write_gate_tags(client: MlflowClient, model_name: str, version: str, decision: GateDecision) -> None:
    """Replace the version's ``gate.*`` tags by the decision's (stale keys of an earlier run are deleted)."""
    from mlflow.exceptions import MlflowException

    tags = decision.to_tags()
    tags["gate.evaluated_at"] = _now()
    current = _get_version(client, model_name, version).tags
    try:
        for key in current:
            if key.startswith(GATE_TAG_PREFIX) and key not in tags:
                client.delete_model_version_tag(model_name, version, key)
    except MlflowException as exc:
        raise RegistryError(f"cannot clear old gate tags of {model_name} version {version}: {exc}") from exc
    _set_tags(client, model_name, version, tags)


def _restore_alias(client: MlflowClient, model_name: str, alias: str, version: str | None) -> None:
    """Point ``alias`` back at ``version`` (None: remove it)."""
    if version is None:
        client.delete_registered_model_alias(model_name, alias)
    else:
        client.set_registered_model_alias(model_name, alias, version)


def _move_champion(
    client: MlflowClient,
    model_name: str,
    champion_to: str,
    previous_to: str | None,
    previous_before: str | None,
) -> None:
    """Set ``previous_champion`` (when ``previous_to`` is given), then ``champion`` — last, so the serving
    alias only moves once everything else is in place. If setting ``champion`` fails, ``previous_champion``
    is put back to ``previous_before`` and the error is raised: the registry is left as it was.
    """
    from mlflow.exceptions import MlflowException

    if previous_to is not None:
        try:
            client.set_registered_model_alias(model_name, PREVIOUS_CHAMPION, previous_to)
        except MlflowException as exc:
            raise RegistryError(
                f"cannot point {model_name}@{PREVIOUS_CHAMPION} at version {previous_to}; "
                f"nothing was changed: {exc}"
            ) from exc
    try:
        client.set_registered_model_alias(model_name, CHAMPION, champion_to)
    except MlflowException as exc:
        restored = "nothing else was changed"
        if previous_to is not None:
            try:
                _restore_alias(client, model_name, PREVIOUS_CHAMPION, previous_before)
                restored = f"{PREVIOUS_CHAMPION} was restored to {previous_before or 'none'}"
            except MlflowException as restore_exc:
                logger.error("restoring %s@%s failed: %s", model_name, PREVIOUS_CHAMPION, restore_exc)
                restored = (
                    f"restoring {PREVIOUS_CHAMPION} to {previous_before or 'none'} FAILED too "
                    f"({restore_exc}); fix the aliases by hand"
                )
        raise RegistryError(
            f"cannot point {model_name}@{CHAMPION} at version {champion_to}: {exc}; {restored}"
        ) from exc


def promote(model_name: str, version: str | int, decision: GateDecision) -> str | None:
    """Make ``version`` the champion after a passed gate; return the demoted champion's version (or None).

    ``previous_champion`` moves to the old champion first, ``champion`` last (see :func:`_move_champion`).
    Raises :class:`GateRejected` when the decision is a rejection (aliases are never touched then: callers
    check ``decision.passed`` or use :func:`promote_if_better`), :class:`StaleDecisionError` when the champion
    changed since the decision was made (evaluate again), and :class:`RegistryError` when the decision belongs
    to another version. Promoting the current champion again is a no-op (idempotent task re-runs).
    """
    version = str(version)
    if not decision.passed:
        raise GateRejected(
            f"{model_name} version {version} was rejected by the gate: " + "; ".join(decision.reasons)
        )
    if decision.challenger_version is not None and decision.challenger_version != version:
        raise RegistryError(
            f"the gate decision is for {model_name} version {decision.challenger_version}, "
            f"not version {version}"
        )
    return promote_recorded(model_name, version, decision.champion_version)


def promote_recorded(model_name: str, version: str | int, compared_with: str | None) -> str | None:
    """Make ``version`` the champion on the strength of a recorded, passed gate decision.

    ``compared_with`` is the champion version the gate compared the challenger with (None: there was no
    champion). Raises :class:`StaleDecisionError` when the champion changed since then. The caller must have
    checked that the decision passed (:func:`promote` does; the DAG reads it from the run's ``gate.json``).
    Promoting the current champion again is a no-op. Returns the demoted champion's version (or None).
    """
    version = str(version)
    client = _client()
    _get_version(client, model_name, version)
    champion = version_by_alias(model_name, CHAMPION)
    current = str(champion.version) if champion is not None else None
    if current == version:
        logger.info("%s version %s already is the champion; nothing to do", model_name, version)
        previous = version_by_alias(model_name, PREVIOUS_CHAMPION)
        return str(previous.version) if previous is not None else None
    if current != compared_with:
        raise StaleDecisionError(
            f"cannot promote {model_name} version {version}: the gate compared it with champion "
            f"{compared_with or 'none'}, but the champion now is {current or 'none'}; "
            "evaluate the gate again"
        )
    previous = version_by_alias(model_name, PREVIOUS_CHAMPION)
    _move_champion(
        client,
        model_name,
        champion_to=version,
        previous_to=current,
        previous_before=str(previous.version) if previous is not None else None,
    )
    now = _now()
    _set_tags(client, model_name, version, {PROMOTED_AT_TAG: now, "promoted_over": current or "none"})
    if current is not None:
        _set_tags(client, model_name, current, {"demoted_at": now, "demoted_by_version": version})
    logger.info("promoted %s version %s to %s (previous: %s)", model_name, version, CHAMPION, current)
    return current


def promote_if_better(
    model_name: str, challenger_version: str | int, holdout: pd.DataFrame, settings: Settings
) -> GateDecision:
    """Evaluate the gate (:func:`evaluate_gate`) and promote the challenger only when it passed."""
    decision = evaluate_gate(model_name, challenger_version, holdout, settings)
    if decision.passed:
        promote(model_name, challenger_version, decision)
    return decision


def rollback(model_name: str, reason: str, actor: str, *, verify: bool = True) -> tuple[str | None, str]:
    """Put ``previous_champion`` back into service; return ``(demoted version, restored version)``.

    Semantics: a swap. ``champion`` moves to the previous champion and ``previous_champion`` to the version
    that was demoted, so a second rollback rolls forward again. With ``verify`` the restored version's serving
    artifact is loaded (canary check) before any alias moves, so a rollback never installs a broken model.
    Both versions get ``rollback.at/by/reason/role`` tags (the latest rollback each took part in).
    """
    if not reason.strip() or not actor.strip():
        raise RollbackError(f"a rollback of {model_name} needs a reason and an actor")
    previous = version_by_alias(model_name, PREVIOUS_CHAMPION)
    if previous is None:
        raise RollbackError(
            f"cannot roll back {model_name}: it has no {PREVIOUS_CHAMPION} alias (no version was ever "
            "promoted over another one)"
        )
    target = str(previous.version)
    champion = version_by_alias(model_name, CHAMPION)
    demoted = str(champion.version) if champion is not None else None
    if demoted == target:
        raise RollbackError(
            f"cannot roll back {model_name}: {CHAMPION} and {PREVIOUS_CHAMPION} both are {target}"
        )
    if verify:
        with tempfile.TemporaryDirectory(prefix="lifeboat-rollback-") as tmp:
            try:
                load_serving_model(model_name, target, Path(tmp))
            except (RegistryError, ArtifactError, FeatureSpecError) as exc:
                raise RollbackError(
                    f"cannot roll back {model_name} to version {target}: its serving artifact is not "
                    f"servable ({exc}); {CHAMPION} stays {demoted or 'none'}"
                ) from exc

    client = _client()
    _move_champion(client, model_name, champion_to=target, previous_to=demoted, previous_before=target)
    if demoted is None:
        from mlflow.exceptions import MlflowException

        try:
            client.delete_registered_model_alias(model_name, PREVIOUS_CHAMPION)
        except MlflowException as exc:
            raise RegistryError(f"cannot remove {model_name}@{PREVIOUS_CHAMPION}: {exc}") from exc

    now = _now()
    common = {"rollback.at": now, "rollback.by": actor, "rollback.reason": _truncate_tag(reason)}
    _set_tags(
        client,
        model_name,
        target,
        {**common, "rollback.role": "restored", "rollback.counterpart": demoted or "none"},
    )
    if demoted is not None:
        _set_tags(
            client,
            model_name,
            demoted,
            {**common, "rollback.role": "demoted", "rollback.counterpart": target},
        )
    logger.warning(
        "rolled back %s: %s %s -> %s by %s (%s)", model_name, CHAMPION, demoted, target, actor, reason
    )
    return demoted, target


def _truncate_tag(value: str) -> str:
    return value if len(value) <= MAX_TAG_LENGTH else value[: MAX_TAG_LENGTH - 15] + "...[truncated]"


def _json_list(raw: str | None) -> list[str]:
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return [raw]
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _describe_version(model_version: ModelVersion, aliases: Sequence[str]) -> dict[str, Any]:
    """A JSON-friendly view of one version: aliases, creation time, gate outcome, promotion and rollback."""
    tags = dict(model_version.tags or {})
    created = model_version.creation_timestamp
    prefix = f"{GATE_TAG_PREFIX}challenger."
    rollback_tags = {
        k[len(ROLLBACK_TAG_PREFIX) :]: v for k, v in tags.items() if k.startswith(ROLLBACK_TAG_PREFIX)
    }
    return {
        "version": str(model_version.version),
        "aliases": sorted(aliases),
        "created_at": datetime.fromtimestamp(created / 1000, UTC).isoformat(timespec="seconds")
        if created
        else None,
        "status": model_version.status,
        "run_id": model_version.run_id,
        "source": model_version.source,
        "gate_decision": tags.get(f"{GATE_TAG_PREFIX}decision"),
        "gate_reasons": _json_list(tags.get(f"{GATE_TAG_PREFIX}reasons")),
        "gate_notes": _json_list(tags.get(f"{GATE_TAG_PREFIX}notes")),
        "gate_compared_with": tags.get(f"{GATE_TAG_PREFIX}champion_version"),
        "gate_evaluated_at": tags.get(f"{GATE_TAG_PREFIX}evaluated_at"),
        "metrics": {k[len(prefix) :]: _parse_float(v) for k, v in tags.items() if k.startswith(prefix)},
        "parity_max_abs_diff": _parity_from_tags(tags),
        "promoted_at": tags.get(PROMOTED_AT_TAG),
        "rollback": rollback_tags or None,
    }


def _parse_float(raw: str) -> float | None:
    try:
        return float(raw)
    except ValueError:
        return None


def model_summary(model_name: str, last_n: int = 10) -> dict[str, Any]:
    """What the UIs and the CLI show: the aliased versions and the last ``last_n`` versions, newest first.

    Each version is described by :func:`_describe_version`. A model that is not registered yet gives
    ``exists: False`` and empty entries (a fresh installation is not an error).
    """
    from mlflow.exceptions import MlflowException

    client = _client()
    empty: dict[str, Any] = {
        "model_name": model_name,
        "exists": False,
        CHAMPION: None,
        PREVIOUS_CHAMPION: None,
        CHALLENGER: None,
        "versions": [],
    }
    try:
        registered = client.get_registered_model(model_name)
    except MlflowException as exc:
        if getattr(exc, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
            return empty
        raise RegistryError(f"cannot read registered model {model_name}: {exc}") from exc
    alias_map = {alias: str(v) for alias, v in (registered.aliases or {}).items()}
    aliases_of: dict[str, list[str]] = {}
    for alias, version in alias_map.items():
        aliases_of.setdefault(version, []).append(alias)
    quote = '"' if "'" in model_name else "'"
    try:
        recent = client.search_model_versions(
            f"name = {quote}{model_name}{quote}", max_results=max(1, last_n), order_by=["version_number DESC"]
        )
        by_version = {str(v.version): v for v in recent}
        for version in alias_map.values():
            if version not in by_version:
                by_version[version] = client.get_model_version(model_name, version)
    except MlflowException as exc:
        raise RegistryError(f"cannot list the versions of {model_name}: {exc}") from exc

    def described(version: str | None) -> dict[str, Any] | None:
        if version is None:
            return None
        return _describe_version(by_version[version], aliases_of.get(version, []))

    return {
        "model_name": model_name,
        "exists": True,
        CHAMPION: described(alias_map.get(CHAMPION)),
        PREVIOUS_CHAMPION: described(alias_map.get(PREVIOUS_CHAMPION)),
        CHALLENGER: described(alias_map.get(CHALLENGER)),
        "versions": [described(str(v.version)) for v in recent][: max(0, last_n)],
    }
