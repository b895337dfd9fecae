"""One retraining run without Airflow: preprocess -> train -> gate -> promote, each step a function.

The Airflow DAG runs the same Spark applications with the same arguments (:func:`preprocess_args`,
:func:`train_args`) through SparkSubmitOperator; the CLI (`lifeboat preprocess/train/promote`) and
`make train` call :func:`spark_submit` instead. Each run writes under ``<state_dir>/runs/<run_id>/``::

    preprocess/   features + holdout_raw + train_raw parquet, feature_spec.json, summary.json
    train/        train_summary.json (run id, registered version, metrics, parity)
    gate.json     the promotion decision and every number behind it
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from lifeboat.orchestration.results import GateRecord
from lifeboat.settings import Settings
from lifeboat.training.summary import SUMMARY_NAME, TrainSummary, TrainSummaryError, read_train_summary

logger = logging.getLogger(__name__)


class PipelineError(RuntimeError):
    """A step of the retraining run failed; the message says which step and why."""


class JobDataError(PipelineError):
    """A Spark job refused its input data (exit code 2): the message carries the job's explanation."""


#: Exit code of the jobs for "the input data is invalid" (see jobs/preprocess.py and jobs/train.py).
EXIT_BAD_DATA = 2
#: How many lines of a failed job's report are kept in the exception message.
REPORT_LINES = 40


def failure_marker(job: str) -> str:
    """First line of a job's failure report; :func:`spark_submit` picks the report out of the output by it."""
    return f"{job} failed:"


def report_failure(job: str, title: str, problems: list[str]) -> None:
    """Print a job's failure report on stderr: the marker line, then one indented line per problem."""
    print(f"{failure_marker(job)} {title}", file=sys.stderr)
    for line in problems:
        print(f"  {line}", file=sys.stderr)


def jobs_dir() -> Path:
    """The folder holding the spark-submit applications (``jobs/`` beside the installed package)."""
    import lifeboat

    return Path(lifeboat.__file__).resolve().parents[1] / "jobs"


def new_run_id(prefix: str = "manual") -> str:
    """A sortable, unique id for a run started outside Airflow."""
    return f"{prefix}__{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}"


def run_dir(settings: Settings, run_id: str) -> Path:
    """The folder of one run's outputs."""
    return settings.runs_dir / run_id


def preprocess_args(settings: Settings, output: Path) -> list[str]:
    """Arguments of jobs/preprocess.py for a run writing to ``output``."""
    return [
        "--spec",
        str(Path(settings.dataset_spec).resolve()),
        "--raw",
        str(Path(settings.raw_data).resolve()),
        "--incoming",
        str(Path(settings.incoming_dir).resolve()),
        "--output",
        str(output.resolve()),
        "--holdout-percent",
        str(settings.holdout_percent),
        "--salt",
        str(settings.seed),
    ]


def train_args(
    settings: Settings, preprocess_output: Path, output: Path, families: list[str] | None = None
) -> list[str]:
    """Arguments of jobs/train.py reading ``preprocess_output`` and writing its summary to ``output``."""
    return [
        "--input",
        str(preprocess_output.resolve()),
        "--output",
        str(output.resolve()),
        "--families",
        ",".join(families or settings.model_families),
        "--cv-folds",
        str(settings.cv_folds),
        "--cv-sample-rows",
        str(settings.cv_sample_rows),
        "--seed",
        str(settings.seed),
        "--model-name",
        settings.model_name,
        "--experiment",
        settings.experiment_name,
        "--parity-tolerance",
        repr(settings.parity_tolerance),
    ]


def spark_submit_executable() -> str:
    """``spark-submit`` from this environment (the pyspark wheel ships it next to the Python executable)."""
    beside = Path(sys.executable).parent / "spark-submit"
    if beside.exists():
        return str(beside)
    found = shutil.which("spark-submit")
    if not found:
        raise PipelineError("spark-submit not found: install pyspark into this environment")
    return found


def spark_submit(application: str, args: list[str], settings: Settings) -> None:
    """Run a lifeboat Spark application with spark-submit on ``settings.spark_master``; raise on failure."""
    command = [
        spark_submit_executable(),
        "--master",
        settings.spark_master,
        "--driver-memory",
        settings.spark_driver_memory,
        "--conf",
        "spark.ui.showConsoleProgress=false",
        str(jobs_dir() / application),
        *args,
    ]
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # local runs stay on loopback
    env.setdefault("MLFLOW_TRACKING_URI", settings.tracking_uri)
    logger.info("spark-submit %s", " ".join(command[1:]))
    returncode, report = _run_streaming(command, env, marker=failure_marker(Path(application).stem))
    if returncode == 0:
        return
    detail = "\n".join(report) if report else "(see its output above)"
    message = f"{application} failed with exit code {returncode}:\n{detail}"
    if returncode == EXIT_BAD_DATA:
        raise JobDataError(message)
    raise PipelineError(message)


def _run_streaming(command: list[str], env: dict[str, str], marker: str) -> tuple[int, list[str]]:
    """Run ``command``, echoing its output live; return its exit code and the report that follows ``marker``.

    spark-submit runs the Python driver under the JVM, which merges the driver's stderr into its stdout,
    so the job's own error report is picked out of the combined stream by its first line.
    """
    report: list[str] = []
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            if line.startswith(marker) or (report and line.startswith("  ") and len(report) < REPORT_LINES):
                report.append(line.rstrip("\n"))
        returncode = process.wait()
    sys.stdout.flush()
    return returncode, report


def preprocess(settings: Settings, run_id: str) -> Path:
    """Run jobs/preprocess.py for ``run_id``; return its output folder."""
    output = run_dir(settings, run_id) / "preprocess"
    output.parent.mkdir(parents=True, exist_ok=True)
    spark_submit("preprocess.py", preprocess_args(settings, output), settings)
    return output


def train(settings: Settings, run_id: str, families: list[str] | None = None) -> TrainSummary:
    """Run jobs/train.py on the run's preprocess output; return the training summary."""
    base = run_dir(settings, run_id)
    output = base / "train"
    spark_submit("train.py", train_args(settings, base / "preprocess", output, families), settings)
    return _train_summary(output / SUMMARY_NAME)


def _train_summary(path: Path) -> TrainSummary:
    try:
        return read_train_summary(path)
    except TrainSummaryError as exc:
        raise PipelineError(str(exc)) from exc


def read_gate(path: Path) -> GateRecord:
    """The gate decision recorded in ``path`` (:class:`PipelineError` naming the file when it is not one)."""
    try:
        return GateRecord.model_validate_json(path.read_text())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise PipelineError(f"{path} is not a gate decision: {where}: {first['msg']}") from exc


def gate_path(settings: Settings, run_id: str) -> Path:
    """The run's recorded gate decision (``gate.json``)."""
    return run_dir(settings, run_id) / "gate.json"


#: The version tag that marks a gate decision made in a dry run (such a challenger is never promoted).
DRY_RUN_TAG = "gate.dry_run"


def evaluate_run(settings: Settings, run_id: str, dry_run: bool = False) -> GateRecord:
    """Score the run's challenger and the champion on the run's holdout and record the decision.

    Never moves an alias. Writes ``gate.json`` in the run folder (``promoted`` false) and returns its content;
    the decision is also recorded as ``gate.*`` tags on the challenger version.
    """
    import pandas as pd

    from lifeboat.registry import promotion
    from lifeboat.registry import store as registry

    registry.configure_mlflow(settings)
    base = run_dir(settings, run_id)
    summary_path = base / "train" / SUMMARY_NAME
    if not summary_path.is_file():
        raise PipelineError(f"run {run_id} has no training summary ({summary_path}): did the train step run?")
    summary = _train_summary(summary_path)
    if summary.version is None:
        raise PipelineError(f"run {run_id} registered no model version ({summary_path}): nothing to gate")
    version = summary.version
    holdout = pd.read_parquet(base / "preprocess" / "holdout_raw")
    decision = promotion.evaluate_gate(settings.model_name, version, holdout, settings)
    registry.set_version_tags(settings.model_name, str(version), {DRY_RUN_TAG: str(dry_run).lower()})
    result = GateRecord(
        run_id=run_id,
        model_name=settings.model_name,
        version=version,
        passed=decision.passed,
        dry_run=dry_run,
        champion_version=decision.champion_version,
        reasons=list(decision.reasons),
        tags=decision.to_tags(),
    )
    _write_json(gate_path(settings, run_id), result)
    logger.info("gate for %s version %s: %s", settings.model_name, version, decision.summary())
    return result


def promote_run(settings: Settings, run_id: str, version: str | None = None) -> GateRecord:
    """Promote the run's challenger on the strength of the gate decision the registry recorded for it.

    ``gate.json`` only says which version the run's gate judged (and must name the dataset's own model, and
    ``version`` when the caller knows it, as the DAG does from the gate task's XCom). Whether that version
    passed, whether it was a dry run and which champion it was compared with are read from its ``gate.*``
    tags in the registry: a file of the shared state folder is not trusted to promote anything.

    Refuses (:class:`PipelineError`) a rejected or dry-run decision, or a file that disagrees; raises the
    registry's ``StaleDecisionError`` when the champion changed since the decision. Idempotent: promoting the
    version that already is the champion changes nothing. Updates ``gate.json`` (``promoted``,
    ``demoted_version``).
    """
    from lifeboat.registry import promotion
    from lifeboat.registry import store as registry
    from lifeboat.registry.gate import DECISION_PROMOTE

    path = gate_path(settings, run_id)
    if not path.is_file():
        raise PipelineError(f"run {run_id} has no gate decision ({path}): run the gate first")
    result = read_gate(path)
    if result.model_name != settings.model_name:
        raise PipelineError(
            f"run {run_id}: {path} names model {result.model_name!r}, but this dataset's model is "
            f"{settings.model_name!r}: refusing to promote (was the file changed?)"
        )
    if version is not None and str(version) != str(result.version):
        raise PipelineError(
            f"run {run_id}: {path} names version {result.version}, but the run's gate judged version "
            f"{version}: refusing to promote (was the file changed?)"
        )
    if result.dry_run:
        raise PipelineError(f"run {run_id} is a dry run: its challenger is never promoted")
    if not result.passed:
        raise PipelineError(
            f"run {run_id}: version {result.version} was rejected by the gate: " + "; ".join(result.reasons)
        )
    # The file says "passed": only the registry's own record of the decision can confirm it.
    registry.configure_mlflow(settings)
    tags = registry.version_tags(settings.model_name, str(result.version))
    if tags.get(DRY_RUN_TAG) == "true":
        raise PipelineError(
            f"run {run_id}: the registry records a dry-run gate decision for {settings.model_name} version "
            f"{result.version}, which is never promoted (but {path} says otherwise: was it changed?)"
        )
    decision = tags.get("gate.decision")
    if decision != DECISION_PROMOTE:
        recorded = "no gate decision" if decision is None else f"the gate decision {decision!r}"
        raise PipelineError(
            f"run {run_id}: the registry records {recorded} for {settings.model_name} version "
            f"{result.version}, but {path} says it passed: refusing to promote (was the file changed?)"
        )
    compared_with = tags.get("gate.champion_version")
    demoted = promotion.promote_recorded(
        settings.model_name, result.version, None if compared_with in (None, "none") else compared_with
    )
    result = result.model_copy(update={"promoted": True, "demoted_version": demoted})
    _write_json(path, result)
    return result


def gate_and_promote(settings: Settings, run_id: str, dry_run: bool = False) -> GateRecord:
    """Evaluate the gate (:func:`evaluate_run`) and promote when it passed and this is not a dry run.

    Writes ``gate.json`` in the run folder and returns its content.
    """
    result = evaluate_run(settings, run_id, dry_run=dry_run)
    if result.passed and not dry_run:
        result = promote_run(settings, run_id)
    return result


def _write_json(path: Path, content: GateRecord) -> None:
    """Write ``content`` to ``path`` atomically (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(content.model_dump(mode="json"), indent=2, sort_keys=True))
    os.replace(tmp, path)
