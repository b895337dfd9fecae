"""Per-row drift sentences: what in a row lies outside the training data (the encoder's second output).

One sentence per row, its parts joined by ``"; "`` in this order: for each range column (``alerts.ranges``)
either its missing-value sentence or "outside the training range"; then each category never seen in training
(``alerts.categories``); then the missing-value sentences of the other imputed columns (``alerts.missing``).
A missing-value sentence comes from the ``missing_alert`` template of the step that imputes the column.
Rows are checked in bulk; only flagged rows get a sentence written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lifeboat.dataset import transforms as T
from lifeboat.dataset.models import DatasetSpec, GroupImpute, RegexExtract

if TYPE_CHECKING:
    from lifeboat.dataset.encoder import FittedStatistics

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


def _value(imputer: _Imputer, cols: Mapping[str, T.Values], i: int) -> Any:
    value = cols[imputer.output][i] if imputer.output is not None else imputer.constant
    if isinstance(value, float | np.floating):
        return fmt(float(value))
    return value


def row_alerts(
    spec: DatasetSpec, stats: FittedStatistics, cols: Mapping[str, T.Values], n: int
) -> list[str]:
    """The drift sentence of every row (``NO_DRIFT`` when nothing is off)."""
    ranges = [c for c in spec.alert_ranges if c in stats.ranges]
    by_column = imputers(spec, stats)
    missing_order = spec.alerts.missing if spec.alerts.missing is not None else list(by_column)
    late_missing = [c for c in missing_order if c in by_column and c not in spec.alert_ranges]
    flagged = np.zeros(n, dtype=bool)
    out_of_range: dict[str, np.ndarray] = {}
    for column in ranges:
        values = T.read_numbers(cols[column], n) if not isinstance(cols[column], np.ndarray) else cols[column]
        lo, hi = stats.ranges[column]
        out_of_range[column] = (values < lo) | (values > hi)
        flagged |= out_of_range[column]
        if column in by_column:
            flagged |= np.isnan(values)
    keys: dict[str, T.Text] = {}
    for column in spec.alert_categories:
        keys[column] = T.category_keys(cols[column])
        seen = set(stats.categories.get(column, ()))
        flagged |= np.fromiter((k is not None and k not in seen for k in keys[column]), dtype=bool, count=n)
    for column in late_missing:
        flagged |= T.is_missing(cols[column])
    sentences = [NO_DRIFT] * n
    for i in np.flatnonzero(flagged).tolist():
        parts: list[str] = []
        for column in ranges:
            value = float(cols[column][i])  # type: ignore[arg-type]
            if math.isnan(value):
                if column in by_column:
                    parts.append(_missing_sentence(by_column[column], stats, cols, i))
            elif out_of_range[column][i]:
                parts.append(f"{column} {fmt(value)} is outside the training range {_span(stats.ranges[column])}")
        for column, column_keys in keys.items():
            key = column_keys[i]
            seen_list = stats.categories.get(column, [])
            if key is not None and key not in seen_list:
                parts.append(f"{column} {key!r} was never seen in training (seen: {', '.join(seen_list)})")
        for column in late_missing:
            if cols[column][i] is None or (isinstance(cols[column], np.ndarray) and np.isnan(cols[column][i])):
                parts.append(_missing_sentence(by_column[column], stats, cols, i))
        sentences[i] = "; ".join(parts) if parts else NO_DRIFT
    return sentences


def _missing_sentence(
    imputer: _Imputer, stats: FittedStatistics, cols: Mapping[str, T.Values], i: int
) -> str:
    group = T.category_keys(T.take(cols[imputer.by], [i]))[0] if imputer.by is not None else None
    return imputer.template.format(
        column=imputer.column,
        value=_value(imputer, cols, i),
        group=group,
        range=_span(stats.ranges.get(imputer.column)),
    )
