"""
### titanic_retrain — the nightly (and on-demand) retraining of the Titanic survival model

1. **pull_data** — `dvc pull`, then fingerprint the files a run trains on (is there new data?).
2. **validate_data** — schema, types, ranges, labels; fails naming the file, row and column (no retry).
3. **drift_report** — Evidently: the champion's training rows vs the newest batch (new data) or the
   logged prediction requests; HTML in the "Drift reports" page and in MLflow.
4. **decide_training** — train when there is no champion, when the run asks for it
   (`retrain_without_changes`), or when the drift policy says so; otherwise the run ends here.
5. **preprocess**, **train** — Spark jobs (`jobs/preprocess.py`, `jobs/train.py`) through the
   `spark_default` connection (`local[*]` or a cluster).
6. **evaluate_gate** — challenger and champion on the same holdout; the decision and its numbers become
   version tags and the run's `gate.json`.
7. **promote** (only when the gate passed and this is not a dry run) → **reload_serving** (authenticated
   reload, then wait until the server answers with the new version).

Parameters of a manual run: model families, required improvement, dry run, retrain without changes.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import CronTriggerTimetable, Param, dag, task

from lifeboat.orchestration.alerts import notify_failure
from lifeboat.orchestration.pipeline import jobs_dir
from lifeboat.settings import get_settings

SETTINGS = get_settings()
SPARK_CONN_ID = "spark_default"


def _spark_job(task_id: str, application: str, args: Any) -> SparkSubmitOperator:
    return SparkSubmitOperator(
        task_id=task_id,
        conn_id=SPARK_CONN_ID,
        application=str(jobs_dir() / application),
        application_args=args,
        name=f"lifeboat-{task_id}",
        driver_memory=SETTINGS.spark_driver_memory,
        conf={"spark.ui.showConsoleProgress": "false"},
        env_vars={"PYSPARK_PYTHON": sys.executable},
        execution_timeout=timedelta(minutes=SETTINGS.spark_task_timeout_minutes),
    )


@dag(
    dag_id="titanic_retrain",
    # No start_date and run_immediately=0: unpausing the DAG never starts a run for a past night.
    schedule=CronTriggerTimetable(SETTINGS.retrain_schedule, timezone="UTC", run_immediately=timedelta(0)),
    catchup=False,
    max_active_runs=1,
    tags=["lifeboat", "titanic", "retraining"],
    doc_md=__doc__,
    default_args={
        "owner": "lifeboat",
        "retries": SETTINGS.task_retries,
        "retry_delay": timedelta(seconds=SETTINGS.task_retry_delay_seconds),
        "execution_timeout": timedelta(minutes=SETTINGS.task_timeout_minutes),
        "on_failure_callback": notify_failure,
    },
    params={
        "families": Param(
            list(SETTINGS.model_families),
            type="array",
            items={"type": "string", "enum": ["lr", "rf", "gbt"]},
            minItems=1,
            uniqueItems=True,
            title="Model families",
            description="Which model families to cross-validate: lr (logistic regression), rf (random "
            "forest), gbt (gradient-boosted trees). The best by CV ROC-AUC becomes the challenger.",
        ),
        "required_improvement": Param(
            SETTINGS.gate_min_improvement,
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
    },
)
def titanic_retrain() -> None:
    """Wiring only: every step is a function of lifeboat.orchestration.retrain (see the module doc above)."""

    @task
    def pull_data() -> dict[str, Any]:
        from lifeboat.data.versioning import DataError
        from lifeboat.orchestration import retrain

        with retrain.fail_without_retry(DataError):
            return retrain.pull_data(get_settings())

    @task
    def validate_data() -> dict[str, Any]:
        from lifeboat.dataset.schema import DataValidationError
        from lifeboat.orchestration import retrain

        with retrain.fail_without_retry(DataValidationError):
            return retrain.validate_data(get_settings())

    @task
    def drift_report(pulled: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
        from lifeboat.orchestration import retrain

        return retrain.drift_report(get_settings(), str(run_id), bool(pulled["new_data"]))

    @task.short_circuit
    def decide_training(
        pulled: dict[str, Any], drift: dict[str, Any], params: dict[str, Any] | None = None
    ) -> bool:
        import logging

        from lifeboat.orchestration import retrain

        settings = get_settings()
        with retrain.fail_without_retry(retrain.BadRunParams):
            run_params = retrain.RunParams.from_params(params or {}, settings)
        decision = retrain.decide_training(settings, run_params, pulled, drift)
        logging.getLogger("lifeboat.dags").info("train: %s (%s)", decision["train"], decision["reason"])
        return bool(decision["train"])

    @task(multiple_outputs=True)
    def plan_spark_jobs(run_id: str | None = None, params: dict[str, Any] | None = None) -> dict[str, Any]:
        from lifeboat.orchestration import retrain

        settings = get_settings()
        with retrain.fail_without_retry(retrain.BadRunParams):
            run_params = retrain.RunParams.from_params(params or {}, settings)
        return retrain.plan_spark_jobs(settings, str(run_id), run_params)

    @task
    def evaluate_gate(run_id: str | None = None, params: dict[str, Any] | None = None) -> dict[str, Any]:
        from lifeboat.orchestration import retrain

        settings = get_settings()
        run_params = retrain.RunParams.from_params(params or {}, settings)
        return retrain.evaluate_gate(settings, str(run_id), run_params)

    @task.branch
    def promotion_branch(gate: dict[str, Any]) -> str:
        from lifeboat.orchestration import retrain

        return retrain.promotion_branch(gate, "promote", "no_promotion")

    @task
    def promote(run_id: str | None = None) -> dict[str, Any]:
        from lifeboat.orchestration import retrain

        return retrain.promote(get_settings(), str(run_id))

    @task
    def reload_serving(promoted: dict[str, Any]) -> dict[str, Any]:
        from lifeboat.orchestration import retrain

        with retrain.fail_without_retry(retrain.ReloadRefused):
            return retrain.reload_serving(get_settings(), str(promoted["version"]))

    pulled = pull_data()
    validated = validate_data()
    drift = drift_report(pulled)
    go = decide_training(pulled, drift)
    plan = plan_spark_jobs()
    preprocess = _spark_job("preprocess", "preprocess.py", plan["preprocess_args"])
    train = _spark_job("train", "train.py", plan["train_args"])
    gate = evaluate_gate()
    branch = promotion_branch(gate)
    promoted = promote()
    no_promotion = EmptyOperator(task_id="no_promotion")

    pulled >> validated >> drift
    go >> plan >> preprocess >> train >> gate
    branch >> [promoted, no_promotion]
    reload_serving(promoted)


titanic_retrain()
