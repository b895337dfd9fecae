"""Draft a dataset spec from a table: column types, ranges, vocabularies, roles, features and defaults.

Pure functions on a pandas DataFrame (``lifeboat dataset init`` reads the file and writes the result). Cells
are judged as the validation reads them: as stripped text, an empty cell being missing. The draft is a
starting point to review (docs/bring-your-own-dataset.md says what to check), not a final spec.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from lifeboat.dataset.columns import NAME_PATTERN, ColumnType

logger = logging.getLogger(__name__)

#: A string column is categorical when it has at most this many distinct values...
MAX_CATEGORIES = 50
#: ... and at most this share of the rows; otherwise it is free text.
MAX_CATEGORY_SHARE = 0.05
#: Ranges are the observed min/max widened by this share of the observed span on each side.
RANGE_MARGIN = 0.10
#: Candidate model families and grids of a draft (Titanic's).
DEFAULT_MODELS: dict[str, dict[str, list[float | int]]] = {
    "lr": {"regParam": [0.01, 0.1]},
    "rf": {"numTrees": [50], "maxDepth": [5, 8]},
    "gbt": {"maxIter": [20], "maxDepth": [3], "stepSize": [0.1, 0.3]},
}
DEFAULT_SCHEDULE = "0 2 * * *"
#: Two-valued labels whose positive value is known without asking (compared in lower case).
KNOWN_POSITIVES: tuple[tuple[frozenset[str], str], ...] = (
    (frozenset({"0", "1"}), "1"),
    (frozenset({"false", "true"}), "true"),
    (frozenset({"no", "yes"}), "yes"),
)
_BOOLEAN_WORDS = frozenset({"true", "false"})


class InferenceError(ValueError):
    """The table cannot be described by a spec as asked (unknown column, unusable label, bad names...)."""


@dataclass(frozen=True)
class InferredColumn:
    """One raw column as inferred: its spec entry and a note for the reviewer (may be empty)."""

    spec: dict[str, Any]
    note: str = ""


@dataclass(frozen=True)
class Draft:
    """A drafted spec (plain data, in the key order of docs/dataset-spec.md) and per-column review notes."""

    spec: dict[str, Any]
    notes: dict[str, str] = field(default_factory=dict)


def cells(values: pd.Series) -> pd.Series:
    """The non-missing cells of a column as stripped strings (empty strings and NaN/None are missing)."""
    present = values.dropna().map(lambda v: str(v).strip())
    return present[present != ""]


def _numbers(text: pd.Series) -> pd.Series | None:
    """The cells as floats when every one is a finite number, else None."""
    numbers = pd.to_numeric(text, errors="coerce")
    if numbers.isna().any() or not all(math.isfinite(v) for v in numbers):
        return None
    return numbers.astype(float)


def column_type(
    values: pd.Series,
    rows: int,
    max_categories: int = MAX_CATEGORIES,
    max_share: float = MAX_CATEGORY_SHARE,
) -> ColumnType:
    """The spec type of a column: boolean (true/false), integer, numeric, categorical (a string column with
    at most ``max_categories`` distinct values and at most ``max_share`` of ``rows``) or text."""
    text = cells(values)
    if text.empty:
        return "text"
    if set(text.str.lower()) <= _BOOLEAN_WORDS:
        return "boolean"
    numbers = _numbers(text)
    if numbers is not None:
        return "integer" if bool((numbers % 1 == 0).all()) else "numeric"
    distinct = text.nunique()
    return "categorical" if distinct <= max_categories and distinct <= max_share * rows else "text"


def _outward(value: float, step: float, up: bool) -> float:
    """``value`` rounded to a multiple of ``step``, away from the data."""
    scaled = value / step
    rounded = (math.ceil(scaled) if up else math.floor(scaled)) * step
    return round(rounded, 12)


def widened_range(
    low: float, high: float, integer: bool, margin: float = RANGE_MARGIN
) -> dict[str, int | float]:
    """``{min, max}`` around the observed ``[low, high]``: widened by ``margin`` of the span on each side
    (by ``margin`` of the value, or 1, when the span is 0), rounded outwards (integers for integer columns,
    three significant digits of the span otherwise), and never below 0 when the data is not negative."""
    span = high - low
    pad = margin * span if span > 0 else (margin * abs(low) or 1.0)
    lo, hi = low - pad, high + pad
    if low >= 0:
        lo = max(lo, 0.0)
    if integer:
        return {"min": math.floor(lo), "max": math.ceil(hi)}
    step = 10.0 ** (math.floor(math.log10(hi - lo)) - 2)
    return {"min": min(_outward(lo, step, up=False), low), "max": max(_outward(hi, step, up=True), high)}


def infer_column(name: str, values: pd.Series, rows: int) -> InferredColumn:
    """The spec entry of one feature column (type, nullability, range or vocabulary) and a review note."""
    kind = column_type(values, rows)
    text = cells(values)
    entry: dict[str, Any] = {"name": name, "type": kind}
    missing = rows - len(text)
    if missing:
        entry["nullable"] = True
    note = f"{missing} of {rows} rows missing" if missing else ""
    if kind in ("integer", "numeric"):
        numbers = pd.to_numeric(text).astype(float)
        entry["range"] = widened_range(float(numbers.min()), float(numbers.max()), integer=kind == "integer")
    elif kind == "categorical":
        entry["vocabulary"] = sorted(set(text))
    elif kind == "text":
        entry["role"] = "ignored"
        why = "always empty" if text.empty else f"{text.nunique()} distinct values in {rows} rows"
        note = "; ".join(
            filter(None, [note, f"text ({why}): ignored; derive features from it or make it categorical"])
        )
    return InferredColumn(entry, note)


def _positive_of(values: list[str], positive: str | None, column: str) -> str:
    """The positive label among ``values`` (two stripped strings): ``positive`` if given, else the known one
    of 0/1, true/false or yes/no."""
    if positive is not None:
        wanted = positive.strip()
        matches = [v for v in values if v == wanted or _same_number(v, wanted)]
        if not matches:
            raise InferenceError(f"--positive {positive!r} is not a value of the label {column!r}: {values}")
        return matches[0]
    lowered = {v.lower(): v for v in values}
    for pair, known in KNOWN_POSITIVES:
        if set(lowered) == pair:
            return lowered[known]
    numbers = _numbers(pd.Series(values))
    if numbers is not None and set(numbers) == {0.0, 1.0}:
        return next(v for v in values if float(v) == 1.0)
    raise InferenceError(
        f"the label {column!r} takes the values {values}, not 0/1, true/false or yes/no: "
        "say which one is positive with --positive VALUE"
    )


def _same_number(a: str, b: str) -> bool:
    try:
        return float(a) == float(b)
    except ValueError:
        return False


def infer_label(
    name: str, values: pd.Series, rows: int, positive: str | None = None
) -> tuple[dict[str, Any], Any]:
    """The label's column entry and its positive value (typed as the column is: int, bool or str).

    Refuses a label without exactly two distinct values, naming the column and the values found.
    """
    text = cells(values)
    found = sorted(set(text))
    if len(found) != 2:
        shown = found[:10] + (["..."] if len(found) > 10 else [])
        raise InferenceError(f"the label {name!r} must take exactly two values, found {len(found)}: {shown}")
    chosen = _positive_of(found, positive, name)
    numbers = _numbers(text)
    typed: Any
    vocabulary: list[Any] | None = None
    if set(text.str.lower()) <= _BOOLEAN_WORDS:
        kind, typed = "boolean", chosen.lower() == "true"
    elif numbers is not None and bool((numbers % 1 == 0).all()):
        kind, typed, vocabulary = "integer", int(float(chosen)), sorted({int(v) for v in numbers})
    elif numbers is not None:
        kind, typed = "numeric", float(chosen)
    else:
        kind, typed, vocabulary = "categorical", chosen, found
    entry: dict[str, Any] = {"name": name, "type": kind, "role": "label"}
    if len(text) < rows:
        entry["nullable"] = True
    if vocabulary is not None:
        entry["vocabulary"] = vocabulary
    return entry, typed


def _check_names(frame: pd.DataFrame, label: str, id_column: str | None) -> None:
    columns = [str(c) for c in frame.columns]
    for role, wanted in (("label", label), ("id", id_column)):
        if wanted is not None and wanted not in columns:
            raise InferenceError(
                f"no {role} column {wanted!r} in the data; its columns are: {', '.join(columns)}"
            )
    if id_column is not None and id_column == label:
        raise InferenceError(f"{label!r} cannot be both the label and the id column")
    bad = [c for c in columns if not re.match(NAME_PATTERN, c)]
    if bad:
        raise InferenceError(
            f"column names must be letters, digits and _ (not starting with a digit); rename {bad}"
        )
    if len(set(columns)) != len(columns):
        raise InferenceError(f"duplicate column names in {columns}")


def _example(frame: pd.DataFrame, columns: list[dict[str, Any]], label: str) -> dict[str, Any]:
    """The first row as a raw record of the spec's types (missing cells left out, the label too)."""
    example: dict[str, Any] = {}
    first = frame.iloc[0]
    for column in columns:
        name = column["name"]
        if name == label:
            continue
        present = cells(pd.Series([first[name]], dtype=object))
        if present.empty:
            continue
        cell = present.iloc[0]
        kind = column["type"]
        if kind == "integer":
            example[name] = int(float(cell))
        elif kind == "numeric":
            example[name] = float(cell)
        elif kind == "boolean":
            example[name] = cell.lower() == "true"
        else:
            example[name] = cell
    return example


def _features(
    columns: list[dict[str, Any]], taken: set[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Derived missing indicators and features: numbers median-imputed (+ an indicator when nullable),
    categories one-hot with an ``<column>_other`` column for unknown or missing values (no such column when a
    value is already called ``Other``: unknown values then get no 1 at all)."""
    derived: list[dict[str, Any]] = []
    features: list[dict[str, Any]] = []
    for column in columns:
        if column.get("role", "feature") != "feature":
            continue
        name = column["name"]
        if column["type"] == "categorical":
            # A value "Other" would name the same Spark column as the <column>_other bucket (case is ignored).
            has_other = any(str(v).lower() == "other" for v in column.get("vocabulary") or ())
            features.append(
                {"column": name, "encoding": "onehot", **({} if has_other else {"unknown": "other"})}
            )
            continue
        features.append({"column": name, "impute": "median"})
        if column.get("nullable"):
            indicator = f"{name}_missing"
            while indicator in taken:
                indicator += "_"
            taken.add(indicator)
            derived.append({"name": indicator, "transform": "missing_indicator", "column": name})
            features.append({"column": indicator})
    return derived, features


def infer_spec(
    frame: pd.DataFrame,
    name: str,
    label: str,
    positive: str | None = None,
    id_column: str | None = None,
    description: str = "",
) -> Draft:
    """Draft the spec of ``frame``: every column typed and bounded, the label and id roles, the features,
    Titanic's model grids, the default response names, the first row as the example and a daily schedule.

    Raises :class:`InferenceError` for an unknown label or id column (listing the columns), a label without
    exactly two values or without a known positive one, column names a spec cannot hold, or no features.
    """
    if frame.empty:
        raise InferenceError("the data has no rows")
    frame = frame.rename(columns=str)
    _check_names(frame, label, id_column)
    rows = len(frame)
    columns: list[dict[str, Any]] = []
    notes: dict[str, str] = {}
    positive_value: Any = None
    for column in frame.columns:
        if column == label:
            entry, positive_value = infer_label(column, frame[column], rows, positive)
        elif column == id_column:
            kind = column_type(frame[column], rows, max_categories=0)
            entry = {"name": column, "type": "integer" if kind == "integer" else "text", "role": "id"}
            if cells(frame[column]).size < rows:
                entry["nullable"] = True
        else:
            inferred = infer_column(column, frame[column], rows)
            entry = inferred.spec
            if inferred.note:
                notes[column] = inferred.note
        columns.append(entry)
    derived, features = _features(columns, set(frame.columns))
    if not features:
        raise InferenceError("no column can be a feature (every other column is text, the label or the id)")
    spec: dict[str, Any] = {
        "name": name,
        "description": description,
        "registered_model": name,
    }
    if id_column is not None:
        spec["id_column"] = id_column
    spec["label"] = {"column": label, "positive": positive_value}
    spec["columns"] = columns
    if derived:
        spec["derived"] = derived
    spec["features"] = features
    spec["models"] = {family: dict(grid) for family, grid in DEFAULT_MODELS.items()}
    spec["response"] = {"prediction": "prediction", "probability": "probability"}
    spec["example"] = _example(frame, columns, label)
    spec["schedule"] = DEFAULT_SCHEDULE
    logger.info("drafted spec %s: %d columns, %d features", name, len(columns), len(features))
    return Draft(spec, notes)


def render_yaml(draft: Draft, header: str) -> str:
    """The draft as YAML: ``header`` as comment lines, one block per top-level key, one line per column
    (with its review note as a comment above it)."""
    import yaml  # as in spec.py: the server has no YAML parser

    def dump(value: Any, flow: bool | None = None) -> str:
        return yaml.safe_dump(value, sort_keys=False, allow_unicode=True, width=110, default_flow_style=flow)

    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    for key, value in draft.spec.items():
        if key != "columns":
            block = key == "example" or not isinstance(value, dict | list)
            lines.append(dump({key: value}, flow=False if block else None).rstrip())
            continue
        lines.append("columns:")
        for column in value:
            note = draft.notes.get(column["name"])
            if note:
                lines.append(f"  # {column['name']}: {note}")
            lines.extend(f"  {line}" for line in dump([column]).rstrip().splitlines())
    return "\n".join(lines) + "\n"
