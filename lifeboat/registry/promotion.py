"""Promotion: the gate's evaluation of a challenger against the champion, alias moves that cannot promote a
loser or a stale decision, and rollback to the previous champion."""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from lifeboat.dataset.features import FeatureSpecError
from lifeboat.dataset.labels import TARGET, binary_labels
from lifeboat.dataset.spec import spec_of
from lifeboat.registry.artifact import ArtifactError
from lifeboat.registry.evaluation import EvaluationError, binary_metrics
from lifeboat.registry.gate import MAX_TAG_LENGTH, GateConfig, GateDecision, decide
from lifeboat.registry.store import (
    CHAMPION,
    GATE_TAG_PREFIX,
    PARITY_TAG,
    PREVIOUS_CHAMPION,
    PROMOTED_AT_TAG,
    RegistryError,
    load_serving_model,
    mlflow_client,
    utc_now,
    version_by_alias,
)
from lifeboat.settings import Settings

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from lifeboat.dataset.models import DatasetSpec

logger = logging.getLogger(__name__)

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


def parity_from_tags(tags: Mapping[str, str]) -> float | None:
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


def _dataset_spec(settings: Settings) -> DatasetSpec | None:
    """The dataset's spec (its ``gate`` thresholds and label); None when the settings point at no file."""
    return spec_of(settings) if settings.dataset_spec.is_file() else None


def _holdout_labels(
    holdout: pd.DataFrame, model_name: str, version: str, spec: DatasetSpec | None
) -> np.ndarray:
    """The 0/1 labels of the holdout; a holdout the gate cannot use is an input error, not a decision.

    A preprocessed holdout carries them as ``_label`` (:data:`lifeboat.dataset.labels.TARGET`); raw rows
    (say, a labelled CSV) carry the dataset's label column, read through its spec's positive value.
    """
    import numpy as np

    where = f"holdout for {model_name} version {version}"
    if TARGET in holdout.columns:
        column, raw = TARGET, holdout[TARGET]
        if raw.isna().any():
            raise EvaluationError(f"{where}: {column} is missing in {int(raw.isna().sum())} rows")
        if not raw.isin([0, 1]).all():
            raise EvaluationError(f"{where}: {column} must be 0 or 1")
        labels = np.asarray(raw, dtype=np.int64)
    elif spec is None:
        raise EvaluationError(
            f"{where} has no {TARGET} column and there is no dataset spec to name the label"
        )
    else:
        column = spec.label.column
        if column not in holdout.columns:
            raise EvaluationError(
                f"{where} has no {column} column (nor {TARGET}; columns: {list(holdout.columns)})"
            )
        try:
            labels = binary_labels(spec, holdout[column].tolist())
        except ValueError as exc:
            raise EvaluationError(f"{where}: {exc}") from exc
    if len(holdout) == 0:
        raise EvaluationError(f"{where} has no rows")
    if len(np.unique(labels)) < 2:
        raise EvaluationError(f"{where} has only one class; ROC-AUC is undefined")
    return labels


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

    The thresholds are the settings' (``LIFEBOAT_GATE_*``), overridden by the dataset spec's ``gate`` section.
    A holdout the gate cannot use (no label column, one class, no rows) raises ``EvaluationError``.
    """
    spec = _dataset_spec(settings)
    config = GateConfig.from_settings(settings, spec.gate.overrides() if spec is not None else None)
    version = str(challenger_version)
    client = mlflow_client()
    model_version = _get_version(client, model_name, version)
    labels = _holdout_labels(holdout, model_name, version, spec)
    parity = parity_from_tags(model_version.tags)
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
    tags["gate.evaluated_at"] = utc_now()
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
    client = mlflow_client()
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
    now = utc_now()
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

    client = mlflow_client()
    _move_champion(client, model_name, champion_to=target, previous_to=demoted, previous_before=target)
    if demoted is None:
        from mlflow.exceptions import MlflowException

        try:
            client.delete_registered_model_alias(model_name, PREVIOUS_CHAMPION)
        except MlflowException as exc:
            raise RegistryError(f"cannot remove {model_name}@{PREVIOUS_CHAMPION}: {exc}") from exc

    now = utc_now()
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
