"""The steps of the retraining DAGs (``<dataset>_retrain``, built in :mod:`.dags`) as plain functions.

The DAG file only wires these together; each function takes the settings (and the run's parameters) and
returns a small JSON-ready dict for XCom: paths, versions, counts and decisions, never data or models.
The Spark steps themselves run through SparkSubmitOperator with the arguments of :func:`plan_spark_jobs`.

Every step is idempotent: running a run's step again overwrites that run's outputs and nothing else.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from lifeboat.orchestration import pipeline
from lifeboat.orchestration.results import (
    DriftStep,
    GateRecord,
    GateStep,
    PulledData,
    Reloaded,
    RolledBack,
    SparkPlan,
    TrainingDecision,
    ValidatedData,
    ValidatedFile,
)
from lifeboat.settings import Settings
from lifeboat.training.summary import DATASET_SPEC_TAG, INPUT_ROWS_TAG

if TYPE_CHECKING:
    from lifeboat.monitoring.policy import LiveFigures

logger = logging.getLogger(__name__)

FAMILIES = ("lr", "rf", "gbt")
#: Characters kept from an Airflow run id when it names a folder (the rest become ``_``).
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class RetrainError(RuntimeError):
    """A step of the retraining DAG cannot go on; the message says what is wrong and what to do."""


class BadRunParams(RetrainError):  # noqa: N818 (reads as what happened)
    """The parameters of a manual run are invalid."""


class ServingReloadError(RetrainError):
    """The prediction server did not take the new champion."""


@dataclass(frozen=True)
class RunParams:
    """The parameters of one DAG run (the trigger form's fields)."""

    families: tuple[str, ...]
    required_improvement: float
    dry_run: bool
    retrain_without_changes: bool

    @classmethod
    def from_params(cls, params: Mapping[str, Any], settings: Settings) -> RunParams:
        """Validate the DAG run's params; missing ones take the settings' values."""
        raw_families = params.get("families") or list(settings.model_families)
        if isinstance(raw_families, str):
            raw_families = [f.strip() for f in raw_families.split(",") if f.strip()]
        families = tuple(dict.fromkeys(str(f).strip().lower() for f in raw_families))
        unknown = [f for f in families if f not in FAMILIES]
        if unknown or not families:
            raise BadRunParams(
                f"families must be a non-empty list of {', '.join(FAMILIES)}; got {list(raw_families)!r}"
            )
        raw_improvement = params.get("required_improvement")
        if raw_improvement is None:
            raw_improvement = settings.gate_min_improvement
        try:
            improvement = float(raw_improvement)
        except (TypeError, ValueError) as exc:
            raise BadRunParams(f"required_improvement must be a number; got {raw_improvement!r}") from exc
        if not math.isfinite(improvement) or not -1.0 <= improvement <= 1.0:
            raise BadRunParams(f"required_improvement must lie in [-1, 1]; got {raw_improvement!r}")
        return cls(
            families=families,
            required_improvement=improvement,
            dry_run=_flag(params.get("dry_run"), "dry_run"),
            retrain_without_changes=_flag(params.get("retrain_without_changes"), "retrain_without_changes"),
        )

    def apply(self, settings: Settings) -> Settings:
        """The settings of this run: the run's families and required improvement over the defaults."""
        return settings.model_copy(
            update={"model_families": list(self.families), "gate_min_improvement": self.required_improvement}
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (for XCom and the run's record)."""
        data = asdict(self)
        data["families"] = list(self.families)
        return data


def _flag(value: Any, name: str) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    raise BadRunParams(f"{name} must be true or false; got {value!r}")


def folder_name(run_id: str) -> str:
    """An Airflow run id (``manual__2026-11-27T05:00:00+00:00``) as a safe folder name."""
    name = _UNSAFE.sub("_", run_id).strip("._")
    if not name:
        raise RetrainError(f"run id {run_id!r} has no usable characters")
    return name


@contextmanager
def fail_without_retry(*errors: type[BaseException]) -> Iterator[None]:
    """Turn ``errors`` into Airflow's no-retry failure: retrying cannot fix bad data or a bad parameter."""
    try:
        yield
    except errors as exc:
        from airflow.exceptions import AirflowFailException

        raise AirflowFailException(str(exc)) from exc


# --- pull_data ----------------------------------------------------------------------------------------


def pull_data(settings: Settings) -> PulledData:
    """``dvc pull`` the tracked data, then fingerprint the files a training run reads.

    ``new_data`` is true when the fingerprint differs from the champion's ``data_fingerprint`` tag (or
    there is no champion yet): the files this run would train on are not the ones the champion saw. The
    spec's fingerprint is recorded beside the champion's ``dataset_spec_fingerprint`` tag: an edited spec
    is a reason to retrain too (:func:`decide_training`).
    """
    from lifeboat.data import lineage
    from lifeboat.data import versioning as data
    from lifeboat.dataset.spec import spec_of
    from lifeboat.registry import store as registry

    data.pull(settings=settings)
    files = data.training_files(settings)
    fingerprint = data.fingerprint(files)
    current = lineage.data_fingerprint(f.md5 for f in fingerprint.files)
    registry.configure_mlflow(settings)
    champion = registry.version_by_alias(settings.model_name, registry.CHAMPION)
    tags = (champion.tags or {}) if champion is not None else {}
    champion_fingerprint = tags.get("data_fingerprint")
    trained_rows = tags.get(INPUT_ROWS_TAG)
    result = PulledData(
        files=[str(f.path) for f in fingerprint.files],
        rows=fingerprint.total_rows,
        data_fingerprint=current,
        champion_version=str(champion.version) if champion is not None else None,
        champion_data_fingerprint=champion_fingerprint,
        new_data=champion_fingerprint != current,
        spec_fingerprint=spec_of(settings).fingerprint(),
        champion_spec_fingerprint=tags.get(DATASET_SPEC_TAG),
        new_rows=max(fingerprint.total_rows - int(trained_rows), 0) if trained_rows else None,
        champion_holdout=registry.holdout_metrics(champion) if champion is not None else {},
    )
    logger.info(
        "data: %d file(s), %d rows, fingerprint %s (champion's: %s)",
        len(files),
        fingerprint.total_rows,
        current,
        champion_fingerprint or "none",
    )
    return result


# --- validate_data ------------------------------------------------------------------------------------


def validate_data(settings: Settings) -> ValidatedData:
    """Validate every file a training run reads against the dataset spec; raise ``DataValidationError`` naming
    file, row and column (``DatasetSpecError`` when the spec itself is wrong)."""
    from lifeboat.data import versioning as data
    from lifeboat.dataset.spec import spec_of
    from lifeboat.dataset.validation import validate_csv

    spec = spec_of(settings)
    checked: list[ValidatedFile] = []
    for path in data.training_files(settings):
        summary = validate_csv(spec, path)
        checked.append(ValidatedFile(path=str(path), rows=summary.rows))
    total = sum(f.rows for f in checked)
    logger.info("validated %d file(s), %d rows: no problem found", len(checked), total)
    return ValidatedData(files=checked, rows=total)


# --- drift_report -------------------------------------------------------------------------------------


def drift_report(settings: Settings, run_id: str, new_data: bool) -> DriftStep:
    """Write this run's drift report: the newest batch when there is new data, else the request window.

    Returns the report's summary without per-column detail (``status`` is ``skipped`` with the reason when
    there is nothing to compare, e.g. no batch and no logged requests). The report files are also logged to
    MLflow (a run named ``drift <run id>`` in the experiment).
    """
    from lifeboat.monitoring import checks as monitoring
    from lifeboat.monitoring.drift_models import DriftError
    from lifeboat.registry import store as registry

    name = folder_name(run_id)
    has_batches = bool(monitoring.newest_batches(settings))
    source: monitoring.CurrentSource = "batch" if new_data and has_batches else "requests"
    try:
        summary = monitoring.run_drift(settings, source, name=name)
    except (monitoring.MonitoringError, DriftError) as exc:
        logger.warning("no drift report for %s: %s", run_id, exc)
        return DriftStep(name=name, status="skipped", dataset_drift=False, message=str(exc))
    registry.configure_mlflow(settings)
    _log_drift_run(settings, summary, run_id)
    result = summary.to_dict()
    result.pop("columns", None)
    logger.info("drift report %s: %s", summary.name, summary.message)
    return DriftStep.model_validate(result)


def _log_drift_run(settings: Settings, summary: Any, run_id: str) -> None:
    import mlflow

    from lifeboat.monitoring import drift

    mlflow.set_experiment(settings.experiment_name)
    tags = {"lifeboat.kind": "drift", "airflow_run_id": run_id}
    with mlflow.start_run(run_name=f"drift {run_id}", tags=tags):
        mlflow.log_metrics(
            {"drift_share": float(summary.share_drifted), "drifted_columns": len(summary.drifted_columns)}
        )
        mlflow.set_tag("drift.status", summary.status)
        drift.log_to_mlflow(summary)


# --- decide -------------------------------------------------------------------------------------------


def decide_training(
    settings: Settings,
    params: RunParams,
    pulled: PulledData,
    drift_summary: DriftStep,
    live: LiveFigures | None = None,
    scheduled: bool = False,
) -> TrainingDecision:
    """Whether this run trains, and why: no champion yet, the run's override, an edited dataset spec, or
    the dataset's retraining policy (its spec's ``retrain`` rules, else the global drift policy).

    ``live`` are the champion's live figures from feedback labels (None: not measured); ``scheduled`` says
    whether this is the scheduled run (the ``schedule`` rule).
    """
    from lifeboat.dataset.spec import spec_of
    from lifeboat.monitoring import policy
    from lifeboat.monitoring.drift import should_retrain

    if not pulled.champion_version:
        return TrainingDecision(
            train=True, reason="no champion yet: the first model is trained", rule="first_model"
        )
    if params.retrain_without_changes:
        return TrainingDecision(
            train=True, reason="retrain_without_changes is set for this run", rule="manual"
        )
    if pulled.spec_changed:
        return TrainingDecision(
            train=True,
            rule="spec_changed",
            reason=(
                f"the dataset spec changed since champion v{pulled.champion_version} was trained "
                f"(fingerprint {str(pulled.champion_spec_fingerprint)[:12]} -> "
                f"{str(pulled.spec_fingerprint)[:12]})"
            ),
        )
    summary = None if drift_summary.status == "skipped" else drift_summary.model_dump(exclude_none=True)
    rules = spec_of(settings).retrain
    if rules is None:
        # Without retrain rules: the default performance rule, checked first as a spec's policy checks its
        # performance rule first, then the global drift policy.
        from lifeboat.dataset.models import PerformanceRule, Retrain

        verdict = policy.evaluate(
            Retrain(on_drift=False, performance=PerformanceRule()),
            policy.PolicyInputs(live=live, holdout=pulled.champion_holdout),
        )
        if verdict.train:
            return TrainingDecision(
                train=True,
                reason=verdict.reason,
                rule="performance",
                verdicts=[v.model_dump(mode="json") for v in verdict.verdicts if v.rule == "performance"],
            )
        train, reason = should_retrain(summary, pulled.new_data, settings.drift_policy)
        return TrainingDecision(train=train, reason=reason, rule="drift_policy" if train else None)
    inputs = policy.PolicyInputs(
        drift=summary,
        new_data=pulled.new_data,
        new_rows=pulled.new_rows,
        live=live,
        holdout=pulled.champion_holdout,
        scheduled=scheduled,
    )
    decided = policy.evaluate(rules, inputs)
    return TrainingDecision(
        train=decided.train,
        reason=decided.reason,
        rule=decided.rule,
        verdicts=[v.model_dump(mode="json") for v in decided.verdicts],
    )


def plan_spark_jobs(settings: Settings, run_id: str, params: RunParams) -> SparkPlan:
    """The run folder and the spark-submit arguments of jobs/preprocess.py and jobs/train.py."""
    run_settings = params.apply(settings)
    folder = pipeline.run_dir(settings, folder_name(run_id))
    folder.mkdir(parents=True, exist_ok=True)
    preprocess_output = folder / "preprocess"
    return SparkPlan(
        run_folder=folder_name(run_id),
        run_dir=str(folder.resolve()),
        preprocess_application=str(pipeline.jobs_dir() / "preprocess.py"),
        train_application=str(pipeline.jobs_dir() / "train.py"),
        preprocess_args=pipeline.preprocess_args(run_settings, preprocess_output),
        train_args=pipeline.train_args(
            run_settings, preprocess_output, folder / "train", list(params.families)
        ),
    )


# --- gate and promotion -------------------------------------------------------------------------------


def evaluate_gate(settings: Settings, run_id: str, params: RunParams) -> GateStep:
    """Score challenger and champion on the run's holdout; record the decision (tags + ``gate.json``)."""
    result = pipeline.evaluate_run(params.apply(settings), folder_name(run_id), dry_run=params.dry_run)
    return _gate_summary(result)


def promotion_branch(gate: GateStep, promote_task: str, skip_task: str) -> str:
    """The task to follow the gate: ``promote_task`` only for a passed gate outside a dry run."""
    if gate.passed and not gate.dry_run:
        return promote_task
    why = "dry run" if gate.dry_run else "gate rejected the challenger"
    logger.info("not promoting version %s: %s", gate.version, why)
    return skip_task


def promote(settings: Settings, run_id: str, version: str | None = None) -> GateStep:
    """Move the aliases after a passed gate (see :func:`lifeboat.orchestration.pipeline.promote_run`);
    ``version`` is the one the run's gate task judged (its XCom), which the run folder's file must name."""
    return _gate_summary(pipeline.promote_run(settings, folder_name(run_id), version))


def _gate_summary(result: GateRecord) -> GateStep:
    return GateStep.model_validate(result.model_dump(include=set(GateStep.model_fields)))


# --- reload_serving -----------------------------------------------------------------------------------


def reload_serving(
    settings: Settings, expected_version: str, *, poll_seconds: float = 1.0, timeout: float | None = None
) -> Reloaded:
    """Tell the prediction server to reload the settings' dataset, then wait until it serves
    ``expected_version`` for that dataset.

    Raises :class:`ServingReloadError` when the server is unreachable, refuses the reload, or does not
    report the version in time (``settings.reload_wait_seconds``). A missing or wrong token is a
    configuration error and fails without retrying (the caller wraps it).
    """
    import httpx

    base = settings.serving_url.rstrip("/")
    token = settings.reload_token.get_secret_value() if settings.reload_token else ""
    if not token:
        raise ServingReloadError("LIFEBOAT_RELOAD_TOKEN is not set: the server cannot be told to reload")
    wait = settings.reload_wait_seconds if timeout is None else timeout
    try:
        response = httpx.post(
            f"{base}/admin/reload",
            params={"dataset": settings.dataset},
            headers={"Authorization": f"Bearer {token}"},
            timeout=max(wait, 10.0),
        )
    except httpx.HTTPError as exc:
        raise ServingReloadError(f"cannot reach the prediction server at {base}: {exc}") from exc
    detail = _detail(response)
    if response.status_code in (401, 403):
        raise ReloadRefused(
            f"the prediction server at {base} refused the reload token ({response.status_code}: {detail})"
        )
    if response.status_code not in (200, 202):
        raise ServingReloadError(
            f"the prediction server at {base} did not reload ({response.status_code}: {detail})"
        )
    served = _wait_for_version(base, settings.dataset, expected_version, wait, poll_seconds)
    logger.info("the prediction server at %s serves %s version %s", base, settings.dataset, served)
    return Reloaded(url=base, served_version=served, reload_status=response.status_code)


class ReloadRefused(ServingReloadError):  # noqa: N818
    """The server refused the reload token: a configuration error that retrying cannot fix."""


def _detail(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    return str(body.get("detail", body)) if isinstance(body, dict) else str(body)[:300]


def _wait_for_version(base: str, dataset: str, expected: str, timeout: float, poll_seconds: float) -> str:
    """Poll the dataset's model metadata (Open Inference Protocol ``/v2/models/{dataset}``: every hosted
    dataset, the default one included) until it names ``expected``."""
    import httpx

    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        try:
            response = httpx.get(f"{base}/v2/models/{dataset}", timeout=10.0)
            if response.status_code == 200:
                versions = response.json().get("versions") or [None]
                served = str(versions[0])
                if served == str(expected):
                    return served
                last = f"serves version {served}"
            else:
                last = f"/v2/models/{dataset} answered {response.status_code}"
        except (httpx.HTTPError, ValueError) as exc:
            last = f"unreachable ({exc})"
        if time.monotonic() >= deadline:
            raise ServingReloadError(
                f"the prediction server at {base} does not serve {dataset} version {expected} after "
                f"{timeout:g} s: it {last}"
            )
        time.sleep(poll_seconds)


# --- rollback -----------------------------------------------------------------------------------------


def rollback_actor(triggering_user: str | None, requested_by: str | None) -> str:
    """Who rolled back, for the audit tags: the Airflow user who triggered the run (``airflow`` for a run
    without one). A ``requested_by`` naming someone else is recorded beside that user, never instead: a
    free-text field must not forge the audit trail."""
    user = (triggering_user or "").strip() or "airflow"
    asked = (requested_by or "").strip()
    return user if not asked or asked == user else f"{user} (on behalf of {asked})"


def rollback(settings: Settings, reason: str, actor: str) -> RolledBack:
    """Swap ``champion`` back to ``previous_champion`` (verified first) and record who and why."""
    from lifeboat.registry import promotion
    from lifeboat.registry import store as registry

    registry.configure_mlflow(settings)
    demoted, restored = promotion.rollback(settings.model_name, reason, actor)
    return RolledBack(model_name=settings.model_name, demoted_version=demoted, restored_version=restored)
