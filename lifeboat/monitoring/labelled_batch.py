"""Labelled live rows become training data: a new DVC batch in the dataset's incoming folder.

:func:`export_labelled_batch` takes the labelled predictions not exported yet (every model version), writes
their raw columns *as they were served* plus the label column into a CSV, and adds it like any batch
(:func:`lifeboat.data.versioning.add_batch`: validated against the spec, copied, ``dvc add`` + push). A
dataset with an id column gets fresh ids after every id of the training files, since clients' ids are not
training ids and a reused one could contradict a training row's label. The exported labels are marked with
the batch's name (column ``exported_batch`` of the labels table), so no row is exported twice.
"""

from __future__ import annotations

import logging
import sqlite3
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lifeboat.monitoring.feedback import LABELS_TABLE
from lifeboat.monitoring.live import labelled_predictions
from lifeboat.monitoring.log_table import BUSY_TIMEOUT_MS, log_columns
from lifeboat.settings import Settings

logger = logging.getLogger(__name__)

__all__ = ["EXPORTED_COLUMN", "ExportedBatch", "export_labelled_batch", "unexported_rows"]

#: Column of the labels table naming the batch a label was exported in (NULL: not exported yet).
EXPORTED_COLUMN = "exported_batch"


@dataclass(frozen=True)
class ExportedBatch:
    """What an export did: the batch file (None: nothing exported) and the rows it holds or that waited."""

    path: Path | None
    rows: int
    message: str


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return connection


def _exported_ids(path: Path) -> set[str]:
    """The request ids whose label was exported (none before the labels table has the column)."""
    if not path.is_file():
        return set()
    connection = _connect(path)
    try:
        columns = {r[1] for r in connection.execute(f"PRAGMA table_info({LABELS_TABLE})")}
        if EXPORTED_COLUMN not in columns:
            return set()
        query = f"SELECT request_id FROM {LABELS_TABLE} WHERE {EXPORTED_COLUMN} IS NOT NULL"
        return {r[0] for r in connection.execute(query)}
    finally:
        connection.close()


def unexported_rows(settings: Settings) -> pd.DataFrame:
    """The labelled predictions of the dataset whose label was not exported yet, oldest first."""
    from lifeboat.dataset.spec import spec_of

    path = settings.prediction_log_path
    done = _exported_ids(path)
    frame = labelled_predictions(path, log_columns(spec_of(settings)))
    return frame[~frame["request_id"].isin(done)].reset_index(drop=True)


def _mark(path: Path, ids: Sequence[str], batch: str | None) -> None:
    """Set (or clear, with None) the batch name of these labels, adding the column when it is missing."""
    connection = _connect(path)
    try:
        connection.execute("BEGIN IMMEDIATE")
        columns = {r[1] for r in connection.execute(f"PRAGMA table_info({LABELS_TABLE})")}
        if EXPORTED_COLUMN not in columns:
            connection.execute(f"ALTER TABLE {LABELS_TABLE} ADD COLUMN {EXPORTED_COLUMN} TEXT")
        connection.executemany(
            f"UPDATE {LABELS_TABLE} SET {EXPORTED_COLUMN} = ? WHERE request_id = ?", [(batch, i) for i in ids]
        )
        connection.execute("COMMIT")
    finally:
        connection.close()


def batch_frame(rows: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """The training-data form of labelled rows: the spec's raw columns in order, the label, fresh ids."""
    from lifeboat.data import versioning as data
    from lifeboat.dataset.spec import spec_of

    spec = spec_of(settings)
    out = pd.DataFrame(index=rows.index)
    for column in spec.columns:
        if column.role == "label":
            out[column.name] = rows["label"]
        elif column.name in rows:
            out[column.name] = rows[column.name]
    if spec.id_column is not None:
        start = data.next_training_id(spec.id_column, data.training_files(settings)) or 1
        out[spec.id_column] = range(start, start + len(out))
    return out.reset_index(drop=True)


def export_labelled_batch(settings: Settings, *, min_rows: int = 1, name: str | None = None) -> ExportedBatch:
    """Add the labelled rows not exported yet as a new batch, when there are at least ``min_rows`` of them.

    The labels are marked before the batch is added and unmarked when adding it fails; a process killed in
    between leaves them marked without a batch (rows missing from training, never rows trained on twice).
    """
    from lifeboat.data import versioning as data

    rows = unexported_rows(settings)
    if len(rows) < min_rows:
        return ExportedBatch(None, len(rows), f"{len(rows)} labelled row(s) to export < {min_rows}: no batch")
    target_name = data.batch_file_name(name)
    ids = rows["request_id"].tolist()
    frame = batch_frame(rows, settings)
    _mark(settings.prediction_log_path, ids, target_name)
    try:
        with tempfile.TemporaryDirectory(prefix="lifeboat-labelled-") as tmp:
            written = Path(tmp) / target_name
            frame.to_csv(written, index=False)
            target = data.add_batch(written, name=target_name, settings=settings)
    except BaseException:
        _mark(settings.prediction_log_path, ids, None)
        raise
    logger.info("exported %d labelled row(s) as %s", len(frame), target)
    return ExportedBatch(target, len(frame), f"exported {len(frame)} labelled row(s) as {target}")
