"""The DAG files import cleanly and cheaply and wire the tasks, schedule and settings of the design."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from lifeboat.stack import embedded as stack
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

DAGS_DIR = REPO_ROOT / "dags"
#: Modules a DAG file must not import at parse time (the DAG processor parses every file every few seconds).
HEAVY_MODULES = ("pyspark", "mlflow", "pandas", "evidently", "sklearn", "onnxruntime", "dvc", "numpy")


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Airflow's own DagBag over dags/ (an empty AIRFLOW_HOME: parsing needs no metadata database)."""
    home = tmp_path_factory.mktemp("airflow-home")
    saved = dict(os.environ)
    os.environ.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    try:
        from airflow.dag_processing.dagbag import DagBag

        yield DagBag(dag_folder=str(DAGS_DIR))
    finally:
        os.environ.clear()
        os.environ.update(saved)


#: The datasets shipped in the repository (a folder with a spec each).
BUNDLED = sorted(p.parent.name for p in (REPO_ROOT / "data").glob("*/dataset.yaml"))


def test_dag_files_import_without_errors(dagbag: Any) -> None:
    assert {"titanic", "adult"} <= set(BUNDLED)
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {f"{d}_{kind}" for d in BUNDLED for kind in ("retrain", "rollback")}
    # the ids `lifeboat up` unpauses and triggers are those the DAG file builds
    assert set(dagbag.dag_ids) == {
        name(d) for d in BUNDLED for name in (stack.retrain_dag, stack.rollback_dag)
    }


@pytest.mark.parametrize("dataset", BUNDLED)
def test_every_dataset_gets_the_same_retrain_graph_on_its_own_data(dagbag: Any, dataset: str) -> None:
    titanic = dagbag.dags["titanic_retrain"]
    dag = dagbag.dags[f"{dataset}_retrain"]
    assert {t.task_id: set(t.downstream_task_ids) for t in dag.tasks} == {
        t.task_id: set(t.downstream_task_ids) for t in titanic.tasks
    }
    assert dataset in dag.tags
    for task_id in ("preprocess", "train"):
        assert dag.get_task(task_id).env_vars["LIFEBOAT_DATASET"] == dataset
    assert [t.task_id for t in dagbag.dags[f"{dataset}_rollback"].topological_sort()] == [
        "rollback",
        "reload_serving",
    ]


def test_the_schedule_comes_from_the_spec_unless_the_setting_is_set(dagbag: Any) -> None:
    import yaml

    for dataset in BUNDLED:
        spec = yaml.safe_load((REPO_ROOT / "data" / dataset / "dataset.yaml").read_text())
        assert dagbag.dags[f"{dataset}_retrain"].timetable.timetable.expression == spec["schedule"]
    assert (
        dagbag.dags["adult_retrain"].timetable.timetable.expression
        != dagbag.dags["titanic_retrain"].timetable.timetable.expression
    )


def test_a_spec_that_cannot_be_read_gets_a_dag_that_fails_with_the_reason(tmp_path: Path) -> None:
    from lifeboat.orchestration.dags import InvalidSpecError, dataset_dags

    for name, text in {"good": "name: good\nschedule: '0 5 * * *'\n", "broken": "name: [unclosed\n"}.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "dataset.yaml").write_text(text)
    (tmp_path / "Not-A-Name").mkdir()
    (tmp_path / "Not-A-Name" / "dataset.yaml").write_text("name: x\n")
    (tmp_path / "renamed").mkdir()
    (tmp_path / "renamed" / "dataset.yaml").write_text("name: other\n")
    dags = dataset_dags(tmp_path)
    assert set(dags) == {"good_retrain", "good_rollback", "broken_retrain", "renamed_retrain"}
    assert dags["good_retrain"].timetable.timetable.expression == "0 5 * * *"
    broken = dags["broken_retrain"]
    assert [t.task_id for t in broken.tasks] == ["invalid_spec"]
    assert type(broken.timetable).__name__ == "NullTimetable"
    with pytest.raises(InvalidSpecError, match=r"broken/dataset.yaml: cannot be read as YAML"):
        broken.get_task("invalid_spec").python_callable()
    with pytest.raises(InvalidSpecError, match=r"name: must be the folder's name 'renamed', got 'other'"):
        dags["renamed_retrain"].get_task("invalid_spec").python_callable()


def test_retrain_task_graph(dagbag: Any) -> None:
    dag = dagbag.dags["titanic_retrain"]
    downstream = {t.task_id: set(t.downstream_task_ids) for t in dag.tasks}
    assert downstream == {
        "pull_data": {"validate_data", "drift_report", "monitor_performance", "decide_training"},
        "validate_data": {"drift_report", "monitor_performance"},
        "drift_report": {"decide_training"},
        "monitor_performance": {"decide_training"},
        "decide_training": {"plan_spark_jobs"},
        "plan_spark_jobs": {"preprocess", "train"},
        "preprocess": {"train"},
        "train": {"evaluate_gate"},
        "evaluate_gate": {"promotion_branch", "promote"},  # promote checks the run's file against its XCom
        "promotion_branch": {"promote", "no_promotion"},
        "promote": {"reload_serving"},
        "no_promotion": set(),
        "reload_serving": set(),
    }
    kinds = {t.task_id: type(t).__name__ for t in dag.tasks}
    assert kinds["preprocess"] == kinds["train"] == "SparkSubmitOperator"
    assert kinds["promotion_branch"] == "_BranchPythonDecoratedOperator"
    assert kinds["decide_training"] == "_ShortCircuitDecoratedOperator"


def test_spark_jobs_use_the_spark_default_connection_and_the_jobs_folder(dagbag: Any) -> None:
    dag = dagbag.dags["titanic_retrain"]
    for task_id, script in (("preprocess", "preprocess.py"), ("train", "train.py")):
        task = dag.get_task(task_id)
        assert task._conn_id == "spark_default"
        assert Path(task.application) == REPO_ROOT / "jobs" / script
        assert Path(task.application).is_file()
        assert task.execution_timeout == timedelta(minutes=90)


def test_retrain_schedule_and_run_settings(dagbag: Any) -> None:
    from lifeboat.settings import Settings

    defaults = Settings()
    dag = dagbag.dags["titanic_retrain"]
    assert (
        dag.timetable.timetable.expression == "0 2 * * *" == defaults.retrain_schedule
    )  # also Titanic's spec
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert dag.doc_md
    assert "reload_serving" in dag.doc_md
    for task in dag.tasks:
        assert task.retries == defaults.task_retries >= 1
        assert task.retry_delay == timedelta(seconds=defaults.task_retry_delay_seconds)
        assert task.execution_timeout is not None
        assert task.on_failure_callback, task.task_id


def test_retrain_params_form(dagbag: Any) -> None:
    params = dagbag.dags["titanic_retrain"].params
    assert set(params.keys()) == {"families", "required_improvement", "dry_run", "retrain_without_changes"}
    assert params["families"] == ["lr", "rf", "gbt"]
    assert params["dry_run"] is False
    assert params["retrain_without_changes"] is False
    assert params["required_improvement"] == pytest.approx(0.005)
    families = params.get_param("families")
    assert families.schema["items"]["enum"] == ["lr", "rf", "gbt"]
    with pytest.raises(Exception, match="is not one of"):
        families.resolve(["xgboost"])
    with pytest.raises(Exception, match="maximum"):
        params.get_param("required_improvement").resolve(5)


@pytest.mark.parametrize("dataset", BUNDLED)
def test_promote_and_rollback_share_one_pool_per_dataset_and_nothing_else_uses_it(
    dagbag: Any, dataset: str
) -> None:
    pool = f"lifeboat_{dataset}_registry"
    in_pool = {
        (dag_id, task.task_id)
        for dag_id, dag in dagbag.dags.items()
        for task in dag.tasks
        if task.pool == pool
    }
    assert in_pool == {(f"{dataset}_retrain", "promote"), (f"{dataset}_rollback", "rollback")}
    assert dagbag.dags[f"{dataset}_retrain"].get_task("train").pool == "default_pool"


@pytest.mark.parametrize("dataset", BUNDLED)
def test_a_new_batch_or_the_schedule_starts_a_run_and_a_promotion_is_an_asset_event(
    dagbag: Any, dataset: str
) -> None:
    dag = dagbag.dags[f"{dataset}_retrain"]
    assert type(dag.timetable).__name__ == "AssetOrTimeSchedule"
    assert type(dag.timetable.timetable).__name__ == "CronTriggerTimetable"
    incoming = dag.timetable.asset_condition
    assert (incoming.name, incoming.uri) == (f"{dataset}_incoming", f"x-lifeboat://{dataset}/incoming")
    outlets = {t.task_id: [(a.name, a.uri) for a in t.outlets] for t in dag.tasks if t.outlets}
    assert outlets == {"promote": [(f"{dataset}_champion", f"x-lifeboat://{dataset}/champion")]}


def test_rollback_dag_is_manual_and_needs_a_reason(dagbag: Any) -> None:
    dag = dagbag.dags["titanic_rollback"]
    assert type(dag.timetable).__name__ == "NullTimetable"
    assert [t.task_id for t in dag.topological_sort()] == ["rollback", "reload_serving"]
    assert dag.get_task("rollback").retries == 0
    reason = dag.params.get_param("reason")
    with pytest.raises(Exception, match=r"reason|None|type"):
        reason.resolve(None)
    assert reason.resolve("bad model") == "bad model"


def test_settings_drive_the_schedule(tmp_path: Path) -> None:
    """A different cron in LIFEBOAT_RETRAIN_SCHEDULE reaches the parsed DAG (one settings object)."""
    code = (
        "from airflow.dag_processing.dagbag import DagBag;"
        f"b = DagBag(dag_folder={str(DAGS_DIR)!r});"
        "print(b.dags['titanic_retrain'].timetable.timetable.expression,"
        " b.dags['adult_retrain'].timetable.timetable.expression)"
    )
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "LIFEBOAT_RETRAIN_SCHEDULE": "30 4 * * 1",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "30 4 * * 1 30 4 * * 1"


@pytest.mark.parametrize("path", sorted(DAGS_DIR.glob("*.py")), ids=lambda p: p.name)
def test_dag_files_do_not_import_heavy_modules_at_parse_time(path: Path, tmp_path: Path) -> None:
    """Parse a DAG file in a fresh interpreter and list the modules it pulled in: none of the heavy ones.

    This is the deterministic form of "parsing takes < 2 s": the parse time itself is measured by
    `make bench` (benchmarks/bench_dag.py), never asserted in a test.
    """
    code = (
        "import runpy, sys;"
        f"runpy.run_path({str(path)!r});"
        f"print('heavy=' + ','.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))"
    )
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "heavy="


@pytest.mark.parametrize("path", sorted(DAGS_DIR.glob("*.py")), ids=lambda p: p.name)
def test_dag_files_are_wiring_only(path: Path) -> None:
    """Top level of a DAG file: imports, constants, the @dag function and its call; no other logic."""
    tree = ast.parse(path.read_text())
    allowed = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.Assign, ast.Expr)
    for node in tree.body:
        assert isinstance(node, allowed), f"{path.name}:{node.lineno}: {type(node).__name__} at top level"
    top_functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert path.stem in top_functions
