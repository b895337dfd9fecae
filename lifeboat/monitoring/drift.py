"""Drift reports with Evidently: is the newest data still like the data the champion was trained on?

:func:`drift_report` compares a *current* frame (the newest labelled batch, :func:`current_from_batches`,
or the window of logged prediction requests, :func:`current_from_requests`) with the *reference* (the
sample of training rows logged with the champion) and writes three things into the reports folder:

* ``<name>.html`` - the Evidently report (self-contained: it renders with no network);
* ``<name>.json`` - the :class:`DriftSummary` (status, share of drifted columns, per-column method, score,
  threshold and verdict);
* ``index.json`` - every report of the folder, newest first (rewritten atomically under a file lock).

What is analysed (one definition, :data:`NUMERICAL_COLUMNS` and :data:`CATEGORICAL_COLUMNS`):

* numerical: Age, Fare, SibSp, Parch;
* categorical: Pclass, Sex, Embarked and the Title derived from Name
  (:func:`lifeboat.dataset.features.derive_titles`, the model's own definition);
* ``Age_missing`` and ``Fare_missing``: categorical present/missing indicators of the optional numerical
  columns. Evidently's per-column methods drop missing values, so without them a batch where a third of
  the ages are suddenly blank would look exactly like the training data;
* never: PassengerId (the id), Survived (the label is not an input), Name, Ticket and Cabin as free text.

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

import fcntl
import html
import json
import logging
import math
import os
import re
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd

from lifeboat.dataset.features import CATEGORY_COLUMNS, RANGE_COLUMNS, derive_titles
from lifeboat.dataset.schema import BY_NAME, ID_COLUMN
from lifeboat.settings import Settings

logger = logging.getLogger(__name__)

TITLE_COLUMN = "Title"
#: Raw numerical columns analysed for drift (the ones whose training range the model ships).
NUMERICAL_COLUMNS: tuple[str, ...] = RANGE_COLUMNS
#: Raw categorical columns analysed for drift (the model's vocabulary columns; Title is derived).
RAW_CATEGORICAL_COLUMNS: tuple[str, ...] = tuple(c for c in CATEGORY_COLUMNS if c != TITLE_COLUMN)
MISSING_SUFFIX = "_missing"
#: Numerical columns that may be blank: each gets a present/missing indicator column.
MISSING_INDICATOR_SOURCES: tuple[str, ...] = tuple(c for c in NUMERICAL_COLUMNS if not BY_NAME[c].required)
MISSING_INDICATOR_COLUMNS: tuple[str, ...] = tuple(f"{c}{MISSING_SUFFIX}" for c in MISSING_INDICATOR_SOURCES)
CATEGORICAL_COLUMNS: tuple[str, ...] = (*RAW_CATEGORICAL_COLUMNS, TITLE_COLUMN, *MISSING_INDICATOR_COLUMNS)
#: Every analysed column, in report order.
ANALYSED_COLUMNS: tuple[str, ...] = (*NUMERICAL_COLUMNS, *CATEGORICAL_COLUMNS)
#: Raw columns the analysis needs (required ones must exist; optional ones may be absent = all missing).
NEEDED_RAW_COLUMNS: tuple[str, ...] = (*NUMERICAL_COLUMNS, *RAW_CATEGORICAL_COLUMNS)

INDEX_FILE = "index.json"
_LOCK_FILE = ".index.lock"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_MISSING, _PRESENT = "missing", "present"

Status = Literal["drift", "no_drift", "not_enough_data"]
Policy = Literal["retrain_on_drift", "report_only", "always"]
POLICIES: tuple[str, ...] = get_args(Policy)


class DriftError(RuntimeError):
    """A drift report could not be produced (bad input frame, bad settings, Evidently gave no verdict)."""


@dataclass(frozen=True)
class ColumnDrift:
    """The verdict on one column: method, its score, the threshold it was compared with, drifted or not.

    ``method`` is ``"no_values"`` (and ``score`` None) when one side has no value at all in the column: no
    distribution can be compared, and the column counts as drifted unless both sides are empty.
    """

    kind: Literal["numerical", "categorical"]
    method: str
    score: float | None
    threshold: float
    drifted: bool


@dataclass
class DriftSummary:
    """The outcome of one drift report (the ``<name>.json`` file; small enough for XCom as a dict)."""

    name: str
    status: Status
    dataset_drift: bool
    share_drifted: float
    drift_share_threshold: float
    drifted_columns: list[str]
    columns: dict[str, ColumnDrift]
    reference_rows: int
    current_rows: int
    analysed_rows: int
    min_rows: int
    current_source: str
    created_at: str
    html_path: str
    json_path: str
    message: str
    sampled: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: plain types only, columns as {col: {kind, method, score, threshold, drifted}}."""
        data = asdict(self)
        data["columns"] = {name: asdict(col) for name, col in self.columns.items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftSummary:
        """Rebuild a summary from :meth:`to_dict` output (for example read back from ``<name>.json``)."""
        values = dict(data)
        values["columns"] = {k: ColumnDrift(**v) for k, v in dict(values.get("columns", {})).items()}
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in values.items() if k in names})


# --- input frames --------------------------------------------------------------------------------------


def current_from_batches(paths: Sequence[Path | str]) -> pd.DataFrame:
    """The passengers of one or more batch CSV files, concatenated in the given order."""
    if not paths:
        raise ValueError("no batch files given: cannot build the current data for a drift report")
    frames = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"batch file not found: {path}")
        frames.append(pd.read_csv(path))
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def current_from_requests(
    log_path: Path | str, last_n: int | None = None, since: datetime | str | None = None
) -> pd.DataFrame:
    """The window of logged prediction requests (raw columns plus probability, prediction, model_version ...).

    ``last_n`` keeps the newest rows, ``since`` the rows logged at or after a moment (see
    :func:`lifeboat.monitoring.prediction_log.read_window`). A missing log gives an empty frame (->
    ``not_enough_data``).
    """
    from lifeboat.monitoring.prediction_log import (
        read_window,  # imported lazily: the serving side owns that module
    )

    return read_window(log_path, last_n=last_n, since=since)


def _numeric(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame.columns:
        return pd.Series(np.nan, index=frame.index, dtype="float64")
    values = frame[column]
    try:
        if pd.api.types.is_numeric_dtype(values):
            return values.astype("float64")
        stripped = values.astype("string").str.strip().replace("", pd.NA)
        return pd.to_numeric(stripped, errors="raise").astype("float64")
    except (TypeError, ValueError) as exc:
        raise DriftError(f"column {column!r} must be numeric: {exc}") from exc


def _strings(values: pd.Series) -> pd.Series:
    """Stripped strings (object dtype, NaN where missing or empty), stripping each distinct value once."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    cleaned = np.array([_clean_text(u) for u in uniques] + [np.nan], dtype=object)
    return pd.Series(cleaned[codes], index=values.index, dtype="object")


def _clean_text(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return np.nan
    text = str(value).strip()
    return text if text else np.nan


def _category(frame: pd.DataFrame, column: str) -> pd.Series:
    """A categorical column as object strings (NaN where missing); ``3``, ``3.0`` and ``"3"`` give ``"3"``."""
    if column not in frame.columns:
        return pd.Series(np.nan, index=frame.index, dtype="object")
    values = frame[column]
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.astype("float64")
        if (numbers.dropna() % 1 == 0).all():
            return _strings(numbers.astype("Int64"))
        return _strings(numbers)
    return _strings(values)


def _titles(frame: pd.DataFrame, sex: pd.Series, age: pd.Series) -> pd.Series:
    """Title of every row, derived once per distinct (Name, Sex, Age) so resampled data stays cheap."""
    if len(frame) == 0:
        return pd.Series([], index=frame.index, dtype="object")
    names = frame["Name"] if "Name" in frame.columns else pd.Series(np.nan, index=frame.index, dtype="object")
    key = np.zeros(len(frame), dtype=np.int64)
    for part in (names, sex, age):
        codes, uniques = pd.factorize(part, use_na_sentinel=True)
        key, _ = pd.factorize(key * (len(uniques) + 1) + (codes + 1))  # stays below len(frame): no overflow
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    titles = derive_titles(
        {
            "Name": names.iloc[first].tolist(),
            "Sex": sex.iloc[first].tolist(),
            "Age": age.iloc[first].to_numpy(dtype=np.float64),
        }
    )
    return pd.Series(np.asarray(titles, dtype=object)[inverse], index=frame.index, dtype="object")


def analysis_frame(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    """The columns the drift report analyses, typed for Evidently, from raw passenger rows.

    ``what`` ("reference" or "current") names the frame in error messages. Extra columns (label, prediction
    metadata, Name/Ticket/Cabin) are left out; PassengerId is kept when complete, as the id column.
    """
    absent = [c for c in NEEDED_RAW_COLUMNS if BY_NAME[c].required and c not in frame.columns]
    if absent and len(frame) > 0:
        raise DriftError(f"the {what} data lacks required column(s): {', '.join(absent)}")
    out = pd.DataFrame(index=frame.index)
    if ID_COLUMN in frame.columns and frame[ID_COLUMN].notna().all():
        out[ID_COLUMN] = frame[ID_COLUMN].astype("int64")
    for column in NUMERICAL_COLUMNS:
        out[column] = _numeric(frame, column)
    for column in RAW_CATEGORICAL_COLUMNS:
        out[column] = _category(frame, column)
    out[TITLE_COLUMN] = _titles(frame, out["Sex"], out["Age"])
    for source, indicator in zip(MISSING_INDICATOR_SOURCES, MISSING_INDICATOR_COLUMNS, strict=True):
        out[indicator] = np.where(out[source].isna(), _MISSING, _PRESENT).astype(object)
    # pandas categoricals give Evidently the same scores as object strings, ~2.5x faster on large frames.
    for column in CATEGORICAL_COLUMNS:
        out[column] = out[column].astype("category")
    return out.reset_index(drop=True)


def sample_rows(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """At most ``max_rows`` rows drawn without replacement, deterministically (0 = keep everything)."""
    if max_rows <= 0 or len(frame) <= max_rows:
        return frame
    return frame.sample(n=max_rows, random_state=seed, replace=False).reset_index(drop=True)


# --- the report ----------------------------------------------------------------------------------------


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name) or name in (INDEX_FILE.removesuffix(".json"),):
        raise ValueError(
            f"bad report name {name!r}: use letters, digits, '.', '_' and '-' (no path separators), "
            "not starting with a dot, and not 'index'"
        )


def _check_methods(settings: Settings) -> None:
    from evidently.legacy.calculations.stattests.registry import get_registered_stattest
    from evidently.legacy.core import ColumnType

    for method, kind in (
        (settings.drift_num_method, ColumnType.Numerical),
        (settings.drift_cat_method, ColumnType.Categorical),
    ):
        try:
            get_registered_stattest(method, kind)
        except ValueError as exc:
            setting = "drift_num_method" if kind is ColumnType.Numerical else "drift_cat_method"
            raise DriftError(f"LIFEBOAT_{setting.upper()}={method!r} is not usable: {exc}") from exc


def _kind(column: str) -> Literal["numerical", "categorical"]:
    return "numerical" if column in NUMERICAL_COLUMNS else "categorical"


def _threshold(column: str, settings: Settings) -> float:
    return settings.drift_num_threshold if column in NUMERICAL_COLUMNS else settings.drift_cat_threshold


def _method(column: str, settings: Settings) -> str:
    return settings.drift_num_method if column in NUMERICAL_COLUMNS else settings.drift_cat_method


def _values(frame: pd.DataFrame, column: str) -> pd.Series:
    """The column's values as Evidently compares them: missing (and infinite) values dropped."""
    values = frame[column]
    if column in NUMERICAL_COLUMNS:
        values = values.replace([np.inf, -np.inf], np.nan)
    return values.dropna()


def _columns_without_values(
    reference: pd.DataFrame, current: pd.DataFrame, settings: Settings
) -> dict[str, ColumnDrift]:
    """Columns with no value at all on one side (Evidently cannot score them): drifted unless both are."""
    out: dict[str, ColumnDrift] = {}
    for column in ANALYSED_COLUMNS:
        ref_empty = _values(reference, column).empty
        cur_empty = _values(current, column).empty
        if ref_empty or cur_empty:
            out[column] = ColumnDrift(
                _kind(column), "no_values", None, _threshold(column, settings), drifted=ref_empty != cur_empty
            )
    return out


def score_columns(
    reference: pd.DataFrame, current: pd.DataFrame, settings: Settings
) -> dict[str, ColumnDrift]:
    """Per-column verdicts computed with the same Evidently drift methods and thresholds, without a report.

    Takes analysis frames (:func:`analysis_frame`). About a thousand times cheaper than :func:`drift_report`
    (no widgets, no HTML), so calibration and benchmarks can score hundreds of batches; tests check that it
    gives the very scores the report gives.
    """
    from evidently.legacy.calculations.stattests.registry import get_registered_stattest
    from evidently.legacy.core import ColumnType

    _check_methods(settings)
    out = _columns_without_values(reference, current, settings)
    for column in ANALYSED_COLUMNS:
        if column in out:
            continue
        kind = ColumnType.Numerical if column in NUMERICAL_COLUMNS else ColumnType.Categorical
        stattest = get_registered_stattest(_method(column, settings), kind)
        threshold = _threshold(column, settings)
        result = stattest(_values(reference, column), _values(current, column), kind, threshold)
        out[column] = ColumnDrift(
            _kind(column),
            _method(column, settings),
            float(result.drift_score),
            threshold,
            bool(result.drifted),
        )
    return {c: out[c] for c in ANALYSED_COLUMNS}


def _run_evidently(
    reference: pd.DataFrame, current: pd.DataFrame, settings: Settings, columns: Sequence[str]
) -> Any:
    """Run the pinned DataDriftPreset on ``columns``; return the Evidently snapshot."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    id_column = ID_COLUMN if ID_COLUMN in reference.columns and ID_COLUMN in current.columns else None
    keep = ([id_column] if id_column else []) + list(ANALYSED_COLUMNS)  # all typed, only ``columns`` tested
    definition = DataDefinition(
        id_column=id_column,
        numerical_columns=list(NUMERICAL_COLUMNS),
        categorical_columns=list(CATEGORICAL_COLUMNS),
    )
    preset = DataDriftPreset(
        columns=list(columns),
        drift_share=settings.drift_share_threshold,
        num_method=settings.drift_num_method,
        cat_method=settings.drift_cat_method,
        num_threshold=settings.drift_num_threshold,
        cat_threshold=settings.drift_cat_threshold,
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


def _column_verdicts(snapshot: Any, columns_tested: Sequence[str]) -> dict[str, ColumnDrift]:
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
        columns[column] = ColumnDrift(_kind(column), method, score, threshold, verdicts[column])
    return columns


def _write_text_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o644)  # readable by the Airflow UI and MLflow like any report file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _not_enough_data_html(summary: DriftSummary) -> str:
    esc = html.escape
    which = []
    if summary.current_rows < summary.min_rows:
        which.append(f"the current data ({esc(summary.current_source)}) has {summary.current_rows} row(s)")
    if summary.reference_rows < summary.min_rows:
        which.append(f"the reference data has {summary.reference_rows} row(s)")
    items = "".join(f"<li><code>{esc(c)}</code></li>" for c in ANALYSED_COLUMNS)
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


@contextmanager
def _index_lock(output_dir: Path) -> Iterator[None]:
    with open(output_dir / _LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _index_entry(summary: DriftSummary) -> dict[str, Any]:
    return {
        "name": summary.name,
        "status": summary.status,
        "dataset_drift": summary.dataset_drift,
        "share_drifted": summary.share_drifted,
        "drifted_columns": list(summary.drifted_columns),
        "reference_rows": summary.reference_rows,
        "current_rows": summary.current_rows,
        "current_source": summary.current_source,
        "created_at": summary.created_at,
        "html": Path(summary.html_path).name,
        "json": Path(summary.json_path).name,
    }


def read_index(output_dir: Path | str) -> list[dict[str, Any]]:
    """The reports listed in ``<output_dir>/index.json``, newest first (empty if there is none yet)."""
    path = Path(output_dir) / INDEX_FILE
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        reports = data["reports"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DriftError(f"unreadable drift report index {path}: {exc}") from exc
    if not isinstance(reports, list):
        raise DriftError(f"unreadable drift report index {path}: 'reports' is not a list")
    return reports


def update_index(output_dir: Path | str, summary: DriftSummary) -> Path:
    """Add (or replace, by name) the summary's entry in ``index.json``; keep it sorted newest first."""
    output_dir = Path(output_dir)
    path = output_dir / INDEX_FILE
    with _index_lock(output_dir):
        reports = [r for r in read_index(output_dir) if r.get("name") != summary.name]
        reports.insert(0, _index_entry(summary))
        reports.sort(key=lambda r: datetime.fromisoformat(str(r["created_at"])), reverse=True)
        _write_text_atomically(path, json.dumps({"version": 1, "reports": reports}, indent=2) + "\n")
    return path


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
) -> DriftSummary:
    """Compare ``current`` with ``reference``; write ``<name>.html`` and ``<name>.json``, update the index.

    Both frames hold raw passenger rows (schema columns; extra columns are ignored). ``current_source`` says
    where the current rows came from (a batch path, "requests: last 5000" ...) and is recorded in the summary.
    With fewer than ``settings.drift_min_rows`` rows on either side no test is run: the status is
    ``not_enough_data`` and the HTML page says so. Re-running with the same name replaces that report.
    """
    _check_name(name)
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
        _write_text_atomically(html_path, _not_enough_data_html(summary))
    else:
        _check_methods(settings)
        ref = analysis_frame(sample_rows(reference, settings.drift_sample_rows, settings.seed), "reference")
        cur = analysis_frame(sample_rows(current, settings.drift_sample_rows, settings.seed), "current")
        summary.analysed_rows = len(cur)
        summary.sampled = len(cur) < len(current) or len(ref) < len(reference)
        empty = _columns_without_values(ref, cur, settings)
        tested = [c for c in ANALYSED_COLUMNS if c not in empty]
        snapshot = _run_evidently(ref, cur, settings, tested)
        found = {**_column_verdicts(snapshot, tested), **empty}
        columns = {c: found[c] for c in ANALYSED_COLUMNS}
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
    _write_text_atomically(json_path, json.dumps(summary.to_dict(), indent=2) + "\n")
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
