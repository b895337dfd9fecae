"""The DAG runs ``lifeboat up`` starts on the embedded stack, so that every dataset is trained and served.

:func:`start_runs`, once the services answer:

1. unpauses ``<dataset>_retrain`` and ``<dataset>_rollback`` of every dataset (the default dataset first);
2. triggers the default dataset's run (when its DAG never ran, or on ``--trigger``) and follows it task by
   task in the foreground, so a newcomer's first minutes stay those of Titanic (2-3 minutes);
3. once that run succeeded, starts each other dataset's run by the same rule and leaves it in the
   background (one line per run with its Airflow URL): the run's ``reload_serving`` step tells the
   prediction server to load the new champion. ``wait_all`` follows those runs as well.

One training at a time (2 cores): a run is triggered only when no other retraining run is in progress.
This is decided here, not by an Airflow pool, because a pool must exist in every deployment (compose too)
before any of its tasks is scheduled, while the nightly schedules are an hour apart already.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

from lifeboat.stack.embedded import retrain_dag, rollback_dag

logger = logging.getLogger(__name__)

#: The states of a DAG run that has not ended.
IN_PROGRESS = ("queued", "running")
NOTE = "started by `lifeboat up`"

Say = Callable[[str], None]


class RunsClient(Protocol):
    """The part of :class:`lifeboat.orchestration.airflow_api.AirflowClient` that starting runs uses."""

    def wait_for_dag(self, dag_id: str, timeout: float = ..., poll: float = ...) -> dict[str, Any]: ...

    def set_paused(self, dag_id: str, paused: bool) -> None: ...

    def runs(self, dag_id: str, limit: int = ...) -> list[dict[str, Any]]: ...

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = ..., note: str | None = ...) -> str: ...

    def wait_for_run(
        self,
        dag_id: str,
        run_id: str,
        timeout: float = ...,
        poll: float = ...,
        on_change: Callable[[Any], None] | None = ...,
    ) -> dict[str, Any]: ...

    def task_states(self, dag_id: str, run_id: str) -> Sequence[Any]: ...


@dataclass(frozen=True)
class RunOptions:
    """What ``lifeboat up`` was asked: ``trigger`` a new run even after earlier ones, ``no_trigger`` none at
    all, ``wait_all`` follow every dataset's run (not only the default one's), ``timeout`` per run."""

    trigger: bool = False
    no_trigger: bool = False
    wait_all: bool = False
    timeout: float = 1800.0


@dataclass(frozen=True)
class DatasetRun:
    """What :func:`start_runs` did for one dataset: the run it started or found (None: none) and, when it
    followed the run to its end, the final state (None: not followed)."""

    dataset: str
    run_id: str | None
    state: str | None


def run_url(airflow_url: str, dag_id: str, run_id: str) -> str:
    """The page of one DAG run in the Airflow UI."""
    return f"{airflow_url.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def unpause(client: RunsClient, datasets: Sequence[str], say: Say = print) -> None:
    """Unpause the retrain and rollback DAGs of every dataset (each waited for until Airflow parsed it)."""
    dag_ids = [dag_id for dataset in datasets for dag_id in (retrain_dag(dataset), rollback_dag(dataset))]
    for dag_id in dag_ids:
        client.wait_for_dag(dag_id)
        client.set_paused(dag_id, False)
    say(f"DAGs unpaused: {', '.join(dag_ids)}")


def follow_run(client: RunsClient, dag_id: str, run_id: str, timeout: float, say: Say = print) -> str:
    """Print each task's state changes until the run ends; return the run's final state."""
    started = time.monotonic()

    def show(task: Any) -> None:
        took = f" ({task.duration:.0f} s)" if task.duration else ""
        say(f"  {time.monotonic() - started:6.0f} s  {task.task_id:<17} {task.state or 'waiting'}{took}")

    run = client.wait_for_run(dag_id, run_id, timeout=timeout, on_change=show)
    state = str(run.get("state"))
    say(f"run {run_id}: {state} after {time.monotonic() - started:.0f} s")
    if state != "success":
        failed = [t.task_id for t in client.task_states(dag_id, run_id) if t.state == "failed"]
        if failed:
            say(f"failed task(s): {', '.join(failed)} — see their logs in the Airflow UI")
    return state


def _latest(client: RunsClient, dataset: str) -> dict[str, Any] | None:
    found = client.runs(retrain_dag(dataset), limit=1)
    return found[0] if found else None


def _in_progress(client: RunsClient, datasets: Sequence[str]) -> tuple[str, str] | None:
    """The first of ``datasets`` whose newest retraining run has not ended, with that run's id."""
    for dataset in datasets:
        latest = _latest(client, dataset)
        if latest is not None and latest.get("state") in IN_PROGRESS:
            return dataset, str(latest["dag_run_id"])
    return None


def _wait_until_idle(client: RunsClient, others: Sequence[str], timeout: float, say: Say) -> None:
    """Follow the retraining runs of ``others`` in progress until none is left (one training at a time)."""
    while (busy := _in_progress(client, others)) is not None:
        dataset, run_id = busy
        say(f"waiting for {dataset}'s run {run_id} to end first (one training at a time)")
        follow_run(client, retrain_dag(dataset), run_id, timeout, say)


def _decision(latest: dict[str, Any] | None, options: RunOptions) -> str:
    """``trigger`` (never ran, or asked to), ``in progress`` (its newest run has not ended), ``ended`` or
    ``none`` (never ran, and asked not to trigger)."""
    if options.trigger or (latest is None and not options.no_trigger):
        return "trigger"
    if latest is None:
        return "none"
    return "in progress" if latest.get("state") in IN_PROGRESS else "ended"


def _run_to_follow(
    client: RunsClient, dataset: str, others: Sequence[str], options: RunOptions, say: Say
) -> str | None:
    """Trigger the dataset's run (once the runs of ``others`` in progress ended) or return its run in
    progress; None when there is nothing to follow."""
    dag_id = retrain_dag(dataset)
    latest = _latest(client, dataset)
    decision = _decision(latest, options)
    if decision == "trigger":
        _wait_until_idle(client, others, options.timeout, say)
        run_id = client.trigger(dag_id, note=NOTE)
        say(f"triggered {dag_id} run {run_id}")
        return run_id
    if latest is None:
        return None
    if decision == "in progress":
        say(f"following the run of {dag_id} in progress: {latest['dag_run_id']}")
        return str(latest["dag_run_id"])
    state = latest.get("state")
    say(f"last run of {dag_id}, {latest['dag_run_id']}: {state} (`make run TRIGGER=1` starts one)")
    return None


def _background_run(
    client: RunsClient, dataset: str, others: Sequence[str], options: RunOptions, airflow_url: str, say: Say
) -> str | None:
    """Trigger the dataset's run unless another training is in progress, and say where to watch it;
    return the run left in progress (None: none)."""
    dag_id = retrain_dag(dataset)
    latest = _latest(client, dataset)
    decision = _decision(latest, options)
    if decision == "trigger":
        busy = _in_progress(client, others)
        if busy is not None:
            say(
                f"{dataset}: not triggered yet, {busy[0]}'s run is in progress (one training at a time); "
                f"once it ends: `lifeboat trigger --dataset {dataset}` (or `lifeboat up --wait-all`)"
            )
            return None
        run_id, what = client.trigger(dag_id, note=NOTE), "triggered"
    elif latest is None:
        return None
    elif decision == "in progress":
        run_id, what = str(latest["dag_run_id"]), "in progress"
    else:
        say(f"{dataset}: last run of {dag_id}, {latest['dag_run_id']}: {latest.get('state')}")
        return None
    say(f"{dataset}: {what} {dag_id} run {run_id} (in the background) {run_url(airflow_url, dag_id, run_id)}")
    return run_id


def start_runs(
    client: RunsClient, datasets: Sequence[str], options: RunOptions, airflow_url: str, say: Say = print
) -> list[DatasetRun]:
    """Unpause every dataset's DAGs, follow the default dataset's run (``datasets[0]``), then start the
    others' one after the other: followed with ``options.wait_all``, else left in the background.

    The other datasets' runs start only when the default one's run (if any) succeeded.
    """
    default, *rest = datasets
    unpause(client, datasets, say)

    def others(dataset: str) -> list[str]:
        return [d for d in datasets if d != dataset]

    run_id = _run_to_follow(client, default, others(default), options, say)
    state = follow_run(client, retrain_dag(default), run_id, options.timeout, say) if run_id else None
    done = [DatasetRun(default, run_id, state)]
    if state not in (None, "success"):
        if rest:
            say(f"the runs of {', '.join(rest)} are not started: {retrain_dag(default)}'s run {state}")
        return done
    background = False
    for dataset in rest:
        if options.wait_all:
            run_id = _run_to_follow(client, dataset, others(dataset), options, say)
            state = follow_run(client, retrain_dag(dataset), run_id, options.timeout, say) if run_id else None
        else:
            run_id = _background_run(client, dataset, others(dataset), options, airflow_url, say)
            state = None
            background = background or run_id is not None
        done.append(DatasetRun(dataset, run_id, state))
    if background:
        say(
            "The prediction server loads each new champion by itself when its run ends (the run's "
            "reload_serving step); `lifeboat status` shows the runs."
        )
    return done


def succeeded(done: Sequence[DatasetRun]) -> bool:
    """Whether every run that was followed to its end succeeded."""
    return all(run.state == "success" for run in done if run.state is not None)
