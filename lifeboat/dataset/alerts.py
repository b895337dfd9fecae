"""Per-row drift sentences: what in a row lies outside the training data (the encoder's second output).

One sentence per row, its parts joined by ``"; "`` in this order: for each range column (``alerts.ranges``)
either its missing-value sentence or "outside the training range"; then each category never seen in training
(``alerts.categories``); then the missing-value sentences of the other imputed columns (``alerts.missing``).
A missing-value sentence comes from the ``missing_alert`` template of the step that imputes the column.
Rows are checked in bulk; only flagged rows get a sentence written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lifeboat.dataset import transforms
from lifeboat.dataset.models import NUMBER_TYPES, DatasetSpec, GroupImpute, RegexExtract

if TYPE_CHECKING:
    from lifeboat.dataset.fitted import FittedStatistics

NO_DRIFT = "No drift detected"


@dataclass(frozen=True)
class _Imputer:
    """Where a missing value of ``column`` is filled, and how the row's sentence names it."""

    column: str
    template: str
    output: str | None = None  # derived column holding the value used
    by: str | None = None  # group column (group_impute)
    constant: Any = None  # value used (feature imputation)


def imputers(spec: DatasetSpec, stats: FittedStatistics) -> dict[str, _Imputer]:
    """Raw column -> the step whose ``missing_alert`` reports its missing values (the first one found)."""
    found: dict[str, _Imputer] = {}
    for step in spec.derived:
        if isinstance(step, GroupImpute | RegexExtract) and step.missing_alert:
            by = step.by if isinstance(step, GroupImpute) else None
            found.setdefault(step.column, _Imputer(step.column, step.missing_alert, step.name, by))
    for feature in spec.features:
        if feature.missing_alert:
            name = feature.name or feature.prefix or feature.column
            value = stats.fills.get(name, stats.modes.get(name))
            found.setdefault(feature.column, _Imputer(feature.column, feature.missing_alert, constant=value))
    return found


def fmt(value: float) -> str:
    """A number as the sentences write it (``%g``)."""
    return f"{value:g}"


def _span(lo_hi: tuple[float, float] | None) -> str:
    return f"{fmt(lo_hi[0])}–{fmt(lo_hi[1])}" if lo_hi is not None else "unknown"


#: Up to this many rows, every row's sentence is written without the bulk pre-check (cheaper).
ROW_BY_ROW = 16


@dataclass(frozen=True)
class AlertPlan:
    """The checks of a fitted spec, resolved once: ranges, categories and late missing-value sentences."""

    ranges: tuple[tuple[str, float, float, str, _Imputer | None], ...]
    categories: tuple[tuple[str, bool, list[str], frozenset[str]], ...]
    late: tuple[tuple[str, _Imputer], ...]
    numeric: frozenset[str]
    ranges_text: dict[str, str]

    @property
    def columns(self) -> set[str]:
        """Every column a sentence reads."""
        names = {c for c, *_ in self.ranges} | {c for c, *_ in self.categories} | {c for c, _ in self.late}
        for imputer in [i for *_, i in self.ranges if i is not None] + [i for _, i in self.late]:
            names.update(n for n in (imputer.output, imputer.by) if n is not None)
        return names


def compile_alerts(spec: DatasetSpec, stats: FittedStatistics) -> AlertPlan:
    """Resolve the spec's alert settings against the fitted statistics."""
    by_column = imputers(spec, stats)
    types = spec.column_types()
    ranges = tuple(
        (c, *stats.ranges[c], _span(stats.ranges[c]), by_column.get(c))
        for c in spec.alert_ranges
        if c in stats.ranges
    )
    categories = tuple(
        (c, types[c] in NUMBER_TYPES, stats.categories.get(c, []), frozenset(stats.categories.get(c, [])))
        for c in spec.alert_categories
    )
    order = spec.alerts.missing if spec.alerts.missing is not None else list(by_column)
    late = tuple((c, by_column[c]) for c in order if c in by_column and c not in spec.alert_ranges)
    numeric = frozenset(c for c, t in types.items() if t in NUMBER_TYPES)
    ranges_text = {c: _span(stats.ranges.get(c)) for c in types}
    return AlertPlan(ranges, categories, late, numeric, ranges_text)


def _key(plan: AlertPlan, column: str, value: Any) -> str | None:
    if column not in plan.numeric:
        return value
    return None if value != value else transforms.integer_key(value)


def _missing_sentence(plan: AlertPlan, imputer: _Imputer, row: Mapping[str, Any]) -> str:
    value = row[imputer.output] if imputer.output is not None else imputer.constant
    if isinstance(value, float):
        value = fmt(value)
    group = _key(plan, imputer.by, row[imputer.by]) if imputer.by is not None else None
    return imputer.template.format(
        column=imputer.column, value=value, group=group, range=plan.ranges_text[imputer.column]
    )


def sentence(plan: AlertPlan, row: Mapping[str, Any]) -> str:
    """The drift sentence of one row (numbers as floats with NaN, text as str or None)."""
    parts: list[str] = []
    for column, lo, hi, span, imputer in plan.ranges:
        value = row[column]
        if value != value:
            if imputer is not None:
                parts.append(_missing_sentence(plan, imputer, row))
        elif value < lo or value > hi:
            parts.append(f"{column} {fmt(value)} is outside the training range {span}")
    for column, numeric, seen, known in plan.categories:
        key = row[column] if not numeric else _key(plan, column, row[column])
        if key is not None and key not in known:
            parts.append(f"{column} {key!r} was never seen in training (seen: {', '.join(seen)})")
    for column, imputer in plan.late:
        value = row[column]
        if value is None or value != value:
            parts.append(_missing_sentence(plan, imputer, row))
    return "; ".join(parts) if parts else NO_DRIFT


def _flagged(plan: AlertPlan, cols: Mapping[str, transforms.Values], n: int) -> np.ndarray:
    """Rows with anything to say, found column-wise."""
    flagged = np.zeros(n, dtype=bool)
    for column, lo, hi, _, imputer in plan.ranges:
        values = cols[column]
        assert isinstance(values, np.ndarray)
        flagged |= (values < lo) | (values > hi)
        if imputer is not None:
            flagged |= np.isnan(values)
    for column, _, _, known in plan.categories:
        flagged |= transforms.unseen(cols[column], known)
    for column, _ in plan.late:
        flagged |= transforms.is_missing(cols[column])
    return flagged


def _as_list(values: transforms.Values) -> list[Any]:
    return values.tolist() if isinstance(values, np.ndarray) else values


def row_alerts(plan: AlertPlan, cols: Mapping[str, transforms.Values], n: int) -> list[str]:
    """The drift sentence of every row of column-wise data (``NO_DRIFT`` when nothing is off)."""
    rows = range(n) if n <= ROW_BY_ROW else np.flatnonzero(_flagged(plan, cols, n)).tolist()
    sentences = [NO_DRIFT] * n
    if not rows:
        return sentences
    needed = {c: _as_list(cols[c]) for c in plan.columns}
    for i in rows:
        sentences[i] = sentence(plan, {c: v[i] for c, v in needed.items()})
    return sentences
