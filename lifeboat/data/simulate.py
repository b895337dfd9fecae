"""Simulated passenger batches, with or without drift, for demos, tests and benchmarks.

A batch is a bootstrap sample of real passengers (rows drawn with replacement from the training data, so
the labels stay attached to the passengers they belong to) with fresh ids, optionally distorted by a
:class:`DriftSpec`. The result always obeys the passenger schema (values are clipped to the ranges of
:data:`lifeboat.dataset.schema.COLUMNS`), so a written batch passes :func:`lifeboat.dataset.schema.validate_csv` and can go
through the real ``add-batch`` → retraining path.

Drift specs are short strings of comma-separated parts::

    Age+15            shift a numeric column (also Age-5)
    Fare*3            scale a numeric column
    Sex=male:0.8      draw rows so that 80 % of the batch has Sex == male (the other values keep their
                      relative mix); rows are drawn conditioned on the category, so Survived, Title, Fare
                      ... stay consistent with it
    Pclass=3:0.7      the same for Pclass (several mixes combine; they are matched jointly by raking)
    missing=Age:0.3   blank the value in 30 % of the rows (chosen at random, exact count), on top of the
                      values that were already missing; only optional columns can be blanked
"""

from __future__ import annotations

import logging
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from lifeboat.dataset.schema import BY_NAME, COLUMN_NAMES, COLUMNS, ID_COLUMN, LABEL_COLUMN

logger = logging.getLogger(__name__)

#: Numeric raw columns a spec may shift or scale (PassengerId is an id, not a feature).
NUMERIC_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in COLUMNS if c.kind in ("int", "float") and c.allowed is None and c.name != ID_COLUMN
)
#: Raw columns with a closed vocabulary whose mix a spec may change.
CATEGORY_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.allowed is not None)
#: Raw columns that may be blanked (optional in the schema).
OPTIONAL_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if not c.required)

#: Decimal places kept after shifting or scaling a float column (Kaggle's Fare has 4).
_FLOAT_DECIMALS = 4
#: Raking iterations used to match several category mixes at once.
_RAKING_ROUNDS = 200
_RAKING_TOLERANCE = 1e-9

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_SHIFT_RE = re.compile(rf"^(\w+)\s*([-+*])\s*({_NUMBER})$")
_MIX_RE = re.compile(rf"^(\w+)\s*=\s*([^:=]+?)\s*:\s*({_NUMBER})$")


@dataclass(frozen=True)
class NumericChange:
    """Shift (``+``/``-``) or scale (``*``) one numeric column."""

    column: str
    op: Literal["+", "*"]
    amount: float

    def __str__(self) -> str:
        if self.op == "*":
            return f"{self.column}*{self.amount:g}"
        return f"{self.column}{self.amount:+g}"


@dataclass(frozen=True)
class CategoryMix:
    """Make ``share`` of the batch carry ``value`` in ``column``."""

    column: str
    value: str
    share: float

    def __str__(self) -> str:
        return f"{self.column}={self.value}:{self.share:g}"


@dataclass(frozen=True)
class MissingValues:
    """Blank ``column`` in ``share`` of the rows."""

    column: str
    share: float

    def __str__(self) -> str:
        return f"missing={self.column}:{self.share:g}"


@dataclass(frozen=True)
class DriftSpec:
    """A parsed drift specification (see the module docstring for the syntax)."""

    numeric: tuple[NumericChange, ...] = ()
    mixes: tuple[CategoryMix, ...] = ()
    missing: tuple[MissingValues, ...] = ()
    text: str = field(default="", compare=False)

    @classmethod
    def parse(cls, text: str) -> DriftSpec:
        """Parse ``"Age+15,Fare*3,Sex=male:0.8,missing=Age:0.3"``; raise ValueError naming the bad part."""
        numeric: list[NumericChange] = []
        mixes: list[CategoryMix] = []
        missing: list[MissingValues] = []
        parts = [p.strip() for p in text.split(",")]
        if not any(parts):
            raise ValueError(
                "empty drift spec: expected parts like 'Age+15', 'Fare*3', 'Sex=male:0.8', 'missing=Age:0.3'"
            )
        for part in parts:
            if not part:
                raise ValueError(
                    f"bad drift spec {text!r}: empty part (two commas in a row, or a trailing comma)"
                )
            numeric_match = _SHIFT_RE.match(part)
            mix_match = _MIX_RE.match(part)
            if numeric_match:
                column, op, number = numeric_match.groups()
                numeric.append(_numeric_change(part, column, op, float(number)))
            elif mix_match:
                key, value, number = mix_match.groups()
                share = float(number)
                if not 0.0 <= share <= 1.0:
                    raise ValueError(f"bad drift spec part {part!r}: share {number} must lie between 0 and 1")
                if key == "missing":
                    missing.append(_missing_values(part, value.strip(), share))
                else:
                    mixes.append(_category_mix(part, key, value.strip(), share))
            else:
                raise ValueError(
                    f"bad drift spec part {part!r}: expected COLUMN+N, COLUMN-N, COLUMN*N, "
                    "COLUMN=VALUE:SHARE or missing=COLUMN:SHARE"
                )
        _check_mix_totals(mixes)
        return cls(numeric=tuple(numeric), mixes=tuple(mixes), missing=tuple(missing), text=text.strip())

    def __str__(self) -> str:
        return ",".join(str(p) for p in (*self.mixes, *self.numeric, *self.missing))

    @property
    def columns(self) -> tuple[str, ...]:
        """The raw columns the spec changes directly (in spec order, without repeats)."""
        names = (
            [m.column for m in self.mixes]
            + [n.column for n in self.numeric]
            + [b.column for b in self.missing]
        )
        return tuple(dict.fromkeys(names))


def _numeric_change(part: str, column: str, op: str, amount: float) -> NumericChange:
    if column not in NUMERIC_COLUMNS:
        raise ValueError(
            f"bad drift spec part {part!r}: {column!r} is not a numeric column "
            f"(numeric columns: {', '.join(NUMERIC_COLUMNS)})"
        )
    if not math.isfinite(amount):
        raise ValueError(f"bad drift spec part {part!r}: the amount must be a finite number")
    if op == "*":
        if amount < 0:
            raise ValueError(f"bad drift spec part {part!r}: a scale factor must not be negative")
        return NumericChange(column, "*", amount)
    return NumericChange(column, "+", amount if op == "+" else -amount)


def _category_mix(part: str, column: str, value: str, share: float) -> CategoryMix:
    spec = BY_NAME.get(column)
    if column not in CATEGORY_COLUMNS or spec is None or spec.allowed is None:
        raise ValueError(
            f"bad drift spec part {part!r}: {column!r} is not a categorical column "
            f"(categorical columns: {', '.join(CATEGORY_COLUMNS)})"
        )
    allowed = [str(a) for a in spec.allowed]
    if value not in allowed:
        raise ValueError(
            f"bad drift spec part {part!r}: {value!r} is not a value of {column} "
            f"(allowed: {', '.join(allowed)})"
        )
    return CategoryMix(column, value, share)


def _missing_values(part: str, column: str, share: float) -> MissingValues:
    if column not in OPTIONAL_COLUMNS:
        raise ValueError(
            f"bad drift spec part {part!r}: {column!r} cannot be missing "
            f"(optional columns: {', '.join(OPTIONAL_COLUMNS)})"
        )
    return MissingValues(column, share)


def _check_mix_totals(mixes: list[CategoryMix]) -> None:
    totals: dict[str, float] = {}
    seen: set[tuple[str, str]] = set()
    for mix in mixes:
        if (mix.column, mix.value) in seen:
            raise ValueError(f"bad drift spec part {str(mix)!r}: {mix.column}={mix.value} is given twice")
        seen.add((mix.column, mix.value))
        totals[mix.column] = totals.get(mix.column, 0.0) + mix.share
        if totals[mix.column] > 1.0 + 1e-9:
            raise ValueError(
                f"bad drift spec part {str(mix)!r}: the shares given for {mix.column} add up to "
                f"more than 1 ({totals[mix.column]:g})"
            )


def parse_spec(text: str | None) -> DriftSpec | None:
    """:meth:`DriftSpec.parse`, or None for an empty or missing string (no drift)."""
    if text is None or not text.strip():
        return None
    return DriftSpec.parse(text)


def _category_keys(values: pd.Series) -> np.ndarray:
    """A column's values as strings to compare with a spec value (``3`` and ``3.0`` both become ``"3"``)."""
    out = np.empty(len(values), dtype=object)
    raw = values.to_numpy(dtype=object)
    for i, v in enumerate(raw):
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            out[i] = None
        elif isinstance(v, float) and v.is_integer():
            out[i] = str(int(v))
        else:
            out[i] = str(v).strip()
    return out


def mix_weights(train: pd.DataFrame, mixes: tuple[CategoryMix, ...]) -> np.ndarray:
    """Sampling probabilities over the training rows that give every category mix its share.

    Within one column, rows carrying a mixed value share that value's ``share`` uniformly and the remaining
    rows share what is left, uniformly, so their relative mix is kept. Mixes on several columns are matched
    jointly by raking (iterative proportional fitting), which changes the joint distribution as little as
    possible.
    """
    n = len(train)
    weights = np.full(n, 1.0 / n)
    if not mixes:
        return weights
    # Per column: the (mask, share) groups to match, the rest taking what is left.
    groups: dict[str, list[tuple[np.ndarray, float]]] = {}
    for mix in mixes:
        if mix.column not in train.columns:
            raise ValueError(f"cannot apply {mix}: the data has no column {mix.column!r}")
        mask = _category_keys(train[mix.column]) == mix.value
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


def _apply_numeric(batch: pd.DataFrame, change: NumericChange) -> None:
    spec = BY_NAME[change.column]
    values = pd.to_numeric(batch[change.column], errors="coerce").to_numpy(dtype=np.float64)
    values = values + change.amount if change.op == "+" else values * change.amount
    low = -np.inf if spec.minimum is None else spec.minimum
    high = np.inf if spec.maximum is None else spec.maximum
    values = np.clip(values, low, high)
    if spec.kind == "int":
        rounded = np.clip(np.round(values), low, high)
        if np.isnan(rounded).any():
            batch[change.column] = pd.array(rounded, dtype="Int64")
        else:
            batch[change.column] = rounded.astype(np.int64)
    else:
        batch[change.column] = np.round(values, _FLOAT_DECIMALS)


def make_batch(
    train: pd.DataFrame, rows: int, spec: DriftSpec | None, seed: int, start_id: int
) -> pd.DataFrame:
    """``rows`` passengers resampled (with replacement) from ``train``, with ids ``start_id, start_id+1 ...``.

    ``spec`` (None = no drift) distorts the batch: category mixes choose which rows are drawn (the rows stay
    whole, so labels remain plausible); numeric shifts/scales and blanked values are applied afterwards and
    clipped to the schema's ranges. Same inputs and seed give the same batch. Columns keep ``train``'s order;
    ``Survived`` is kept when present.
    """
    if rows < 1:
        raise ValueError(f"a batch needs at least one row, got rows={rows}")
    if len(train) == 0:
        raise ValueError("cannot resample from an empty training frame")
    if start_id < 1:
        raise ValueError(f"start_id must be at least 1 (the schema's minimum PassengerId), got {start_id}")
    absent = [c for c in COLUMN_NAMES if BY_NAME[c].required and c not in train.columns]
    if absent:
        raise ValueError(f"the training frame lacks required column(s): {', '.join(absent)}")
    spec = spec or DriftSpec()
    rng = np.random.default_rng(seed)
    weights = mix_weights(train, spec.mixes)
    picked = rng.choice(len(train), size=rows, replace=True, p=weights if spec.mixes else None)
    batch = train.iloc[picked].reset_index(drop=True)
    batch[ID_COLUMN] = np.arange(start_id, start_id + rows, dtype=np.int64)
    for change in spec.numeric:
        if change.column not in batch.columns:
            raise ValueError(f"cannot apply {change}: the data has no column {change.column!r}")
        _apply_numeric(batch, change)
    for blank in spec.missing:
        count = round(blank.share * rows)
        if count == 0:
            continue
        where = rng.choice(rows, size=count, replace=False)
        if blank.column not in batch.columns:
            batch[blank.column] = None
        column = batch[blank.column]
        if pd.api.types.is_numeric_dtype(column):
            values = column.to_numpy(dtype=np.float64, copy=True)
            values[where] = np.nan
            batch[blank.column] = values
        else:
            objects = column.to_numpy(dtype=object, copy=True)
            objects[where] = None
            batch[blank.column] = objects
    order = [c for c in train.columns if c in batch.columns]
    return batch[order]


def write_batch(df: pd.DataFrame, path: Path | str) -> Path:
    """Write a batch as CSV (schema column order, label last), atomically; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = [c for c in (*COLUMN_NAMES, LABEL_COLUMN) if c in df.columns]
    columns += [c for c in df.columns if c not in columns]
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as out:
            df[columns].to_csv(out, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    logger.info("wrote %d simulated passengers to %s", len(df), path)
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
    test_csv: Path | str, rows: int, spec: DriftSpec | None, seed: int, start_id: int | None = None
) -> list[dict[str, Any]]:
    """``rows`` passengers drawn from an (unlabelled) CSV as JSON-ready dicts (NaN → None) to send to the API.

    Ids continue after the file's largest PassengerId unless ``start_id`` is given. Columns are the schema's
    raw columns (a label column in the file is dropped: the API does not take it).
    """
    source = pd.read_csv(test_csv)
    if start_id is None:
        start_id = int(pd.to_numeric(source[ID_COLUMN]).max()) + 1 if ID_COLUMN in source.columns else 1
    batch = make_batch(source, rows, spec, seed, start_id)
    columns = [c for c in COLUMN_NAMES if c in batch.columns]
    records = batch[columns].to_dict(orient="records")
    return [{k: _json_value(v) for k, v in record.items()} for record in records]
