"""The frames a drift report compares: the analysed columns, current data from batches or logged requests,
and bounded samples."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lifeboat.dataset.features import CATEGORY_COLUMNS, RANGE_COLUMNS, derive_titles
from lifeboat.dataset.schema import BY_NAME, ID_COLUMN
from lifeboat.monitoring.drift_models import DriftError

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


_MISSING = "missing"


_PRESENT = "present"


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
