"""The built-in transforms of a dataset spec, each written once and column-wise.

A column is either a float64 array (NaN = missing) or a list of stripped strings (None = missing); every
function takes and returns whole columns, so the same code encodes one served row and a million training
rows (the encoder is the only caller; see :mod:`lifeboat.dataset.encoder`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lifeboat.dataset.models import Condition, Rule, Scalar, category_key

Text = list[str | None]
Values = np.ndarray | Text


def read_numbers(values: Any, n: int) -> np.ndarray:
    """A raw column as float64, NaN where missing (None, NaN, pandas NA); ``None`` = absent column."""
    if values is None:
        return np.full(n, np.nan)
    if isinstance(values, pd.Series):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.asarray(values, dtype=np.float64)


def read_text(values: Any, n: int) -> Text:
    """A raw column as stripped strings, None where missing or empty; ``None`` = absent column."""
    if values is None:
        return [None] * n
    out: Text = []
    append = out.append
    for v in values:  # text_value inlined: this loop runs over every cell of a batch
        if v.__class__ is str:
            append(v.strip() or None)
        elif v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            append(None)
        else:
            append(str(v).strip() or None)
    return out


def text_value(v: Any) -> str | None:
    """One raw cell as a stripped string, None where missing or empty."""
    if v.__class__ is str:  # the common case, checked first
        return v.strip() or None
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return None
    return str(v).strip() or None


def number_value(v: Any) -> float:
    """One raw cell as a float (NaN where missing), converting as ``np.asarray(..., float64)`` does."""
    if v.__class__ is float:
        return v
    if v is None:
        return math.nan
    return float(v)


def is_missing(values: Values) -> np.ndarray:
    """Boolean mask of the missing entries of a column."""
    if isinstance(values, np.ndarray):
        return np.isnan(values)
    return np.fromiter((v is None for v in values), dtype=bool, count=len(values))


def category_keys(values: Values) -> Text:
    """Each entry as a category key; numbers are truncated to integers (``3.0`` and ``3.5`` -> ``"3"``, as
    integer columns are keyed); None where missing."""
    if isinstance(values, np.ndarray):
        if len(values) <= 16:
            return [None if v != v else integer_key(v) for v in values.tolist()]
        distinct, inverse = np.unique(values, return_inverse=True)  # few distinct values: key each once
        keys = [None if v != v else integer_key(v) for v in distinct.tolist()]
        return [keys[j] for j in inverse.ravel().tolist()]
    return list(values)


def unseen(values: Values, known: frozenset[str] | set[str]) -> np.ndarray:
    """Where a present value's category key is not in ``known``."""
    if isinstance(values, np.ndarray):
        mask = np.zeros(len(values), dtype=bool)
        for v in np.unique(values[~np.isnan(values)]).tolist():
            if integer_key(v) not in known:
                mask |= values == v
        return mask
    return np.fromiter((k is not None and k not in known for k in values), dtype=bool, count=len(values))


def integer_key(value: float) -> str:
    """A number as a category key: truncated to an integer (``3.0`` -> ``"3"``)."""
    return str(int(value)) if math.isfinite(value) else str(value)


def _compare_text(values: Text, op: str, operand: Scalar | list[Scalar]) -> np.ndarray:
    if op == "isin":
        keys = {category_key(v) for v in operand} if isinstance(operand, list) else set()
        return np.fromiter((v is not None and v in keys for v in values), dtype=bool, count=len(values))
    key = category_key(operand) if not isinstance(operand, list) else ""
    if op == "eq":
        return np.fromiter((v == key for v in values), dtype=bool, count=len(values))
    if op == "ne":
        return np.fromiter((v != key for v in values), dtype=bool, count=len(values))
    raise ValueError(f"{op} compares numbers, not text")


_NUMBER_OPS = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal}
_NUMBER_OPS.update({"gt": np.greater, "ge": np.greater_equal})


def condition_mask(values: Values, condition: Condition) -> np.ndarray:
    """Where ``condition`` holds (every key of it); numbers compare as IEEE does (NaN equals nothing)."""
    mask: np.ndarray | None = None
    for op, operand in condition.model_dump(exclude_none=True).items():
        if op == "missing":
            part = is_missing(values) if operand else ~is_missing(values)
        elif isinstance(values, np.ndarray):
            if op == "isin":
                part = np.isin(values, [float(v) for v in operand])
            else:
                part = _NUMBER_OPS[op](values, float(operand))
        else:
            part = _compare_text(values, op, operand)
        mask = part if mask is None else mask & part
    assert mask is not None  # a Condition has at least one key
    return mask


def when_mask(columns: Mapping[str, Values], when: Mapping[str, Condition], n: int) -> np.ndarray:
    """Where every condition of ``when`` holds (all rows for an empty ``when``)."""
    mask = np.ones(n, dtype=bool)
    for column, condition in when.items():
        mask &= condition_mask(columns[column], condition)
    return mask


def indicator(mask: np.ndarray) -> np.ndarray:
    """A boolean mask as 0.0/1.0."""
    return mask.astype(np.float64)


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Element-wise division with IEEE results for zero denominators."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return numerator / denominator


def total(columns: Sequence[np.ndarray], constant: float) -> np.ndarray:
    """Left-to-right sum of columns, then ``+ constant`` (the order matters for bit-exact floats)."""
    out = columns[0]
    for column in columns[1:]:
        out = out + column
    return out + constant if constant != 0.0 else out + 0.0


def product(columns: Sequence[np.ndarray]) -> np.ndarray:
    """Left-to-right product of columns."""
    out = columns[0]
    for column in columns[1:]:
        out = out * column
    return out


def log1p(values: np.ndarray) -> np.ndarray:
    """``log(1 + x)`` (NaN below -1, -inf at -1)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log1p(values)


def clip(values: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
    """Values limited to ``[lo, hi]``; NaN stays NaN."""
    return np.clip(values, -np.inf if lo is None else lo, np.inf if hi is None else hi)


def bucket(values: np.ndarray, boundaries: Sequence[float]) -> np.ndarray:
    """How many boundaries are at or below each value; NaN stays NaN."""
    out = np.searchsorted(np.asarray(boundaries, dtype=np.float64), values, side="right").astype(np.float64)
    out[np.isnan(values)] = np.nan
    return out


def token_count(values: Text, separator: str | None) -> np.ndarray:
    """Tokens per text (0 for missing text)."""
    return np.fromiter(
        (0.0 if v is None else float(len([t for t in v.split(separator) if t])) for v in values),
        dtype=np.float64,
        count=len(values),
    )


def regex_extract(
    values: Text,
    pattern: re.Pattern[str],
    group: int,
    mapping: Mapping[str, str] | None,
    unmapped: str | None,
) -> Text:
    """The stripped ``group`` of the first match of each text, through ``mapping``; None where no match."""
    out: Text = []
    append = out.append
    for v in values:
        match = pattern.search(v) if v is not None else None
        if match is None:
            append(None)
            continue
        found = (match.group(group) or "").strip()
        if mapping is not None:
            append(mapping.get(found, unmapped if unmapped is not None else found))
        else:
            append(found)
    return out


def apply_rules(values: Text, columns: Mapping[str, Values], rules: Sequence[Rule]) -> Text:
    """``values`` with each missing entry replaced by the value of the first rule that holds for its row."""
    n = len(values)
    holes = [i for i, v in enumerate(values) if v is None]
    if not holes or not rules:
        return values
    out = list(values)
    sub = columns if len(holes) == n else {k: take(c, holes) for k, c in columns.items()}
    pending = np.ones(len(holes), dtype=bool)
    for rule in rules:
        hit = pending & when_mask(sub, rule.when, len(holes))
        for j in np.flatnonzero(hit).tolist():
            out[holes[j]] = rule.value
        pending &= ~hit
        if not pending.any():
            break
    return out


def take(values: Values, rows: list[int]) -> Values:
    """The entries of a column at ``rows``."""
    if isinstance(values, np.ndarray):
        return values[rows]
    return [values[i] for i in rows]


def group_statistic(
    values: np.ndarray, keys: Text, groups: Sequence[str] | None, statistic: str
) -> tuple[dict[str, float], float | None]:
    """Per-group and overall ``statistic`` (median or mean) of the non-missing values.

    Only ``groups`` are kept when given; a group without values is left out. The overall figure is None when
    the column has no value at all.
    """
    series = pd.Series(values)
    key_series = pd.Series(keys, dtype=object)

    def stat(s: pd.Series) -> float:
        return float(s.median() if statistic == "median" else s.mean())

    overall = stat(series) if series.notna().any() else None
    names = groups if groups is not None else sorted({k for k in keys if k is not None})
    table: dict[str, float] = {}
    for name in names:
        part = series[(key_series == name).to_numpy()]
        if part.notna().any():
            table[name] = stat(part)
    return table, overall


def group_fill(values: np.ndarray, groups: Values, table: Mapping[str, float], default: float) -> np.ndarray:
    """``values`` with each NaN replaced by ``table[key of its group]`` (``default`` for unknown or missing
    groups); only the missing rows' groups are looked at."""
    missing = np.flatnonzero(np.isnan(values)).tolist()
    if not missing:
        return values
    out = values.copy()
    for i, key in zip(missing, category_keys(take(groups, missing)), strict=True):
        out[i] = table.get(key, default) if key is not None else default
    return out


def mode(values: Text) -> str | None:
    """The most common non-missing text (the first in sorted order on ties); None when all are missing."""
    series = pd.Series(values, dtype=object)
    if not series.notna().any():
        return None
    return str(series.mode().iloc[0])


def onehot(keys: Text, vocabulary: Sequence[str], unknown_code: int, width: int) -> np.ndarray:
    """(n, width) 0/1 float64 matrix, column j for ``vocabulary[j]``; unknown or missing keys get a 1 in
    column ``unknown_code`` (-1: none)."""
    codes_of: dict[str | None, int] = {v: j for j, v in enumerate(vocabulary)}
    codes = np.fromiter((codes_of.get(k, unknown_code) for k in keys), dtype=np.int64, count=len(keys))
    return (codes[:, None] == np.arange(width)).astype(np.float64)
