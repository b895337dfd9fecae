"""Drift reports with Evidently: is the newest data still like the data the champion was trained on?

:func:`drift_report` compares a *current* frame (the newest labelled batch, :func:`current_from_batches`,
or the window of logged prediction requests, :func:`current_from_requests`) with the *reference* (the
sample of training rows logged with the champion) and writes three things into the reports folder:

* ``<name>.html`` - the Evidently report (self-contained: it renders with no network);
* ``<name>.json`` - the :class:`DriftSummary` (status, share of drifted columns, per-column method, score,
  threshold and verdict);
* ``index.json`` - every report of the folder, newest first (rewritten atomically under a file lock).

What is analysed is the dataset spec's ``drift`` section (:mod:`lifeboat.monitoring.drift_plan`). For
Titanic:

* numerical: Age, Fare, SibSp, Parch;
* categorical: Pclass, Sex, Embarked and the Title derived from Name (the spec's own ``regex_extract``
  step, as the model computes it);
* ``Age_missing`` and ``Fare_missing``: categorical present/missing indicators of the optional numerical
  columns. Evidently's per-column methods drop missing values, so without them a batch where a third of
  the ages are suddenly blank would look exactly like the training data;
* never: PassengerId (the id), Survived (the label is not an input), Name, Ticket and Cabin as free text.

The defaults below were calibrated on Titanic; a spec may set its own methods and thresholds.

Methods and thresholds are pinned per column type from the settings, never left to Evidently's automatic
choice (which switches from p-value tests to distances at 1000 reference rows, so the same data would
change meaning as the training data grows). The defaults are **distances**, not significance tests:

* numerical: ``wasserstein`` (Wasserstein-1 distance divided by the reference standard deviation),
  threshold 0.2: the whole distribution moved by a fifth of a standard deviation (Age ~3 years);
* categorical: ``jensenshannon`` (Jensen-Shannon distance of the category shares, natural log),
  threshold 0.075 (Sex 65 % -> 80 % male scores ~0.1).

Why distances: a p-value test (``ks``, ``chisquare``) answers "is there any difference at all?". Its power
grows with the number of rows, so on a window of 100k logged requests it flags differences too small to
matter, and a retraining policy built on it would retrain every night. A distance measures *how large* the
change is, so one threshold keeps its meaning from a 300-row batch to a million requests. Its price is
sampling noise on small batches, so the thresholds were calibrated on bootstrap batches of 300 rows drawn
from the training data itself (tests/drift/test_drift_calibration.py, 200 seeds): dataset-level false
alarms 2.5 %, all of them from Title (five categories, the noisiest column; every other column 0 %); 0 % at
1000 rows. The specs ``Age+15``, ``Fare*3``, ``SibSp+1``, ``missing=Age:0.3`` are caught in 100 % of
300-row batches, ``Sex=male:0.8`` and ``Pclass=3:0.7`` in 98-99 % (their shift lies just above the noise at
300 rows; always caught at 500). Below :attr:`Settings.drift_min_rows` (300) rows on either side the noise
would swamp the thresholds, so no verdict is given: the status is ``not_enough_data``.

Dataset drift is declared when the share of drifted columns reaches ``drift_share_threshold`` (0.1 = one of
the ten analysed columns): the per-column thresholds make a single flagged column a rare, meaningful event,
and real changes touch one or two columns (Title moves with Sex), rarely half of them.

Large frames are sampled down to ``drift_sample_rows`` rows (default 50k, drawn without replacement, seeded
with ``Settings.seed``) before analysis. Distances converge, so the sampling error is small: on 1M-row
batches the scores of 50k-row samples differ from the full data's by at most 0.02 and no verdict changed
(benchmarks/bench_drift.py), while the report takes ~3 s instead of ~14 s.
"""

from __future__ import annotations

import html
import json
import logging
import math
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lifeboat.monitoring.drift_frames import analysis_frame, sample_rows
from lifeboat.monitoring.drift_index import INDEX_FILE, update_index, write_text_atomically
from lifeboat.monitoring.drift_models import POLICIES, ColumnDrift, DriftError, DriftSummary
from lifeboat.monitoring.drift_plan import DriftPlan, DriftPlanError, plan_of
from lifeboat.settings import Settings

logger = logging.getLogger(__name__)


_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


# --- input frames --------------------------------------------------------------------------------------


# --- the report ----------------------------------------------------------------------------------------


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name) or name in (INDEX_FILE.removesuffix(".json"),):
        raise ValueError(
            f"bad report name {name!r}: use letters, digits, '.', '_' and '-' (no path separators), "
            "not starting with a dot, and not 'index'"
        )


def _where(plan: DriftPlan, column: str, kind: str) -> str:
    """Where a column's method is set, for error messages."""
    if column in plan.spec.drift.methods:
        return f"drift.methods.{column} of the {plan.dataset} spec"
    spec_key = "numeric_method" if kind == "numerical" else "categorical_method"
    if getattr(plan.spec.drift, spec_key) is not None:
        return f"drift.{spec_key} of the {plan.dataset} spec"
    return "LIFEBOAT_DRIFT_NUM_METHOD" if kind == "numerical" else "LIFEBOAT_DRIFT_CAT_METHOD"


def _check_methods(plan: DriftPlan) -> None:
    """Every column's method is a registered Evidently test for its kind (else a DriftError naming where
    the method was set)."""
    from evidently.legacy.calculations.stattests.registry import get_registered_stattest
    from evidently.legacy.core import ColumnType

    checked: set[tuple[str, str]] = set()
    for column in plan.analysed:
        kind, method = plan.kind(column), plan.method(column)
        if (kind, method) in checked:
            continue
        checked.add((kind, method))
        try:
            get_registered_stattest(
                method, ColumnType.Numerical if kind == "numerical" else ColumnType.Categorical
            )
        except ValueError as exc:
            raise DriftError(f"{_where(plan, column, kind)}={method!r} is not usable: {exc}") from exc


def _values(frame: pd.DataFrame, column: str, plan: DriftPlan) -> pd.Series:
    """The column's values as Evidently compares them: missing (and infinite) values dropped."""
    values = frame[column]
    if column in plan.numerical:
        values = values.replace([np.inf, -np.inf], np.nan)
    return values.dropna()


def _columns_without_values(
    reference: pd.DataFrame, current: pd.DataFrame, plan: DriftPlan
) -> dict[str, ColumnDrift]:
    """Columns with no value at all on one side (Evidently cannot score them): drifted unless both are."""
    out: dict[str, ColumnDrift] = {}
    for column in plan.analysed:
        ref_empty = _values(reference, column, plan).empty
        cur_empty = _values(current, column, plan).empty
        if ref_empty or cur_empty:
            out[column] = ColumnDrift(
                plan.kind(column), "no_values", None, plan.threshold(column), drifted=ref_empty != cur_empty
            )
    return out


def score_columns(
    reference: pd.DataFrame, current: pd.DataFrame, settings: Settings, plan: DriftPlan | None = None
) -> dict[str, ColumnDrift]:
    """Per-column verdicts computed with the same Evidently drift methods and thresholds, without a report.

    Takes analysis frames (:func:`analysis_frame`). About a thousand times cheaper than :func:`drift_report`
    (no widgets, no HTML), so calibration and benchmarks can score hundreds of batches; tests check that it
    gives the very scores the report gives.
    """
    from evidently.legacy.calculations.stattests.registry import get_registered_stattest
    from evidently.legacy.core import ColumnType

    plan = plan or plan_of(settings)
    _check_methods(plan)
    out = _columns_without_values(reference, current, plan)
    for column in plan.analysed:
        if column in out:
            continue
        kind = ColumnType.Numerical if column in plan.numerical else ColumnType.Categorical
        stattest = get_registered_stattest(plan.method(column), kind)
        threshold = plan.threshold(column)
        result = stattest(_values(reference, column, plan), _values(current, column, plan), kind, threshold)
        out[column] = ColumnDrift(
            plan.kind(column), plan.method(column), float(result.drift_score), threshold, bool(result.drifted)
        )
    return {c: out[c] for c in plan.analysed}


def _run_evidently(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    settings: Settings,
    plan: DriftPlan,
    columns: Sequence[str],
) -> Any:
    """Run the pinned DataDriftPreset on ``columns``; return the Evidently snapshot."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    wanted = plan.id_column
    id_column = wanted if wanted and wanted in reference.columns and wanted in current.columns else None
    keep = ([id_column] if id_column else []) + list(plan.analysed)  # all typed, only ``columns`` tested
    definition = DataDefinition(
        id_column=id_column,
        numerical_columns=list(plan.numerical),
        categorical_columns=list(plan.categorical),
    )
    preset = DataDriftPreset(
        columns=list(columns),
        drift_share=settings.drift_share_threshold,
        per_column_method={c: plan.method(c) for c in columns},
        per_column_threshold={c: plan.threshold(c) for c in columns},
    )
    report = Report([preset], include_tests=True)
    with warnings.catch_warnings():
        # pandas deprecation notices raised inside Evidently's own code: noise in every task log.
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"evidently\.")
        warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"evidently\.")
        # Evidently takes the CURRENT data first, then the reference.
        return report.run(
            Dataset.from_pandas(current[keep], data_definition=definition),
            Dataset.from_pandas(reference[keep], data_definition=definition),
        )


def _column_verdicts(snapshot: Any, columns_tested: Sequence[str], plan: DriftPlan) -> dict[str, ColumnDrift]:
    """Per-column method, score, threshold and verdict from the snapshot (the verdict is Evidently's test)."""
    result = snapshot.dict()
    scores: dict[str, tuple[str, float, float]] = {}
    for metric in result.get("metrics", []):
        config = metric.get("config", {})
        if config.get("type", "").endswith(":ValueDrift"):
            scores[config["column"]] = (
                str(config["method"]),
                float(metric["value"]),
                float(config["threshold"]),
            )
    verdicts: dict[str, bool] = {}
    for test in result.get("tests", []):
        params = test.get("metric_config", {}).get("params", {})
        if params.get("type", "").endswith(":ValueDrift"):
            raw = test.get("status", "")
            status = str(getattr(raw, "value", raw)).upper()
            if status not in ("SUCCESS", "FAIL"):
                raise DriftError(
                    f"Evidently gave no verdict on column {params.get('column')!r}: status {status}"
                )
            verdicts[params["column"]] = status == "FAIL"
    columns: dict[str, ColumnDrift] = {}
    for column in columns_tested:
        if column not in scores or column not in verdicts:
            raise DriftError(f"Evidently returned no drift result for column {column!r}")
        method, score, threshold = scores[column]
        if not math.isfinite(score):
            raise DriftError(f"Evidently returned a non-finite {method} score for column {column!r}: {score}")
        columns[column] = ColumnDrift(plan.kind(column), method, score, threshold, verdicts[column])
    return columns


def _not_enough_data_html(summary: DriftSummary, plan: DriftPlan) -> str:
    esc = html.escape
    which = []
    if summary.current_rows < summary.min_rows:
        which.append(f"the current data ({esc(summary.current_source)}) has {summary.current_rows} row(s)")
    if summary.reference_rows < summary.min_rows:
        which.append(f"the reference data has {summary.reference_rows} row(s)")
    items = "".join(f"<li><code>{esc(c)}</code></li>" for c in plan.analysed)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Drift report {esc(summary.name)}: not enough data</title>
<style>body{{font-family:sans-serif;margin:2rem;max-width:50rem}} .status{{color:#8a5a00}}</style></head>
<body>
<h1>Drift report <code>{esc(summary.name)}</code></h1>
<p class="status"><strong>Not enough data:</strong> {"; ".join(which)}; at least {summary.min_rows} rows are
needed (<code>LIFEBOAT_DRIFT_MIN_ROWS</code>) before a drift verdict means anything.</p>
<p>No drift test was run. Created {esc(summary.created_at)}.</p>
<p>Columns that will be compared once enough data has arrived:</p><ul>{items}</ul>
</body></html>
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    output_dir: Path | str,
    name: str,
    settings: Settings,
    *,
    current_source: str = "dataframe",
    created_at: datetime | None = None,
    plan: DriftPlan | None = None,
) -> DriftSummary:
    """Compare ``current`` with ``reference``; write ``<name>.html`` and ``<name>.json``, update the index.

    Both frames hold raw passenger rows (schema columns; extra columns are ignored). ``current_source`` says
    where the current rows came from (a batch path, "requests: last 5000" ...) and is recorded in the summary.
    With fewer than ``settings.drift_min_rows`` rows on either side no test is run: the status is
    ``not_enough_data`` and the HTML page says so. Re-running with the same name replaces that report.
    ``plan`` (default: :func:`~lifeboat.monitoring.drift_plan.plan_of` the settings' dataset) says which
    columns are compared and how.
    """
    _check_name(name)
    try:
        plan = plan or plan_of(settings)
    except DriftPlanError as exc:
        raise DriftError(str(exc)) from exc
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    html_path = output_dir / f"{name}.html"
    json_path = output_dir / f"{name}.json"
    moment = (
        created_at.astimezone(UTC).isoformat(timespec="microseconds") if created_at is not None else _now()
    )
    summary = DriftSummary(
        name=name,
        status="not_enough_data",
        dataset_drift=False,
        share_drifted=0.0,
        drift_share_threshold=settings.drift_share_threshold,
        drifted_columns=[],
        columns={},
        reference_rows=len(reference),
        current_rows=len(current),
        analysed_rows=0,
        min_rows=settings.drift_min_rows,
        current_source=current_source,
        created_at=moment,
        html_path=str(html_path.resolve()),
        json_path=str(json_path.resolve()),
        message="",
    )
    if len(current) < settings.drift_min_rows or len(reference) < settings.drift_min_rows:
        summary.message = (
            f"not enough data: {len(current)} current and {len(reference)} reference row(s), "
            f"at least {settings.drift_min_rows} of each are needed"
        )
        write_text_atomically(html_path, _not_enough_data_html(summary, plan))
    else:
        _check_methods(plan)
        sample = settings.drift_sample_rows
        ref = analysis_frame(sample_rows(reference, sample, settings.seed), "reference", plan)
        cur = analysis_frame(sample_rows(current, sample, settings.seed), "current", plan)
        summary.analysed_rows = len(cur)
        summary.sampled = len(cur) < len(current) or len(ref) < len(reference)
        empty = _columns_without_values(ref, cur, plan)
        tested = [c for c in plan.analysed if c not in empty]
        snapshot = _run_evidently(ref, cur, settings, plan, tested)
        found = {**_column_verdicts(snapshot, tested, plan), **empty}
        columns = {c: found[c] for c in plan.analysed}
        drifted = [c for c, v in columns.items() if v.drifted]
        share = len(drifted) / len(columns)
        summary.columns = columns
        summary.drifted_columns = drifted
        summary.share_drifted = share
        summary.dataset_drift = share >= settings.drift_share_threshold
        summary.status = "drift" if summary.dataset_drift else "no_drift"
        summary.message = (
            f"{summary.status.replace('_', ' ')}: {len(drifted)} of {len(columns)} columns drifted"
            + (f" ({', '.join(drifted)})" if drifted else "")
            + f"; dataset drift from a share of {settings.drift_share_threshold:g}"
        )
        # save_html writes nothing for a pathlib.Path (docs/stack-notes.md): give it a str, into a temp file.
        tmp_html = output_dir / f".{name}.html.tmp"
        snapshot.save_html(str(tmp_html))
        if not tmp_html.is_file() or tmp_html.stat().st_size == 0:
            tmp_html.unlink(missing_ok=True)
            raise DriftError(f"Evidently wrote no HTML report to {tmp_html}")
        os.replace(tmp_html, html_path)
    write_text_atomically(json_path, json.dumps(summary.to_dict(), indent=2) + "\n")
    update_index(output_dir, summary)
    logger.info("drift report %s: %s (html %s)", name, summary.message, html_path)
    return summary


def log_to_mlflow(
    summary: DriftSummary, paths: Iterable[Path | str] | None = None, artifact_path: str = "drift"
) -> list[str]:
    """Log the report files (default: the summary's HTML and JSON) as artifacts of the active MLflow run.

    Does nothing when no run is active; returns the artifact paths logged (relative to the run's root).
    """
    import mlflow

    if mlflow.active_run() is None:
        logger.info("no active MLflow run: drift report %s not logged", summary.name)
        return []
    files = [Path(p) for p in (paths if paths is not None else (summary.html_path, summary.json_path))]
    logged = []
    for path in files:
        if not path.is_file():
            raise FileNotFoundError(f"drift report file not found: {path}")
        mlflow.log_artifact(str(path), artifact_path=artifact_path)
        logged.append(f"{artifact_path}/{path.name}")
    return logged


def should_retrain(
    summary: DriftSummary | Mapping[str, Any] | None, has_new_data: bool, policy: str
) -> tuple[bool, str]:
    """Decide whether this run retrains, and say why (the DAG records the reason).

    * ``always``: retrain on every run, whatever the data;
    * ``report_only``: drift is reported, never acted on; retrain when there is new labelled data;
    * ``retrain_on_drift``: retrain only when the drift report found dataset drift AND there is new labelled
      data to learn the new distribution from (drift alone cannot be fixed by refitting the same rows).
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown retraining policy {policy!r}; expected one of: {', '.join(POLICIES)}")
    if policy == "always":
        return True, "policy 'always': retrain on every run"
    if policy == "report_only":
        if has_new_data:
            return (
                True,
                "policy 'report_only': new labelled data is available (drift is reported, not acted on)",
            )
        return False, "policy 'report_only': no new labelled data (drift is reported, not acted on)"
    if summary is None:
        return False, "policy 'retrain_on_drift': no drift report was produced"
    data = summary.to_dict() if isinstance(summary, DriftSummary) else dict(summary)
    status = data.get("status")
    drifted = ", ".join(data.get("drifted_columns") or []) or "none"
    if status == "not_enough_data":
        return (
            False,
            f"policy 'retrain_on_drift': not enough data for a drift verdict ({data.get('message', '')})",
        )
    if not data.get("dataset_drift"):
        return False, (
            f"policy 'retrain_on_drift': no dataset drift (share {float(data.get('share_drifted', 0)):.2f};"
            f" drifted columns: {drifted})"
        )
    if not has_new_data:
        return False, (
            f"policy 'retrain_on_drift': drift detected ({drifted}) but there is no new labelled data "
            "to retrain on - label a batch of recent passengers"
        )
    return True, f"policy 'retrain_on_drift': drift detected ({drifted}) and new labelled data is available"
