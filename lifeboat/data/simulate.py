"""Simulated batches of any dataset, with or without drift, for demos, tests and benchmarks.

A batch is a bootstrap sample of real rows (drawn with replacement from the training data, so the labels
stay attached to the rows they belong to) with fresh ids when the dataset has an id column, optionally
distorted by a :class:`DriftSpec`. The columns, their kinds, ranges and vocabularies come from the dataset
spec (``data/<dataset>/dataset.yaml``, see :class:`~lifeboat.data.drift_spec.BatchColumns`); the result always
obeys it (values are clipped to the columns' ranges), so a written batch passes
:func:`lifeboat.dataset.validation.validate_csv` and can go through the real ``add-batch`` → retraining path.
Functions take the dataset as ``dataset`` (a :class:`~lifeboat.dataset.models.DatasetSpec`); without it they
use the current settings' dataset (``LIFEBOAT_DATASET``, default Titanic).

Drift specs are short strings of comma-separated parts (Titanic's columns here; Adult's are ``age+10``,
``hours_per_week*1.5``, ``sex=Female:0.7``, ``missing=occupation:0.2``)::

    Age+15            shift a numeric column (also Age-5)
    Fare*3            scale a numeric column
    Sex=male:0.8      draw rows so that 80 % of the batch has Sex == male (the other values keep their
                      relative mix); rows are drawn conditioned on the category, so Survived, Title, Fare
                      ... stay consistent with it
    Pclass=3:0.7      the same for Pclass (several mixes combine; they are matched jointly by raking)
    missing=Age:0.3   blank the value in 30 % of the rows (chosen at random, exact count), on top of the
                      values that were already missing; only optional (nullable) columns can be blanked
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lifeboat.data.drift_spec import (
    BOOLEAN_KEYS,
    BatchColumns,
    CategoryMix,
    DriftSpec,
    MissingValues,
    NumericChange,
    columns_of,
    parse_spec,
)
from lifeboat.dataset.models import DatasetSpec

__all__ = [
    "BatchColumns",
    "CategoryMix",
    "DriftSpec",
    "MissingValues",
    "NumericChange",
    "columns_of",
    "make_batch",
    "mix_weights",
    "parse_spec",
    "replay_rows",
    "write_batch",
]

logger = logging.getLogger(__name__)

Dataset = DatasetSpec | BatchColumns | None

#: Decimal places kept after shifting or scaling a float column (Kaggle's Fare has 4).
_FLOAT_DECIMALS = 4
#: Raking iterations used to match several category mixes at once.
_RAKING_ROUNDS = 200
_RAKING_TOLERANCE = 1e-9


def _category_keys(values: pd.Series, boolean: bool = False) -> np.ndarray:
    """A column's values as strings to compare with a spec value (``3`` and ``3.0`` both become ``"3"``;
    in a boolean column ``True``/``"true"`` become ``"1"``)."""
    out = np.empty(len(values), dtype=object)
    raw = values.to_numpy(dtype=object)
    for i, v in enumerate(raw):
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            out[i] = None
        elif isinstance(v, bool | np.bool_):
            out[i] = "1" if v else "0"
        elif isinstance(v, float) and v.is_integer():
            out[i] = str(int(v))
        else:
            out[i] = str(v).strip()
            if boolean:
                out[i] = BOOLEAN_KEYS.get(out[i].lower(), out[i])
    return out


def mix_weights(train: pd.DataFrame, mixes: tuple[CategoryMix, ...], dataset: Dataset = None) -> np.ndarray:
    """Sampling probabilities over the training rows that give every category mix its share.

    Within one column, rows carrying a mixed value share that value's ``share`` uniformly and the remaining
    rows share what is left, uniformly, so their relative mix is kept. Mixes on several columns are matched
    jointly by raking (iterative proportional fitting), which changes the joint distribution as little as
    possible. ``dataset`` (default: the settings' dataset) says which columns are boolean.
    """
    n = len(train)
    weights = np.full(n, 1.0 / n)
    if not mixes:
        return weights
    columns = columns_of(dataset)
    # Per column: the (mask, share) groups to match, the rest taking what is left.
    groups: dict[str, list[tuple[np.ndarray, float]]] = {}
    for mix in mixes:
        if mix.column not in train.columns:
            raise ValueError(f"cannot apply {mix}: the data has no column {mix.column!r}")
        mask = _category_keys(train[mix.column], columns.is_boolean(mix.column)) == mix.value
        if mix.share > 0 and not mask.any():
            raise ValueError(f"cannot apply {mix}: no training row has {mix.column}={mix.value}")
        groups.setdefault(mix.column, []).append((mask, mix.share))
    for column, parts in list(groups.items()):
        rest = ~np.logical_or.reduce([mask for mask, _ in parts])
        left = 1.0 - sum(share for _, share in parts)
        if left > 1e-12 and not rest.any():
            raise ValueError(
                f"cannot apply the mix of {column}: its shares add up to {1 - left:g} but every "
                f"training row has one of the given values"
            )
        parts.append((rest, max(left, 0.0)))
    for _ in range(_RAKING_ROUNDS):
        worst = 0.0
        for parts in groups.values():
            for mask, share in parts:
                inside = float(weights[mask].sum())
                worst = max(worst, abs(inside - share))
                if inside > 0:
                    weights[mask] *= share / inside
        weights /= float(weights.sum())
        if worst < _RAKING_TOLERANCE:
            break
    return weights


def _apply_numeric(batch: pd.DataFrame, change: NumericChange, columns: BatchColumns) -> None:
    spec = columns.by_name[change.column]
    values = pd.to_numeric(batch[change.column], errors="coerce").to_numpy(dtype=np.float64)
    values = values + change.amount if change.op == "+" else values * change.amount
    bounds = spec.range
    low = -np.inf if bounds is None or bounds.min is None else bounds.min
    high = np.inf if bounds is None or bounds.max is None else bounds.max
    values = np.clip(values, low, high)
    if spec.type == "integer":
        rounded = np.clip(np.round(values), low, high)
        if np.isnan(rounded).any():
            batch[change.column] = pd.array(rounded, dtype="Int64")
        else:
            batch[change.column] = rounded.astype(np.int64)
    else:
        batch[change.column] = np.round(values, _FLOAT_DECIMALS)


def _blank(batch: pd.DataFrame, blank: MissingValues, where: np.ndarray, columns: BatchColumns) -> None:
    """Blank ``blank.column`` in the rows ``where`` (integers stay integers: pandas' nullable Int64; booleans
    stay ``True``/``False``, not ``1.0``/``0.0``)."""
    if blank.column not in batch.columns:
        batch[blank.column] = None
    column = batch[blank.column]
    kind = columns.by_name[blank.column].type
    if kind != "boolean" and pd.api.types.is_numeric_dtype(column):
        values = column.to_numpy(dtype=np.float64, copy=True, na_value=np.nan)
        values[where] = np.nan
        batch[blank.column] = pd.array(values, dtype="Int64") if kind == "integer" else values
    else:
        objects = column.to_numpy(dtype=object, copy=True)
        objects[where] = None
        batch[blank.column] = objects


def next_id(frame: pd.DataFrame, dataset: Dataset = None) -> int | None:
    """The first id after ``frame``'s largest (1 when it has none); None when the dataset has no id column."""
    id_column = columns_of(dataset).id_column
    if id_column is None:
        return None
    if id_column not in frame.columns or frame[id_column].isna().all():
        return 1
    return int(pd.to_numeric(frame[id_column]).max()) + 1


def make_batch(
    train: pd.DataFrame,
    rows: int,
    spec: DriftSpec | None,
    seed: int,
    start_id: int | None = None,
    *,
    dataset: Dataset = None,
) -> pd.DataFrame:
    """``rows`` rows resampled (with replacement) from ``train``, with ids ``start_id, start_id+1 ...``.

    ``dataset`` (default: the settings' dataset) gives the columns. When it has an id column the ids are
    fresh: ``start_id`` (default: after ``train``'s largest id) and on; without one ``start_id`` is ignored
    and the batch has no id. ``spec`` (None = no drift) distorts the batch: category mixes choose which rows
    are drawn (the rows stay whole, so labels remain plausible); numeric shifts/scales and blanked values are
    applied afterwards and clipped to the columns' ranges. Same inputs and seed give the same batch. Columns
    keep ``train``'s order; the label is kept when present.
    """
    columns = columns_of(dataset)
    if rows < 1:
        raise ValueError(f"a batch needs at least one row, got rows={rows}")
    if len(train) == 0:
        raise ValueError("cannot resample from an empty training frame")
    if columns.id_column is not None:
        start_id = next_id(train, columns) if start_id is None else start_id
        if start_id is None or start_id < 1:
            raise ValueError(
                f"start_id must be at least 1 (ids of {columns.id_column} start at 1), got {start_id}"
            )
    absent = [c for c in columns.required if c not in train.columns]
    if absent:
        raise ValueError(f"the training frame lacks required column(s): {', '.join(absent)}")
    spec = spec or DriftSpec()
    rng = np.random.default_rng(seed)
    weights = mix_weights(train, spec.mixes, columns)
    picked = rng.choice(len(train), size=rows, replace=True, p=weights if spec.mixes else None)
    batch = train.iloc[picked].reset_index(drop=True)
    if columns.id_column is not None and start_id is not None:
        batch[columns.id_column] = np.arange(start_id, start_id + rows, dtype=np.int64)
    for change in spec.numeric:
        if change.column not in batch.columns or change.column not in columns.numeric:
            raise ValueError(f"cannot apply {change}: the data has no numeric column {change.column!r}")
        _apply_numeric(batch, change, columns)
    for blank in spec.missing:
        if blank.column not in columns.optional:
            raise ValueError(f"cannot apply {blank}: {blank.column!r} is not an optional column")
        count = round(blank.share * rows)
        if count == 0:
            continue
        where = rng.choice(rows, size=count, replace=False)
        _blank(batch, blank, where, columns)
    order = [c for c in train.columns if c in batch.columns]
    return batch[order]


def write_batch(df: pd.DataFrame, path: Path | str, dataset: Dataset = None) -> Path:
    """Write a batch as CSV (the dataset's column order, label last, then any others), atomically; return
    the path."""
    path = Path(path)
    columns_view = columns_of(dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = [c for c in (*columns_view.raw, columns_view.label) if c in df.columns]
    columns += [c for c in df.columns if c not in columns]
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as out:
            df[columns].to_csv(out, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    logger.info("wrote %d simulated %s rows to %s", len(df), columns_view.dataset, path)
    return path


def _json_value(value: Any) -> Any:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float | np.floating):
        f = float(value)
        return None if math.isnan(f) else f
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def replay_rows(
    test_csv: Path | str,
    rows: int,
    spec: DriftSpec | None,
    seed: int,
    start_id: int | None = None,
    *,
    dataset: Dataset = None,
) -> list[dict[str, Any]]:
    """``rows`` rows drawn from a CSV as JSON-ready dicts (NaN → None) to send to the API.

    Ids (when the dataset has an id column) continue after the file's largest id unless ``start_id`` is
    given. Keys are the dataset's raw columns (a label column in the file is dropped: the API does not
    take it).
    """
    columns = columns_of(dataset)
    source = pd.read_csv(test_csv)
    batch = make_batch(source, rows, spec, seed, start_id, dataset=columns)
    names = [c for c in columns.raw if c in batch.columns]
    records = batch[names].to_dict(orient="records")
    return [{k: _json_value(v) for k, v in record.items()} for record in records]
