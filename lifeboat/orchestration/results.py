"""The typed results of the retraining steps: what one task hands to the next (as XCom) or writes to a file.

Each step of :mod:`lifeboat.orchestration.retrain` returns one of these models. A DAG task pushes
``model_dump(mode="json")`` (XCom holds JSON), and the next task reads it back with ``model_validate``, so a
renamed or missing key fails loudly at the boundary instead of turning into a silent ``None``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from lifeboat.monitoring.policy import LiveFigures


class StepResult(BaseModel):
    """Base of the step results: immutable, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_xcom(self) -> dict[str, object]:
        """The JSON-ready dict a task pushes as its XCom value."""
        return self.model_dump(mode="json")


class PulledData(StepResult):
    """``pull_data``: the files a training run reads and whether the champion saw the same data."""

    files: list[str]
    rows: int
    data_fingerprint: str
    champion_version: str | None
    champion_data_fingerprint: str | None
    new_data: bool
    #: The dataset spec now and the one the champion was trained with (its ``dataset_spec_fingerprint`` tag).
    spec_fingerprint: str | None = None
    champion_spec_fingerprint: str | None = None
    #: Labelled rows added since the champion was trained (None: the champion records no row count).
    new_rows: int | None = None
    #: The champion's holdout metrics (``holdout_accuracy``, ``holdout_roc_auc``...), for the policy's rules.
    champion_holdout: dict[str, float] = {}

    @property
    def spec_changed(self) -> bool:
        """The spec changed since the champion was trained (a champion without the tag predates specs)."""
        champion = self.champion_spec_fingerprint
        return bool(champion) and self.spec_fingerprint != champion


class ValidatedFile(StepResult):
    """One training file that passed validation."""

    path: str
    rows: int


class ValidatedData(StepResult):
    """``validate_data``: every training file checked against the dataset's schema."""

    files: list[ValidatedFile]
    rows: int


class DriftStep(StepResult):
    """``drift_report``: the run's drift verdict without per-column detail (the report files hold it)."""

    name: str
    status: Literal["drift", "no_drift", "not_enough_data", "skipped"]
    dataset_drift: bool
    message: str
    share_drifted: float | None = None
    drift_share_threshold: float | None = None
    drifted_columns: list[str] = []
    reference_rows: int | None = None
    current_rows: int | None = None
    analysed_rows: int | None = None
    min_rows: int | None = None
    current_source: str | None = None
    created_at: str | None = None
    html_path: str | None = None
    json_path: str | None = None
    sampled: bool = False


class PerformanceStep(StepResult):
    """``monitor_performance``: the champion's live figures over its labelled predictions, and the verdict.

    ``status`` is a report's verdict (``ok``, ``degraded``, ``not_enough_data``), ``skipped`` (no champion
    yet) or ``unavailable`` (the prediction log cannot be read; the run goes on without live figures).
    """

    name: str
    status: Literal["ok", "degraded", "not_enough_data", "skipped", "unavailable"]
    message: str
    model_version: str | None = None
    labelled_rows: int = 0
    accuracy: float | None = None
    roc_auc: float | None = None
    metric: str | None = None
    drop: float | None = None
    holdout: dict[str, float] = {}
    html_path: str | None = None

    def live_figures(self) -> LiveFigures | None:
        """The :class:`~lifeboat.monitoring.policy.LiveFigures` of the policy (None when not measured)."""
        from lifeboat.monitoring.policy import LiveFigures

        if self.status in ("skipped", "unavailable"):
            return None
        return LiveFigures(labelled_rows=self.labelled_rows, accuracy=self.accuracy, roc_auc=self.roc_auc)


class TrainingDecision(StepResult):
    """``decide_training``: whether the run trains, why, which rule decided and every rule's verdict."""

    train: bool
    reason: str
    #: The rule that decided: ``first_model``, ``manual``, ``spec_changed``, a policy rule (``performance``,
    #: ``drift``, ``new_rows``, ``schedule``), ``drift_policy`` (the global setting), or None (none fired).
    rule: str | None = None
    #: Each rule of the dataset's policy with its figures (empty under the global ``LIFEBOAT_DRIFT_POLICY``).
    verdicts: list[dict[str, Any]] = []


class SparkPlan(StepResult):
    """``plan_spark_jobs``: the run folder and the spark-submit arguments of the two jobs."""

    run_folder: str
    run_dir: str
    preprocess_application: str
    train_application: str
    preprocess_args: list[str]
    train_args: list[str]


class GateRecord(StepResult):
    """``gate.json`` in the run folder: the gate's decision on the run's challenger and what was done with it.

    Written by :func:`lifeboat.orchestration.pipeline.evaluate_run` (``promoted`` false) and updated by
    ``promote_run`` (``promoted`` true, ``demoted_version``).
    """

    run_id: str
    model_name: str
    version: str
    passed: bool
    promoted: bool = False
    dry_run: bool = False
    champion_version: str | None
    reasons: list[str]
    tags: dict[str, str] = {}
    demoted_version: str | None = None


class GateStep(StepResult):
    """``evaluate_gate`` and ``promote``: the gate's decision on the challenger and what was done with it."""

    model_name: str | None
    version: str | None
    passed: bool | None
    promoted: bool | None
    dry_run: bool | None
    champion_version: str | None
    reasons: list[str] | None
    demoted_version: str | None = None


class Reloaded(StepResult):
    """``reload_serving``: the server answered the reload and serves the expected version."""

    url: str
    served_version: str
    reload_status: int


class RolledBack(StepResult):
    """``rollback``: the champion moved back to the previous champion."""

    model_name: str
    demoted_version: str | None
    restored_version: str
