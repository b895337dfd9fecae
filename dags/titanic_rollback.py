"""
### titanic_rollback — put the previous champion back into service

Manual only. Moves the MLflow alias `champion` back to `previous_champion` (after checking that the
restored version loads and scores the canary passenger), records who asked and why as version tags,
tells the prediction server to reload, and waits until it serves the restored version.
A second rollback rolls forward again (the two versions swap).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import Param, dag, task

from lifeboat.orchestration.alerts import notify_failure
from lifeboat.settings import get_settings

SETTINGS = get_settings()


@dag(
    dag_id="titanic_rollback",
    schedule=None,
    catchup=False,
    max_active_runs=1,
    tags=["lifeboat", "titanic", "rollback"],
    doc_md=__doc__,
    default_args={
        "owner": "lifeboat",
        "retries": SETTINGS.task_retries,
        "retry_delay": timedelta(seconds=SETTINGS.task_retry_delay_seconds),
        "execution_timeout": timedelta(minutes=SETTINGS.task_timeout_minutes),
        "on_failure_callback": notify_failure,
    },
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
            description="Who asks for the rollback (default: the user who triggered the run).",
        ),
    },
)
def titanic_rollback() -> None:
    """Wiring only: lifeboat.orchestration.retrain.rollback, then
    lifeboat.orchestration.retrain.reload_serving."""

    @task(retries=0)
    def rollback(params: dict[str, Any] | None = None, dag_run: Any = None) -> dict[str, Any]:
        from lifeboat.orchestration import retrain
        from lifeboat.registry.promotion import RollbackError

        params = params or {}
        actor = str(params.get("requested_by") or getattr(dag_run, "triggering_user_name", None) or "airflow")
        with retrain.fail_without_retry(RollbackError):
            return retrain.rollback(get_settings(), str(params.get("reason") or ""), actor)

    @task
    def reload_serving(rolled_back: dict[str, Any]) -> dict[str, Any]:
        from lifeboat.orchestration import retrain

        with retrain.fail_without_retry(retrain.ReloadRefused):
            return retrain.reload_serving(get_settings(), str(rolled_back["restored_version"]))

    reload_serving(rollback())


titanic_rollback()
