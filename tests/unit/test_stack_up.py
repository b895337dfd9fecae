"""`lifeboat up` trains every dataset: which DAGs it unpauses, which runs it triggers and follows, in which
order (one training at a time), what it prints and its exit code. Airflow is a fake that records the calls;
the real stack is exercised by tests/orchestration."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lifeboat import cli
from lifeboat.dataset.spec import load_spec
from lifeboat.orchestration.airflow_api import AirflowApiError, TaskState
from lifeboat.settings import Settings
from lifeboat.stack import embedded as stack
from lifeboat.stack import runs
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

AIRFLOW = "http://127.0.0.1:8080"


@dataclass
class FakeAirflow:
    """The Airflow REST client of the stack: DAGs known, runs per DAG (newest first), each run's outcome."""

    dags: set[str]
    outcome: dict[str, str] = field(default_factory=dict)
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def __enter__(self) -> FakeAirflow:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def wait_for_dag(self, dag_id: str, timeout: float = 180.0, poll: float = 2.0) -> dict[str, Any]:
        if dag_id not in self.dags:
            raise AirflowApiError(f"DAG {dag_id} did not appear within {timeout:g} s")
        return {"dag_id": dag_id}

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.calls.append(("pause" if paused else "unpause", dag_id))

    def runs(self, dag_id: str, limit: int = 25) -> list[dict[str, Any]]:
        return self.history.get(dag_id, [])[:limit]

    def trigger(self, dag_id: str, conf: Any = None, note: str | None = None) -> str:
        run_id = f"manual__{len(self.calls)}"
        self.history.setdefault(dag_id, []).insert(0, {"dag_run_id": run_id, "state": "queued"})
        self.calls.append(("trigger", dag_id))
        return run_id

    def wait_for_run(
        self,
        dag_id: str,
        run_id: str,
        timeout: float = 1800.0,
        poll: float = 3.0,
        on_change: Callable[[TaskState], None] | None = None,
    ) -> dict[str, Any]:
        self.calls.append(("follow", dag_id))
        state = self.outcome.get(dag_id, "success")
        for run in self.history[dag_id]:
            if run["dag_run_id"] == run_id:
                run["state"] = state
        if on_change is not None:
            on_change(TaskState("train", state, 1, None, None, 12.0))
        return {"dag_run_id": run_id, "state": state}

    def task_states(self, dag_id: str, run_id: str) -> list[TaskState]:
        return [TaskState("train", self.outcome.get(dag_id, "success"), 1, None, None, 12.0)]

    def ran(self, dag_id: str, state: str) -> None:
        """A run of ``dag_id`` from an earlier `lifeboat up`, now in ``state``."""
        self.history.setdefault(dag_id, []).insert(0, {"dag_run_id": f"earlier__{dag_id}", "state": state})

    def steps(self) -> list[tuple[str, ...]]:
        """The triggers and follows, in order."""
        return [call for call in self.calls if call[0] in ("trigger", "follow")]


def fake_airflow(*datasets: str) -> FakeAirflow:
    return FakeAirflow({f"{d}_{kind}" for d in datasets for kind in ("retrain", "rollback")})


def start(client: FakeAirflow, datasets: list[str], **options: Any) -> tuple[list[runs.DatasetRun], str]:
    lines: list[str] = []
    done = runs.start_runs(client, datasets, runs.RunOptions(**options), AIRFLOW, say=lines.append)
    return done, "\n".join(lines)


def test_dag_ids_of_a_dataset() -> None:
    assert (stack.retrain_dag("titanic"), stack.rollback_dag("titanic")) == (
        "titanic_retrain",
        "titanic_rollback",
    )
    assert stack.retrain_dag("adult") == "adult_retrain"


def test_the_default_dataset_comes_first(tmp_path: Path) -> None:
    for name in ("zoo", "adult", "titanic"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "dataset.yaml").write_text(f"name: {name}\n")
    assert stack.stack_datasets(Settings(data_root=tmp_path)) == ["titanic", "adult", "zoo"]
    assert stack.stack_datasets(Settings(data_root=tmp_path, dataset="zoo")) == ["zoo", "adult", "titanic"]


def test_a_fresh_stack_follows_titanic_then_starts_adult_in_the_background() -> None:
    client = fake_airflow("titanic", "adult")
    done, out = start(client, ["titanic", "adult"])
    assert [c for c in client.calls if c[0] == "unpause"] == [
        ("unpause", "titanic_retrain"),
        ("unpause", "titanic_rollback"),
        ("unpause", "adult_retrain"),
        ("unpause", "adult_rollback"),
    ]
    # adult's training starts only after titanic's run ended, and is not waited for
    assert client.steps() == [
        ("trigger", "titanic_retrain"),
        ("follow", "titanic_retrain"),
        ("trigger", "adult_retrain"),
    ]
    adult_run = client.runs("adult_retrain")[0]["dag_run_id"]
    assert done == [
        runs.DatasetRun("titanic", client.runs("titanic_retrain")[0]["dag_run_id"], "success"),
        runs.DatasetRun("adult", adult_run, None),
    ]
    assert runs.succeeded(done)
    background = [line for line in out.splitlines() if line.startswith("adult:")]
    assert background == [
        f"adult: triggered adult_retrain run {adult_run} (in the background) "
        f"{AIRFLOW}/dags/adult_retrain/runs/{adult_run}"
    ]
    assert "loads each new champion by itself when its run ends" in out
    assert "train             success (12 s)" in out  # titanic's task progress


def test_wait_all_follows_every_run_one_after_the_other() -> None:
    client = fake_airflow("titanic", "adult", "churn")
    done, out = start(client, ["titanic", "adult", "churn"], wait_all=True)
    assert client.steps() == [
        ("trigger", "titanic_retrain"),
        ("follow", "titanic_retrain"),
        ("trigger", "adult_retrain"),
        ("follow", "adult_retrain"),
        ("trigger", "churn_retrain"),
        ("follow", "churn_retrain"),
    ]
    assert [run.state for run in done] == ["success"] * 3
    assert "in the background" not in out


def test_wait_all_fails_when_another_dataset_s_run_fails() -> None:
    client = fake_airflow("titanic", "adult")
    client.outcome["adult_retrain"] = "failed"
    done, out = start(client, ["titanic", "adult"], wait_all=True)
    assert [run.state for run in done] == ["success", "failed"]
    assert not runs.succeeded(done)
    assert "failed task(s): train" in out


def test_a_failed_default_run_starts_no_other_training() -> None:
    client = fake_airflow("titanic", "adult")
    client.outcome["titanic_retrain"] = "failed"
    done, out = start(client, ["titanic", "adult"])
    assert client.steps() == [("trigger", "titanic_retrain"), ("follow", "titanic_retrain")]
    assert not runs.succeeded(done)
    assert "the runs of adult are not started: titanic_retrain's run failed" in out


def test_one_training_at_a_time_in_the_background() -> None:
    """A third dataset is not triggered while adult's run trains; the line says how to start it later."""
    client = fake_airflow("titanic", "adult", "churn")
    done, out = start(client, ["titanic", "adult", "churn"])
    assert client.steps() == [
        ("trigger", "titanic_retrain"),
        ("follow", "titanic_retrain"),
        ("trigger", "adult_retrain"),
    ]
    assert done[2] == runs.DatasetRun("churn", None, None)
    assert "churn: not triggered yet, adult's run is in progress" in out
    assert "`lifeboat trigger --dataset churn`" in out


def test_runs_again_without_trigger_start_nothing() -> None:
    client = fake_airflow("titanic", "adult")
    client.ran("titanic_retrain", "success")
    client.ran("adult_retrain", "failed")
    done, out = start(client, ["titanic", "adult"])
    assert client.steps() == []
    assert runs.succeeded(done)  # nothing was followed
    assert "last run of titanic_retrain, earlier__titanic_retrain: success (`make run TRIGGER=1`" in out
    assert "adult: last run of adult_retrain, earlier__adult_retrain: failed" in out


def test_a_run_in_progress_is_followed_or_reported_not_triggered_again() -> None:
    client = fake_airflow("titanic", "adult")
    client.ran("titanic_retrain", "running")
    client.ran("adult_retrain", "queued")
    _, out = start(client, ["titanic", "adult"])
    assert client.steps() == [("follow", "titanic_retrain")]
    assert "following the run of titanic_retrain in progress: earlier__titanic_retrain" in out
    assert (
        f"adult: in progress adult_retrain run earlier__adult_retrain (in the background) {AIRFLOW}/" in out
    )


def test_trigger_waits_for_a_training_left_in_the_background_before_starting_another() -> None:
    """`make run TRIGGER=1` while adult's first run still trains: titanic's run starts after it."""
    client = fake_airflow("titanic", "adult")
    client.ran("titanic_retrain", "success")
    client.ran("adult_retrain", "running")
    _, out = start(client, ["titanic", "adult"], trigger=True)
    assert client.steps() == [
        ("follow", "adult_retrain"),
        ("trigger", "titanic_retrain"),
        ("follow", "titanic_retrain"),
        ("trigger", "adult_retrain"),
    ]
    assert "waiting for adult's run earlier__adult_retrain to end first (one training at a time)" in out


def test_no_trigger_only_unpauses() -> None:
    client = fake_airflow("titanic", "adult")
    done, _ = start(client, ["titanic", "adult"], no_trigger=True)
    assert client.steps() == []
    assert len([c for c in client.calls if c[0] == "unpause"]) == 4
    assert done == [runs.DatasetRun("titanic", None, None), runs.DatasetRun("adult", None, None)]


def test_a_run_id_is_quoted_in_its_url() -> None:
    url = runs.run_url(AIRFLOW + "/", "adult_retrain", "manual__2026-12-03T17:06:14+00:00")
    assert url == f"{AIRFLOW}/dags/adult_retrain/runs/manual__2026-12-03T17%3A06%3A14%2B00%3A00"


# --- the command ---


@pytest.fixture
def up_command(
    settings_env: pytest.MonkeyPatch, tmp_path: Path
) -> Callable[..., tuple[int, str, FakeAirflow]]:
    """`lifeboat up` with the services' start replaced and a fake Airflow; returns exit code, stdout, fake."""
    settings_env.setenv("LIFEBOAT_STATE_DIR", str(tmp_path / "state"))
    settings_env.delenv("LIFEBOAT_DATASET", raising=False)
    settings_env.delenv("LIFEBOAT_SERVING_DATASETS", raising=False)
    started: list[Settings] = []
    settings_env.setattr(stack, "up", lambda settings, repo, **_: started.append(settings) or {})

    def run(
        capsys: pytest.CaptureFixture[str], client: FakeAirflow, *argv: str
    ) -> tuple[int, str, FakeAirflow]:
        settings_env.setattr(stack, "airflow_client", lambda settings: client)
        code = cli.main(["up", *argv])
        assert len(started) == 1
        return code, capsys.readouterr().out, client

    return run


def curl_payloads(out: str) -> dict[str, Any]:
    """The route and JSON body of every `curl` line of the summary."""
    found = {}
    for line in out.splitlines():
        if line.strip().startswith("curl "):
            words = shlex.split(line)
            found[words[words.index("-X") + 2]] = json.loads(words[words.index("-d") + 1])
    return found


def test_up_prints_a_curl_of_each_dataset_s_example(
    up_command: Callable[..., tuple[int, str, FakeAirflow]],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    from lifeboat.stack import processes

    password = stack.load_secrets(processes.StackPaths(tmp_path / "state"))["airflow_admin_password"]
    code, out, client = up_command(capsys, fake_airflow("titanic", "adult"))
    assert code == cli.EXIT_OK
    assert ("trigger", "adult_retrain") in client.steps()
    payloads = curl_payloads(out)
    titanic = load_spec(REPO_ROOT / "data" / "titanic" / "dataset.yaml").example
    adult = load_spec(REPO_ROOT / "data" / "adult" / "dataset.yaml").example
    serving = "http://127.0.0.1:8000"
    assert payloads == {f"{serving}/predict": titanic, f"{serving}/v1/datasets/adult/predict": adult}
    assert "Airflow UI      http://127.0.0.1:8080" in out
    assert '"airflow_admin_password" in ' in out  # where the password is, never the password
    assert password not in out


def test_with_another_default_dataset_titanic_is_scored_on_its_own_route(
    up_command: Callable[..., tuple[int, str, FakeAirflow]], capsys: pytest.CaptureFixture[str]
) -> None:
    client = fake_airflow("titanic", "adult")
    code, out, _ = up_command(capsys, client, "--dataset", "adult", "--no-trigger")
    assert code == cli.EXIT_OK
    assert "DAGs unpaused: adult_retrain, adult_rollback, titanic_retrain, titanic_rollback" in out
    assert set(curl_payloads(out)) == {
        "http://127.0.0.1:8000/v1/datasets/adult/predict",
        "http://127.0.0.1:8000/v1/datasets/titanic/predict",
    }


def test_up_exits_1_when_the_default_dataset_s_run_fails(
    up_command: Callable[..., tuple[int, str, FakeAirflow]], capsys: pytest.CaptureFixture[str]
) -> None:
    client = fake_airflow("titanic", "adult")
    client.outcome["titanic_retrain"] = "failed"
    code, out, _ = up_command(capsys, client, "--wait-all")
    assert code == cli.EXIT_FAILURE
    assert ("trigger", "adult_retrain") not in client.steps()
    assert "Try a prediction" in out  # the summary is printed all the same


def test_trigger_defaults_to_the_dataset_s_retraining_dag(
    settings_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings_env.setenv("LIFEBOAT_STATE_DIR", str(tmp_path / "state"))
    client = fake_airflow("titanic", "adult")
    settings_env.setattr(stack, "airflow_client", lambda settings: client)
    assert cli.main(["trigger", "--dataset", "adult", "--no-wait"]) == cli.EXIT_OK
    assert cli.main(["trigger", "--dag", "titanic_rollback", "--no-wait"]) == cli.EXIT_OK
    assert client.steps() == [("trigger", "adult_retrain"), ("trigger", "titanic_rollback")]
    assert f"{AIRFLOW}/dags/adult_retrain/runs/" in capsys.readouterr().out


def test_status_shows_each_dataset_s_last_run(
    settings_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings_env.setenv("LIFEBOAT_STATE_DIR", str(tmp_path / "state"))
    settings_env.delenv("LIFEBOAT_DATASET", raising=False)
    client = fake_airflow("titanic", "adult")
    client.ran("titanic_retrain", "success")
    settings_env.setattr(stack, "airflow_client", lambda settings: client)
    services = {
        name: {"pid": 100 + i, "healthy": True, "url": f"http://127.0.0.1:{8000 + i}"}
        for i, name in enumerate(stack.SERVICES)
    }
    settings_env.setattr(stack, "status", lambda settings: services)
    assert cli.main(["status"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert (
        f"titanic  titanic_retrain: success  {AIRFLOW}/dags/titanic_retrain/runs/earlier__titanic_retrain"
        in out
    )
    assert "adult    adult_retrain: no run yet" in out
    assert cli.main(["status", "--dataset", "adult"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "adult_retrain: no run yet" in out
    assert "titanic_retrain" not in out
