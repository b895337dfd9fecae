"""The DAGs of every dataset, generated from ``data/<dataset>/dataset.yaml`` (dynamic DAG generation).

``dags/lifeboat_datasets.py`` calls :func:`dataset_dags`; for each dataset folder holding a spec it builds

* ``<dataset>_retrain`` - the nightly (and on-demand) retraining run (:func:`retrain_dag`), on the spec's
  ``schedule`` unless ``LIFEBOAT_RETRAIN_SCHEDULE`` is set;
* ``<dataset>_rollback`` - manual: the previous champion back into service (:func:`rollback_dag`).

Titanic keeps its ids (``titanic_retrain``, ``titanic_rollback``). Every task works on its own dataset's
settings (:func:`lifeboat.settings.settings_for`) and the Spark jobs get ``LIFEBOAT_DATASET``, so one
Airflow serves several datasets side by side.

Parsing stays cheap (the DAG processor re-parses the file every few seconds): a spec is read with
``yaml.safe_load`` for its name, schedule and description only; the full check of the spec against the data
runs in the ``validate_data`` task. A spec that cannot even be read still gets a ``<dataset>_retrain`` DAG,
whose single task fails with the reason, so the problem shows in the UI without hiding the other datasets.
"""

from __future__ import annotations

import logging
import re
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifeboat.orchestration.alerts import notify_failure
from lifeboat.orchestration.assets import champion_asset, incoming_asset
from lifeboat.orchestration.pipeline import jobs_dir
from lifeboat.orchestration.pools import registry_pool
from lifeboat.orchestration.results import DriftStep, GateStep, PerformanceStep, PulledData, RolledBack
from lifeboat.settings import DATASET_NAME_PATTERN, Settings, get_settings, settings_for

if TYPE_CHECKING:
    from airflow.sdk import DAG

logger = logging.getLogger(__name__)

SPEC_FILE = "dataset.yaml"
SPARK_CONN_ID = "spark_default"
FAMILIES = ["lr", "rf", "gbt"]

RETRAIN_DOC = """
### {dataset}_retrain - the nightly (and on-demand) retraining of the {dataset} model

{description}

1. **pull_data** - `dvc pull`, then fingerprint the files a run trains on (is there new data?).
2. **validate_data** - the dataset spec against the data: types, ranges, labels; fails naming the file, row
   and column (no retry).
3. **drift_report** - Evidently: the champion's training rows vs the newest batch (new data) or the
   logged prediction requests; HTML in the "Monitoring" page and in MLflow.
4. **monitor_performance** - the champion's live performance over the predictions whose labels came back
   (accuracy, ROC-AUC, precision, recall, calibration) beside its holdout figures; a report in the
   "Monitoring" page. A drop beyond the performance rule's margin alerts.
5. **decide_training** - train when there is no champion, when the run asks for it
   (`retrain_without_changes`), when the dataset spec changed since the champion was trained, or when
   the dataset's retraining policy says so (drift in new data, a live performance drop, new rows, the
   schedule); otherwise the run ends here.
6. **preprocess**, **train** - Spark jobs (`jobs/preprocess.py`, `jobs/train.py`) through the
   `spark_default` connection (`local[*]` or a cluster).
7. **evaluate_gate** - challenger and champion on the same holdout; the decision and its numbers become
   version tags and the run's `gate.json`.
8. **promote** (only when the gate passed and this is not a dry run) -> **reload_serving** (authenticated
   reload, then wait until the server answers with the new version).

Parameters of a manual run: model families, required improvement, dry run, retrain without changes.
"""

ROLLBACK_DOC = """
### {dataset}_rollback - put the previous champion of {dataset} back into service

Manual only. Moves the MLflow alias `champion` back to `previous_champion` (after checking that the
restored version loads and scores the canary row), records who asked and why as version tags,
tells the prediction server to reload, and waits until it serves the restored version.
A second rollback rolls forward again (the two versions swap).
"""


class InvalidSpecError(RuntimeError):
    """A dataset spec that cannot be read: its DAG's only task fails with this."""


@dataclass(frozen=True)
class DatasetEntry:
    """What the DAG processor knows of one dataset folder without validating its spec."""

    name: str
    spec_path: Path
    schedule: str | None = None
    description: str = ""
    error: str | None = None


def read_entry(spec_path: Path) -> DatasetEntry:
    """Name, schedule and description of ``spec_path`` (the dataset is the folder's name); never raises."""
    import yaml

    name = spec_path.parent.name
    try:
        data = yaml.safe_load(spec_path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        return DatasetEntry(name, spec_path, error=f"{spec_path}: cannot be read as YAML: {exc}")
    if not isinstance(data, dict):
        return DatasetEntry(name, spec_path, error=f"{spec_path}: the spec must be a mapping of keys")
    if data.get("name") != name:
        return DatasetEntry(
            name,
            spec_path,
            error=f"{spec_path}: name: must be the folder's name {name!r}, got {data.get('name')!r}",
        )
    schedule = data.get("schedule")
    return DatasetEntry(
        name,
        spec_path,
        schedule=str(schedule) if schedule else None,
        description=str(data.get("description") or ""),
    )


def discover_datasets(data_root: Path) -> list[DatasetEntry]:
    """Every ``<data_root>/<dataset>/dataset.yaml`` whose folder name is a valid dataset name, sorted."""
    entries = []
    for spec_path in sorted(data_root.glob(f"*/{SPEC_FILE}")):
        if re.fullmatch(DATASET_NAME_PATTERN, spec_path.parent.name):
            entries.append(read_entry(spec_path))
        else:
            logger.warning("ignored %s: %r is not a dataset name", spec_path, spec_path.parent.name)
    return entries


def _default_args(settings: Settings) -> dict[str, Any]:
    return {
        "owner": "lifeboat",
        "retries": settings.task_retries,
        "retry_delay": timedelta(seconds=settings.task_retry_delay_seconds),
        "execution_timeout": timedelta(minutes=settings.task_timeout_minutes),
        "on_failure_callback": notify_failure,
    }


def _schedule(entry: DatasetEntry, settings: Settings) -> str:
    """``LIFEBOAT_RETRAIN_SCHEDULE`` when set, else the spec's schedule, else the settings' default."""
    if "retrain_schedule" in settings.model_fields_set or entry.schedule is None:
        return settings.retrain_schedule
    return entry.schedule


def _retrain_params(settings: Settings) -> dict[str, Any]:
    from airflow.sdk import Param

    return {
        "families": Param(
            list(settings.model_families),
            type="array",
            items={"type": "string", "enum": FAMILIES},
            minItems=1,
            uniqueItems=True,
            title="Model families",
            description="Which model families to cross-validate: lr (logistic regression), rf (random "
            "forest), gbt (gradient-boosted trees). The best by CV ROC-AUC becomes the challenger.",
        ),
        "required_improvement": Param(
            settings.gate_min_improvement,
            type="number",
            minimum=-1,
            maximum=1,
            title="Required improvement",
            description="How much the challenger must beat the champion on the primary metric "
            "(same holdout). Negative: accept a bounded regression.",
        ),
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Train, evaluate and record the gate decision, but never promote.",
        ),
        "retrain_without_changes": Param(
            False,
            type="boolean",
            title="Retrain without changes",
            description="Train even when there is neither new data nor drift.",
        ),
    }


def retrain_dag(entry: DatasetEntry) -> DAG:
    """``<dataset>_retrain``: wiring only, every step a function of :mod:`lifeboat.orchestration.retrain`."""
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable, task

    dataset = entry.name
    settings = settings_for(dataset)

    def spark_job(task_id: str, application: str, args: Any) -> SparkSubmitOperator:
        return SparkSubmitOperator(
            task_id=task_id,
            conn_id=SPARK_CONN_ID,
            application=str(jobs_dir() / application),
            application_args=args,
            name=f"lifeboat-{dataset}-{task_id}",
            driver_memory=settings.spark_driver_memory,
            conf={"spark.ui.showConsoleProgress": "false"},
            env_vars={"PYSPARK_PYTHON": sys.executable, "LIFEBOAT_DATASET": dataset},
            execution_timeout=timedelta(minutes=settings.spark_task_timeout_minutes),
        )

    with DAG(
        dag_id=f"{dataset}_retrain",
        # No start_date and run_immediately=0: unpausing the DAG never starts a run for a past night.
        # The nightly schedule OR a new batch (an event on the dataset's incoming asset, lifeboat add-batch).
        schedule=AssetOrTimeSchedule(
            timetable=CronTriggerTimetable(
                _schedule(entry, settings), timezone="UTC", run_immediately=timedelta(0)
            ),
            assets=incoming_asset(dataset),
        ),
        catchup=False,
        max_active_runs=1,
        tags=["lifeboat", dataset, "retraining"],
        doc_md=RETRAIN_DOC.format(dataset=dataset, description=entry.description),
        default_args=_default_args(settings),
        params=_retrain_params(settings),
    ) as dag:

        @task
        def pull_data() -> dict[str, Any]:
            from lifeboat.data.versioning import DataError
            from lifeboat.orchestration import retrain

            with retrain.fail_without_retry(DataError):
                return retrain.pull_data(settings_for(dataset)).to_xcom()

        @task
        def validate_data() -> dict[str, Any]:
            from lifeboat.dataset.schema import DataValidationError
            from lifeboat.orchestration import retrain

            with retrain.fail_without_retry(DataValidationError):
                return retrain.validate_data(settings_for(dataset)).to_xcom()

        @task
        def drift_report(pulled: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
            from lifeboat.orchestration import retrain

            new_data = PulledData.model_validate(pulled).new_data
            return retrain.drift_report(settings_for(dataset), str(run_id), new_data).to_xcom()

        @task
        def monitor_performance(pulled: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
            from lifeboat.orchestration import monitor_steps

            champion = PulledData.model_validate(pulled)
            return monitor_steps.monitor_performance(settings_for(dataset), str(run_id), champion).to_xcom()

        @task.short_circuit
        def decide_training(
            pulled: dict[str, Any],
            drift: dict[str, Any],
            performance: dict[str, Any],
            params: dict[str, Any] | None = None,
            dag_run: Any = None,
            ti: Any = None,
        ) -> bool:
            from lifeboat.orchestration import retrain

            current = settings_for(dataset)
            with retrain.fail_without_retry(retrain.BadRunParams):
                run_params = retrain.RunParams.from_params(params or {}, current)
            drift_step = DriftStep.model_validate(drift)
            live = PerformanceStep.model_validate(performance)
            decision = retrain.decide_training(
                current,
                run_params,
                PulledData.model_validate(pulled),
                drift_step,
                live=live.live_figures(),
                scheduled=getattr(dag_run, "run_type", None) == "scheduled",
            )
            logger.info("train: %s (%s)", decision.train, decision.reason)
            from lifeboat.orchestration.monitor_steps import alert_on_monitoring

            alert_on_monitoring(current, drift_step, decision, live)
            if ti is not None:  # the decision, its rule and figures, for the run's record (XCom "decision")
                ti.xcom_push(key="decision", value=decision.to_xcom())
            return decision.train

        @task(multiple_outputs=True)
        def plan_spark_jobs(
            run_id: str | None = None, params: dict[str, Any] | None = None
        ) -> dict[str, Any]:
            from lifeboat.orchestration import retrain

            current = settings_for(dataset)
            with retrain.fail_without_retry(retrain.BadRunParams):
                run_params = retrain.RunParams.from_params(params or {}, current)
            return retrain.plan_spark_jobs(current, str(run_id), run_params).to_xcom()

        @task
        def evaluate_gate(run_id: str | None = None, params: dict[str, Any] | None = None) -> dict[str, Any]:
            from lifeboat.orchestration import retrain

            current = settings_for(dataset)
            run_params = retrain.RunParams.from_params(params or {}, current)
            return retrain.evaluate_gate(current, str(run_id), run_params).to_xcom()

        @task.branch
        def promotion_branch(gate: dict[str, Any]) -> str:
            from lifeboat.orchestration import retrain

            return retrain.promotion_branch(GateStep.model_validate(gate), "promote", "no_promotion")

        champion = champion_asset(dataset)

        # One alias move at a time per dataset (with rollback); a promotion is an event on the champion asset.
        @task(pool=registry_pool(dataset), outlets=[champion])
        def promote(
            gate: dict[str, Any], run_id: str | None = None, outlet_events: Any = None
        ) -> dict[str, Any]:
            from lifeboat.orchestration import retrain

            judged = str(GateStep.model_validate(gate).version)  # from Airflow's own record, not a file
            promoted = retrain.promote(settings_for(dataset), str(run_id), judged).to_xcom()
            if outlet_events is not None:
                outlet_events[champion].extra = {"version": str(promoted.get("version")), "run_id": run_id}
            return promoted

        @task
        def reload_serving(promoted: dict[str, Any]) -> dict[str, Any]:
            from lifeboat.orchestration import retrain

            with retrain.fail_without_retry(retrain.ReloadRefused):
                version = str(GateStep.model_validate(promoted).version)
                return retrain.reload_serving(settings_for(dataset), version).to_xcom()

        # XComArgs stand for the values at run time (typed Any: the task signatures name the values).
        pulled: Any = pull_data()
        validated = validate_data()
        drift: Any = drift_report(pulled)
        performance: Any = monitor_performance(pulled)
        go = decide_training(pulled, drift, performance)
        plan: Any = plan_spark_jobs()
        preprocess = spark_job("preprocess", "preprocess.py", plan["preprocess_args"])
        train = spark_job("train", "train.py", plan["train_args"])
        gate: Any = evaluate_gate()
        branch = promotion_branch(gate)
        promoted: Any = promote(gate)
        no_promotion = EmptyOperator(task_id="no_promotion")

        pulled >> validated >> [drift, performance]
        go >> plan >> preprocess >> train >> gate
        branch >> [promoted, no_promotion]
        reload_serving(promoted)
    return dag


def rollback_dag(entry: DatasetEntry) -> DAG:
    """``<dataset>_rollback``: :func:`lifeboat.orchestration.retrain.rollback`, then ``reload_serving``."""
    from airflow.sdk import DAG, Param, task

    dataset = entry.name
    with DAG(
        dag_id=f"{dataset}_rollback",
        schedule=None,
        catchup=False,
        max_active_runs=1,
        tags=["lifeboat", dataset, "rollback"],
        doc_md=ROLLBACK_DOC.format(dataset=dataset),
        default_args=_default_args(settings_for(dataset)),
        params={
            "reason": Param(
                type="string",
                minLength=3,
                maxLength=500,
                title="Reason",
                description="Why the champion is rolled back (recorded on both model versions).",
            ),
            "requested_by": Param(
                "",
                type="string",
                maxLength=100,
                title="Requested by",
                description=(
                    "Who asked for the rollback, recorded beside the Airflow user who triggered the run "
                    "(never instead of it)."
                ),
            ),
        },
    ) as dag:

        @task(retries=0, pool=registry_pool(dataset))  # one alias move at a time per dataset (with promote)
        def rollback(params: dict[str, Any] | None = None, dag_run: Any = None) -> dict[str, Any]:
            from lifeboat.orchestration import retrain
            from lifeboat.registry.promotion import RollbackError

            params = params or {}
            actor = retrain.rollback_actor(
                getattr(dag_run, "triggering_user_name", None), str(params.get("requested_by") or "")
            )
            with retrain.fail_without_retry(RollbackError):
                reason = str(params.get("reason") or "")
                return retrain.rollback(settings_for(dataset), reason, actor).to_xcom()

        @task
        def reload_serving(rolled_back: dict[str, Any]) -> dict[str, Any]:
            from lifeboat.orchestration import retrain

            with retrain.fail_without_retry(retrain.ReloadRefused):
                restored = RolledBack.model_validate(rolled_back).restored_version
                return retrain.reload_serving(settings_for(dataset), restored).to_xcom()

        rolled_back: Any = rollback()
        reload_serving(rolled_back)
    return dag


def invalid_spec_dag(entry: DatasetEntry) -> DAG:
    """``<dataset>_retrain`` for a spec that cannot be read: one task failing with the reason, no schedule."""
    from airflow.sdk import DAG, task

    message = entry.error or f"{entry.spec_path}: invalid"
    with DAG(
        dag_id=f"{entry.name}_retrain",
        schedule=None,
        catchup=False,
        tags=["lifeboat", entry.name, "invalid-spec"],
        doc_md=f"### {entry.name}_retrain\n\nThe dataset spec cannot be read:\n\n    {message}\n",
    ) as dag:

        @task(retries=0)
        def invalid_spec() -> None:
            raise InvalidSpecError(message)

        invalid_spec()
    return dag


def dataset_dags(data_root: Path | None = None) -> dict[str, DAG]:
    """Every dataset's DAGs by DAG id (``data_root`` defaults to the settings' ``data_root``)."""
    root = data_root if data_root is not None else get_settings().data_root
    dags: dict[str, DAG] = {}
    for entry in discover_datasets(root):
        built = [invalid_spec_dag(entry)] if entry.error else [retrain_dag(entry), rollback_dag(entry)]
        dags.update({dag.dag_id: dag for dag in built})
    return dags
