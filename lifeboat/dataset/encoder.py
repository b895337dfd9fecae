"""THE encoder of a dataset spec: fitted once on the training rows, run by Spark and by serving alike.

:func:`fit` learns the statistics the spec asks for (group medians, fill values, one-hot vocabularies, the
training ranges and categories of the drift alerts); :func:`encode` turns raw rows into the model input
matrix (float32, columns :attr:`FittedEncoder.feature_names`). Training calls it inside Spark
(``mapInPandas``) and serving on the request's rows: one code path, column-wise (see
:mod:`lifeboat.dataset.transforms`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from lifeboat.dataset import transforms
from lifeboat.dataset.alerts import ROW_BY_ROW, AlertPlan, compile_alerts, row_alerts, sentence
from lifeboat.dataset.fitted import ENCODING_VERSION, EncoderError, FittedEncoder, FittedStatistics
from lifeboat.dataset.models import (
    NUMBER_TYPES,
    Bucket,
    Clip,
    DatasetSpec,
    Derive,
    Feature,
    GroupImpute,
    Indicator,
    Log1p,
    MissingIndicator,
    Product,
    Ratio,
    RegexExtract,
    Sum,
    TokenCount,
    onehot_names,
)
from lifeboat.dataset.rows import RowPlan, UseColumns, compile_rows
from lifeboat.dataset.spec import DatasetSpecError, DeriveFunction, case_clashes, load_derive_function

__all__ = [
    "ENCODING_VERSION",
    "EncoderError",
    "FittedEncoder",
    "FittedStatistics",
    "Rows",
    "derive_columns",
    "encode",
    "encode_with_alerts",
    "fit",
]

logger = logging.getLogger(__name__)

#: Raw rows: a pandas DataFrame, a mapping of column name to equal-length sequences, or a list of records.
Rows: TypeAlias = pd.DataFrame | Mapping[str, Any] | Sequence[Mapping[str, Any]]


# --- reading raw rows ---------------------------------------------------------------------------------


def _as_columns(rows: Rows) -> tuple[Mapping[str, Any], int]:
    if isinstance(rows, pd.DataFrame):
        return rows, len(rows)
    if isinstance(rows, Mapping):
        lengths = {len(v) for v in rows.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns of different lengths: {sorted(lengths)}")
        return rows, lengths.pop() if lengths else 0
    records = list(rows)
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    return {name: [r.get(name) for r in records] for name in names}, len(records)


def _read(spec: DatasetSpec, columns: Mapping[str, Any], n: int) -> tuple[dict[str, transforms.Values], int]:
    out: dict[str, transforms.Values] = {}
    for column in spec.columns:
        if column.role != "feature":
            continue
        values = columns.get(column.name)
        if column.type in NUMBER_TYPES:
            out[column.name] = transforms.read_numbers(values, n)
        else:
            out[column.name] = transforms.read_text(values, n)
    return out, n


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@cache
def _hook(path: str) -> DeriveFunction:
    return load_derive_function(path)


# --- the pipeline: derived columns, then the matrix ---------------------------------------------------


def _derive(
    spec: DatasetSpec, stats: FittedStatistics, cols: dict[str, transforms.Values], n: int, learn: bool
) -> None:
    """Add every derived column to ``cols`` in spec order (learning group statistics first when fitting)."""
    for step in spec.derived:
        if isinstance(step, Derive):
            cols.update(_run_hook(spec, step, cols, n))
            continue
        name = step.name
        if isinstance(step, MissingIndicator):
            cols[name] = transforms.indicator(transforms.is_missing(cols[step.column]))
        elif isinstance(step, Indicator):
            cols[name] = transforms.indicator(transforms.when_mask(cols, step.when, n))
        elif isinstance(step, Ratio):
            cols[name] = transforms.ratio(_num(cols, step.numerator), _num(cols, step.denominator))
        elif isinstance(step, Sum):
            cols[name] = transforms.total([_num(cols, c) for c in step.columns], step.constant)
        elif isinstance(step, Product):
            cols[name] = transforms.product([_num(cols, c) for c in step.columns])
        elif isinstance(step, Log1p):
            cols[name] = transforms.log1p(_num(cols, step.column))
        elif isinstance(step, Clip):
            cols[name] = transforms.clip(_num(cols, step.column), step.min, step.max)
        elif isinstance(step, Bucket):
            cols[name] = transforms.bucket(_num(cols, step.column), step.boundaries)
        elif isinstance(step, TokenCount):
            cols[name] = transforms.token_count(_text(cols, step.column), step.separator)
        elif isinstance(step, RegexExtract):
            found = transforms.regex_extract(
                _text(cols, step.column), _compiled(step.pattern), step.group, step.mapping, step.unmapped
            )
            cols[name] = transforms.apply_rules(found, cols, step.fallback)
        elif isinstance(step, GroupImpute):
            values = _num(cols, step.column)
            if learn:
                keys = transforms.category_keys(cols[step.by])
                groups = _vocabulary_of(spec, step.by)
                table, overall = transforms.group_statistic(values, keys, groups, step.statistic)
                stats.group_tables[name] = table
                stats.group_overall[name] = step.default if overall is None else overall
            cols[name] = transforms.group_fill(
                values, cols[step.by], stats.group_tables[name], stats.group_overall[name]
            )


def _num(cols: Mapping[str, transforms.Values], name: str) -> np.ndarray:
    values = cols[name]
    assert isinstance(values, np.ndarray), name  # checked by the spec's type rules
    return values


def _text(cols: Mapping[str, transforms.Values], name: str) -> transforms.Text:
    values = cols[name]
    return transforms.category_keys(values) if isinstance(values, np.ndarray) else values


def _run_hook(
    spec: DatasetSpec, step: Derive, cols: dict[str, transforms.Values], n: int
) -> dict[str, transforms.Values]:
    """Call a ``derive`` function; what it returns is read like raw columns of the declared types."""
    function = step.derive.function
    result = _hook(function)(dict(cols))
    out: dict[str, transforms.Values] = {}
    where = f"spec {spec.name!r}"
    key = f"derived[{spec.derived.index(step)}].derive"
    for name, kind in step.derive.outputs.items():
        if name not in result:
            raise DatasetSpecError(where, key, f"{function} did not return the output {name!r}")
        values = result[name]
        out[name] = (
            transforms.read_numbers(values, n) if kind in NUMBER_TYPES else transforms.read_text(values, n)
        )
        if len(out[name]) != n:
            raise DatasetSpecError(where, key, f"{function} gave {len(out[name])} rows of {name!r}, not {n}")
    return out


def _vocabulary_of(spec: DatasetSpec, name: str) -> list[str] | None:
    """The declared vocabulary of a raw or regex-derived column, as category keys."""
    column = spec.columns_by_name.get(name)
    if column is not None:
        return column.vocabulary_keys
    for step in spec.derived:
        if isinstance(step, RegexExtract) and step.name == name:
            return step.vocabulary
    return None


def _onehot_setup(
    spec: DatasetSpec, stats: FittedStatistics, feature: Feature, keys: transforms.Text, learn: bool
) -> tuple[list[str], int]:
    """The vocabulary of a one-hot feature and the code of unknown or missing values (-1 = none)."""
    name = feature.name or feature.prefix or feature.column
    if learn:
        declared = (
            [str(v) for v in feature.values]
            if feature.values is not None
            else _vocabulary_of(spec, feature.column)
        )
        stats.vocabularies[name] = (
            declared if declared is not None else sorted({k for k in keys if k is not None})
        )
        if feature.unknown == "most_frequent":
            found = transforms.mode(keys)
            stats.modes[name] = found if found is not None else feature.default
    vocabulary = stats.vocabularies[name]
    if feature.unknown == "other":
        return vocabulary, len(vocabulary)
    if feature.unknown == "most_frequent":
        mode = stats.modes.get(name)
        return vocabulary, vocabulary.index(mode) if mode in vocabulary else -1
    return vocabulary, -1


def _assemble(
    spec: DatasetSpec, stats: FittedStatistics, cols: Mapping[str, transforms.Values], n: int, learn: bool
) -> tuple[np.ndarray, list[str]]:
    """The float32 model input matrix and its column names."""
    blocks: list[np.ndarray] = []
    names: list[str] = []
    for feature in spec.features:
        if feature.encoding == "onehot":
            keys = _text(cols, feature.column)
            vocabulary, unknown_code = _onehot_setup(spec, stats, feature, keys, learn)
            width = len(vocabulary) + (feature.unknown == "other")
            blocks.append(transforms.onehot(keys, vocabulary, unknown_code, width))
            prefix = feature.prefix or feature.name or feature.column
            names.extend(onehot_names(prefix, vocabulary, feature.unknown == "other"))
            continue
        values = _num(cols, feature.column)
        name = feature.name or feature.column
        if feature.impute != "none":
            if learn:
                stats.fills[name] = _fill_value(feature, values)
            values = np.where(np.isnan(values), stats.fills[name], values)
        blocks.append(values[:, None])
        names.append(name)
    matrix = np.empty((n, sum(b.shape[1] for b in blocks)), dtype=np.float32)
    j = 0
    with np.errstate(over="ignore"):  # float32 has no room for values above ~3.4e38: inf, as a cast gives
        for block in blocks:
            matrix[:, j : j + block.shape[1]] = block
            j += block.shape[1]
    return matrix, names


def _fill_value(feature: Feature, values: np.ndarray) -> float:
    if feature.impute == "constant":
        assert feature.fill_value is not None
        return feature.fill_value
    present = pd.Series(values).dropna()
    if present.empty:
        return feature.fill_value if feature.fill_value is not None else 0.0
    return float(present.median() if feature.impute == "median" else present.mean())


def _reference(spec: DatasetSpec, stats: FittedStatistics, cols: Mapping[str, transforms.Values]) -> None:
    """Training ranges and categories of the columns the drift alerts check."""
    for name in spec.alert_ranges:
        values = _num(cols, name)
        if (~np.isnan(values)).any():
            stats.ranges[name] = (float(np.nanmin(values)), float(np.nanmax(values)))
    for name in spec.alert_categories:
        stats.categories[name] = sorted({k for k in _text(cols, name) if k is not None})


# --- public API ---------------------------------------------------------------------------------------


def fit(spec: DatasetSpec, train: Rows) -> FittedEncoder:
    """Learn the spec's statistics from the (validated, raw) training rows.

    Raises :class:`EncoderError` when the learned one-hot columns cannot all exist side by side in Spark.
    """
    cols, n = _read(spec, *_as_columns(train))
    if n == 0:
        raise ValueError("cannot fit an encoder on zero training rows")
    stats = FittedStatistics(rows=n)
    _derive(spec, stats, cols, n, learn=True)
    _, names = _assemble(spec, stats, cols, n, learn=True)
    clashes = case_clashes(names)
    if clashes:
        raise EncoderError(
            f"{spec.name}: feature columns {clashes[0][0]!r} and {clashes[0][1]!r} (values learned from the "
            "training rows) name the same Spark column (names ignore case, and characters other than "
            "letters, digits and _ become _): list the feature's values in the spec"
        )
    _reference(spec, stats, cols)
    logger.info("fitted encoder of %s on %d rows: %d features", spec.name, n, len(names))
    return FittedEncoder(spec=spec, statistics=stats, feature_names=tuple(names))


def _plans(fitted: FittedEncoder) -> tuple[RowPlan | None, AlertPlan]:
    """The fitted spec compiled for rows and alerts, once per encoder."""
    plans = fitted._plan
    if "rows" not in plans:
        plans["rows"] = compile_rows(fitted.spec, fitted.statistics)
        plans["alerts"] = compile_alerts(fitted.spec, fitted.statistics)
    return plans["rows"], plans["alerts"]


def _encode_rows(plan: RowPlan, rows: Rows, alerts: AlertPlan | None) -> tuple[np.ndarray, list[str]] | None:
    """The few-rows path (see :mod:`lifeboat.dataset.rows`); None when the rows need the column-wise path
    (more than ``ROW_BY_ROW`` rows, or values whose IEEE result Python refuses to compute)."""
    if isinstance(rows, pd.DataFrame):
        if len(rows) > ROW_BY_ROW:
            return None
        rows = {c: rows[c].tolist() for c in rows.columns}
    if isinstance(rows, Mapping):
        columns, n = _as_columns(rows)
        if n > ROW_BY_ROW:
            return None
        records = (plan.read(columns, i) for i in range(n))
    else:
        if len(rows) > ROW_BY_ROW:
            return None
        records = (plan.read_record(record) for record in rows)
    encoded: list[list[float]] = []
    sentences: list[str] = []
    try:
        for row in records:
            encoded.append(plan.encode(row))
            if alerts is not None:
                sentences.append(sentence(alerts, row))
    except (UseColumns, ArithmeticError, TypeError, ValueError):  # odd values: the column-wise path
        return None
    with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, as in the column-wise path
        return plan.matrix(encoded), sentences


def _run(fitted: FittedEncoder, rows: Rows, with_alerts: bool) -> tuple[np.ndarray, list[str]]:
    row_plan, alert_plan = _plans(fitted)
    if row_plan is not None:
        done = _encode_rows(row_plan, rows, alert_plan if with_alerts else None)
        if done is not None:
            return done
    columns, n = _as_columns(rows)
    cols, n = _read(fitted.spec, columns, n)
    _derive(fitted.spec, fitted.statistics, cols, n, learn=False)
    matrix, _ = _assemble(fitted.spec, fitted.statistics, cols, n, learn=False)
    return matrix, row_alerts(alert_plan, cols, n) if with_alerts else []


def encode(fitted: FittedEncoder, rows: Rows) -> np.ndarray:
    """Raw rows -> the model input matrix (float32, one column per ``fitted.feature_names``).

    ``rows``: a DataFrame, a mapping of column name to equal-length sequences, or a list of records (dicts).
    """
    return _run(fitted, rows, with_alerts=False)[0]


def encode_with_alerts(fitted: FittedEncoder, rows: Rows) -> tuple[np.ndarray, list[str]]:
    """:func:`encode` plus one drift sentence per row (``NO_DRIFT`` when nothing is off)."""
    return _run(fitted, rows, with_alerts=True)


def derive_columns(spec: DatasetSpec, rows: Rows, names: Sequence[str]) -> dict[str, transforms.Values]:
    """The derived columns ``names`` of raw ``rows``, computed as :func:`fit` computes them.

    Group statistics (``group_impute``) are learned from ``rows`` themselves: this describes data (the drift
    report), it does not encode it for a model.
    """
    cols, n = _read(spec, *_as_columns(rows))
    _derive(spec, FittedStatistics(rows=n), cols, n, learn=True)
    missing = [name for name in names if name not in cols]
    if missing:
        raise KeyError(f"{spec.name}: no derived column {missing[0]!r}")
    return {name: cols[name] for name in names}
