"""The encoder's fast path for a few rows: the same pipeline, one row at a time on Python floats.

Serving encodes one row per request, and for a few rows numpy's fixed cost per call is most of the work.
:func:`compile_rows` turns a fitted spec once into small per-row functions that perform exactly the float64
operations of the column-wise transforms (IEEE sums, products, division and comparisons; ``np.log1p`` and
``np.clip`` themselves), then one conversion to float32, so both paths give the same matrix bit for bit (a
test checks it). Values Python refuses where numpy answers inf or NaN raise :class:`UseColumns` and the
caller takes the column-wise path.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lifeboat.dataset import transforms
from lifeboat.dataset.models import (
    NUMBER_TYPES,
    Bucket,
    Clip,
    Condition,
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
    category_key,
)

if TYPE_CHECKING:
    from lifeboat.dataset.fitted import FittedStatistics

Row = dict[str, Any]
RowFunction = Callable[[Row], Any]


def _comparison(column: str, op: str, x: Any) -> RowFunction:
    """``row[column] <op> x`` as one small function (no operator indirection: this runs per row)."""
    if op == "eq":
        return lambda r: r[column] == x
    if op == "ne":
        return lambda r: r[column] != x
    if op == "lt":
        return lambda r: r[column] < x
    if op == "le":
        return lambda r: r[column] <= x
    if op == "gt":
        return lambda r: r[column] > x
    return lambda r: r[column] >= x


class UseColumns(Exception):  # noqa: N818 - a signal, not an error
    """This row needs the column-wise path (a value whose IEEE result Python refuses to compute)."""


@dataclass(frozen=True)
class RowPlan:
    """A fitted spec compiled for one row at a time."""

    numbers: tuple[str, ...]
    texts: tuple[str, ...]
    derived: tuple[tuple[str, RowFunction], ...]
    features: tuple[RowFunction, ...]
    width: int

    def read(self, columns: Mapping[str, Any], i: int) -> Row:
        """Row ``i`` of raw columns, numbers as float (NaN = missing), text stripped (None = missing)."""
        row: Row = {}
        for name in self.numbers:
            values = columns.get(name)
            row[name] = transforms.number_value(values[i]) if values is not None else math.nan
        for name in self.texts:
            values = columns.get(name)
            row[name] = transforms.text_value(values[i]) if values is not None else None
        return row

    def read_record(self, record: Mapping[str, Any]) -> Row:
        """:meth:`read` of one record (a dict of raw values; absent keys are missing values)."""
        row: Row = {}
        for name in self.numbers:
            v = record.get(name)
            row[name] = v if v.__class__ is float else transforms.number_value(v)
        for name in self.texts:
            v = record.get(name)
            row[name] = (v.strip() or None) if v.__class__ is str else transforms.text_value(v)
        return row

    def encode(self, row: Row) -> list[float]:
        """Add the derived columns to ``row`` and return its features (float64 values, in order)."""
        for name, function in self.derived:
            row[name] = function(row)
        out: list[float] = []
        for function in self.features:
            out.extend(function(row))
        return out

    def matrix(self, rows: Sequence[list[float]]) -> np.ndarray:
        """Rows of float64 features as the float32 model input matrix."""
        return np.array(rows, dtype=np.float32).reshape(len(rows), self.width)


def _is_missing(value: Any) -> bool:
    return value is None or value != value


def _missing_test(column: str, want: bool) -> RowFunction:
    return lambda r: _is_missing(r[column]) == want


def _membership(column: str, operand: list[Any], numeric: bool) -> RowFunction:
    if numeric:
        floats = [float(v) for v in operand]
        return lambda r: any(r[column] == f for f in floats)
    keys = {category_key(v) for v in operand}
    return lambda r: r[column] is not None and r[column] in keys


def _predicate(column: str, condition: Condition, numeric: bool) -> RowFunction:
    """A condition on one row, as :func:`transforms.condition_mask` evaluates it on a column."""
    tests: list[RowFunction] = []
    for op, operand in condition.model_dump(exclude_none=True).items():
        if op == "missing":
            tests.append(_missing_test(column, bool(operand)))
        elif op == "isin":
            tests.append(_membership(column, operand, numeric))
        else:
            if not numeric and op not in ("eq", "ne"):
                raise ValueError(f"{op} compares numbers, not text")
            tests.append(_comparison(column, op, float(operand) if numeric else category_key(operand)))
    if len(tests) == 1:
        return tests[0]
    return lambda r: all(t(r) for t in tests)


def _when(when: Mapping[str, Condition], types: Mapping[str, str]) -> RowFunction:
    tests = [_predicate(c, cond, types[c] in NUMBER_TYPES) for c, cond in when.items()]
    if not tests:
        return lambda r: True
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        first, second = tests
        return lambda r: first(r) and second(r)
    return lambda r: all(t(r) for t in tests)


def _key(value: Any, numeric: bool) -> str | None:
    if not numeric:
        return value
    return None if value != value else transforms.integer_key(value)


def _divide(a: float, b: float) -> float:
    if b == 0.0:
        raise UseColumns("division by zero")
    return a / b


def _log1p(value: float) -> float:
    if value > -1.0 or value != value:
        return float(np.log1p(value))
    raise UseColumns("log1p at or below -1")


def _sum(columns: Sequence[str], constant: float) -> RowFunction:
    def total(r: Row) -> float:
        acc = r[columns[0]]
        for c in columns[1:]:
            acc = acc + r[c]
        return acc + constant

    return total


def _product(columns: Sequence[str]) -> RowFunction:
    def product(r: Row) -> float:
        acc = r[columns[0]]
        for c in columns[1:]:
            acc = acc * r[c]
        return acc

    return product


def _regex(step: RegexExtract, types: Mapping[str, str]) -> RowFunction:
    pattern = re.compile(step.pattern)
    rules = [(_when(rule.when, types), rule.value) for rule in step.fallback]
    column = step.column

    search, group, mapping, unmapped = pattern.search, step.group, step.mapping, step.unmapped

    def extract(r: Row) -> str | None:
        text = r[column]
        match = search(text) if text is not None else None
        if match is not None:  # as transforms.regex_extract
            found = (match.group(group) or "").strip()
            if mapping is None:
                return found
            return mapping.get(found, unmapped if unmapped is not None else found)
        for holds, rule_value in rules:
            if holds(r):
                return rule_value
        return None

    return extract


def _group_impute(step: GroupImpute, stats: FittedStatistics, types: Mapping[str, str]) -> RowFunction:
    table, default = stats.group_tables[step.name], stats.group_overall[step.name]
    column, by, numeric = step.column, step.by, types[step.by] in NUMBER_TYPES

    def impute(r: Row) -> float:
        value = r[column]
        if value == value:
            return value
        key = _key(r[by], numeric)
        return table.get(key, default) if key is not None else default

    return impute


def _derived(step: Any, stats: FittedStatistics, types: Mapping[str, str]) -> RowFunction:
    if isinstance(step, MissingIndicator):
        return lambda r: 1.0 if _is_missing(r[step.column]) else 0.0
    if isinstance(step, Indicator):
        holds = _when(step.when, types)
        return lambda r: 1.0 if holds(r) else 0.0
    if isinstance(step, Ratio):
        return lambda r: _divide(r[step.numerator], r[step.denominator])
    if isinstance(step, Sum):
        return _sum(step.columns, step.constant)
    if isinstance(step, Product):
        return _product(step.columns)
    if isinstance(step, Log1p):
        return lambda r: _log1p(r[step.column])
    if isinstance(step, Clip):
        return lambda r: float(transforms.clip(np.array([r[step.column]]), step.min, step.max)[0])
    if isinstance(step, Bucket):
        return lambda r: float(transforms.bucket(np.array([r[step.column]]), step.boundaries)[0])
    if isinstance(step, TokenCount):
        return lambda r: float(transforms.token_count([r[step.column]], step.separator)[0])
    if isinstance(step, RegexExtract):
        return _regex(step, types)
    if isinstance(step, GroupImpute):
        return _group_impute(step, stats, types)
    raise TypeError(f"no row form for {type(step).__name__}")


def _feature(feature: Feature, stats: FittedStatistics, types: Mapping[str, str]) -> tuple[RowFunction, int]:
    column = feature.column
    if feature.encoding == "numeric":
        name = feature.name or column
        if feature.impute == "none":
            return (lambda r: (r[column],)), 1
        fill = stats.fills[name]
        return (lambda r: (r[column] if r[column] == r[column] else fill,)), 1
    name = feature.name or feature.prefix or column
    vocabulary = stats.vocabularies[name]
    width = len(vocabulary) + (feature.unknown == "other")
    if feature.unknown == "other":
        unknown = len(vocabulary)
    elif feature.unknown == "most_frequent" and stats.modes.get(name) in vocabulary:
        unknown = vocabulary.index(stats.modes[name])  # type: ignore[arg-type]
    else:
        unknown = -1
    codes = {v: j for j, v in enumerate(vocabulary)}
    numeric = types[column] in NUMBER_TYPES
    hot = [[1.0 if j == code else 0.0 for j in range(width)] for code in range(-1, width)]

    def onehot(r: Row) -> list[float]:
        return hot[codes.get(_key(r[column], numeric), unknown) + 1]  # type: ignore[arg-type]

    return onehot, width


def _merge_plain(
    features: Sequence[tuple[Feature, RowFunction, int]],
) -> list[tuple[RowFunction, int]]:
    """Runs of plain numeric features read by one ``itemgetter`` (a C call instead of one call each)."""
    out: list[tuple[RowFunction, int]] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            getter = operator.itemgetter(*run)
            out.append(((lambda r: getter(r)) if len(run) > 1 else (lambda r: (getter(r),)), len(run)))
            run.clear()

    for feature, function, width in features:
        if feature.encoding == "numeric" and feature.impute == "none":
            run.append(feature.column)
            continue
        flush()
        out.append((function, width))
    flush()
    return out


def compile_rows(spec: DatasetSpec, stats: FittedStatistics) -> RowPlan | None:
    """The row form of a fitted spec; None when a step has none (a ``derive`` hook: columns only)."""
    if any(isinstance(step, Derive) for step in spec.derived):
        return None
    types = spec.column_types()
    inputs = [c for c in spec.columns if c.role == "feature"]
    derived = tuple(
        (step.name, _derived(step, stats, types)) for step in spec.derived if not isinstance(step, Derive)
    )
    features = _merge_plain([(f, *_feature(f, stats, types)) for f in spec.features])
    return RowPlan(
        numbers=tuple(c.name for c in inputs if c.type in NUMBER_TYPES),
        texts=tuple(c.name for c in inputs if c.type not in NUMBER_TYPES),
        derived=derived,
        features=tuple(f for f, _ in features),
        width=sum(w for _, w in features),
    )
