"""Live performance: logged predictions joined with the labels that came back for them.

:func:`labelled_predictions` joins the prediction log (:mod:`lifeboat.monitoring.log_table`) with its
``labels`` table (:mod:`lifeboat.monitoring.feedback`) by request id, newest first, optionally for one model
version and a time window. A request id logged twice (a client may send the same ``X-Request-ID`` again)
counts once, with its newest prediction. :func:`live_performance` turns the joined rows into the figures
the monitoring reports, the retraining policy and the server's gauges share: accuracy, ROC-AUC, precision,
recall, F1, the Brier score and a calibration table (reliability bins, expected calibration error).

This module needs only numpy, pandas and SQLite, so that the prediction server can compute its gauges
without scikit-learn.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from lifeboat.monitoring.feedback import LABELS_TABLE
from lifeboat.monitoring.log_table import BUSY_TIMEOUT_MS, TABLE, LogColumn, quoted, timestamp, typed

__all__ = [
    "CALIBRATION_BINS",
    "CalibrationBin",
    "LivePerformance",
    "labelled_predictions",
    "live_performance",
    "roc_auc",
]

#: Equal-width probability bins of the calibration table.
CALIBRATION_BINS = 10
#: Columns of :func:`labelled_predictions` besides the raw columns asked for.
JOINED_META = ("logged_at", "model_version", "probability", "prediction", "request_id", "label", "target")


class CalibrationBin(BaseModel):
    """One probability bin: its bounds, how many rows fell in it, their mean probability and positive rate."""

    model_config = ConfigDict(frozen=True)

    lower: float
    upper: float
    rows: int
    mean_probability: float | None
    positive_rate: float | None


class LivePerformance(BaseModel):
    """The quality of served predictions over their labelled rows (None where a figure is undefined)."""

    model_config = ConfigDict(frozen=True)

    labelled_rows: int
    positives: int = 0
    model_versions: list[str] = []
    accuracy: float | None = None
    roc_auc: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    brier: float | None = None
    expected_calibration_error: float | None = None
    calibration: list[CalibrationBin] = []
    first_logged_at: str | None = None
    last_logged_at: str | None = None


def _ratio(numerator: float, denominator: float) -> float | None:
    return float(numerator / denominator) if denominator else None


def roc_auc(target: np.ndarray, score: np.ndarray) -> float | None:
    """ROC-AUC as the Mann-Whitney statistic with average ranks for ties; None unless both classes occur.

    Written here because the serving environment has no scikit-learn; it equals
    ``sklearn.metrics.roc_auc_score`` (tested).
    """
    target = np.asarray(target, dtype=np.int64)
    positives = int(target.sum())
    negatives = int(target.size - positives)
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(score, kind="mergesort")
    sorted_scores = np.asarray(score, dtype=np.float64)[order]
    # Average rank of each run of equal scores (ranks start at 1).
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], sorted_scores.size]
    average = (starts + ends + 1) / 2.0
    ranks = np.empty(sorted_scores.size, dtype=np.float64)
    ranks[order] = np.repeat(average, ends - starts)
    rank_sum = float(ranks[target == 1].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def calibration_table(
    target: np.ndarray, probability: np.ndarray, bins: int = CALIBRATION_BINS
) -> tuple[list[CalibrationBin], float | None]:
    """Reliability bins of equal width and the expected calibration error (row-weighted gap)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(probability, edges[1:-1], right=False), 0, bins - 1)
    table: list[CalibrationBin] = []
    gap = 0.0
    for b in range(bins):
        inside = index == b
        rows = int(inside.sum())
        mean_p = float(probability[inside].mean()) if rows else None
        rate = float(target[inside].mean()) if rows else None
        if mean_p is not None and rate is not None:
            gap += rows * abs(mean_p - rate)
        table.append(
            CalibrationBin(
                lower=float(edges[b]),
                upper=float(edges[b + 1]),
                rows=rows,
                mean_probability=mean_p,
                positive_rate=rate,
            )
        )
    return table, (gap / target.size if target.size else None)


def live_performance(frame: pd.DataFrame) -> LivePerformance:
    """The figures of joined rows (``target`` 0/1, ``prediction`` 0/1, ``probability`` of the positive)."""
    rows = len(frame)
    if rows == 0:
        return LivePerformance(labelled_rows=0)
    target = frame["target"].to_numpy(dtype=np.int64)
    prediction = frame["prediction"].to_numpy(dtype=np.int64)
    probability = frame["probability"].to_numpy(dtype=np.float64)
    tp = int(((prediction == 1) & (target == 1)).sum())
    fp = int(((prediction == 1) & (target == 0)).sum())
    fn = int(((prediction == 0) & (target == 1)).sum())
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    table, ece = calibration_table(target, probability)
    logged = frame["logged_at"] if "logged_at" in frame else pd.Series(dtype="object")
    return LivePerformance(
        labelled_rows=rows,
        positives=int(target.sum()),
        model_versions=sorted({str(v) for v in frame["model_version"]}, key=_version_key),
        accuracy=float((prediction == target).mean()),
        roc_auc=roc_auc(target, probability),
        precision=precision,
        recall=recall,
        f1=f1,
        brier=float(np.mean((probability - target) ** 2)),
        expected_calibration_error=ece,
        calibration=table,
        first_logged_at=_text_time(logged.min()) if len(logged) else None,
        last_logged_at=_text_time(logged.max()) if len(logged) else None,
    )


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (1 << 62, version)


def _text_time(value: Any) -> str | None:
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp | datetime):
        return timestamp(value.to_pydatetime() if isinstance(value, pd.Timestamp) else value)
    return str(value)


def labelled_predictions(
    path: Path | str,
    columns: Sequence[LogColumn] = (),
    *,
    model_version: str | None = None,
    last_n: int | None = None,
    since: datetime | None = None,
) -> pd.DataFrame:
    """The labelled predictions of the log at ``path``, oldest first: ``columns``, then :data:`JOINED_META`.

    ``model_version`` keeps only the rows that version scored; ``last_n`` the newest labelled rows;
    ``since`` the rows logged at or after that time. A missing file, log or labels table gives no rows.
    """
    if last_n is not None and last_n < 0:
        raise ValueError("last_n must be zero or positive")
    names = [c.name for c in columns]
    rows: list[tuple[Any, ...]] = []
    path = Path(path)
    if path.is_file():
        connection = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000
        )
        try:
            connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            rows = _select_joined(connection, names, model_version, last_n, since)
        finally:
            connection.close()
    frame = typed(pd.DataFrame(rows, columns=[*names, *JOINED_META]), columns)
    frame["target"] = frame["target"].astype("int64")
    frame["label"] = frame["label"].astype("object")
    return frame


def _select_joined(
    connection: sqlite3.Connection,
    names: Sequence[str],
    model_version: str | None,
    last_n: int | None,
    since: datetime | None,
) -> list[tuple[Any, ...]]:
    tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if TABLE not in tables or LABELS_TABLE not in tables:
        return []
    present = {r[1] for r in connection.execute(f"PRAGMA table_info({TABLE})")}
    raw = [f"p.{quoted(n)}" if n in present else "NULL" for n in names]
    meta = [
        "p.logged_at",
        "p.model_version",
        "p.probability",
        "p.prediction",
        "p.request_id",
        "l.label",
        "l.target",
    ]
    where: list[str] = []
    params: list[Any] = []
    if model_version is not None:
        where.append("p.model_version = ?")
        params.append(str(model_version))
    if since is not None:
        where.append("p.logged_at >= ?")
        params.append(timestamp(since))
    # The newest prediction of each labelled request id (an id logged twice counts once).
    sql = (
        f"SELECT {', '.join([*raw, *meta])} FROM {LABELS_TABLE} l JOIN {TABLE} p "
        f"ON p.id = (SELECT MAX(q.id) FROM {TABLE} q WHERE q.request_id = l.request_id)"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY p.id DESC"
    )
    if last_n is not None:
        sql += " LIMIT ?"
        params.append(last_n)
    found = connection.execute(sql, params).fetchall()
    found.reverse()
    return found
