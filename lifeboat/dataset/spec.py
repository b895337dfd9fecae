"""Load a ``dataset.yaml``, check that it hangs together, and check it against the data it describes.

Every refusal is one :class:`DatasetSpecError` naming the file, the dotted key at fault and what is wrong.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from pydantic import ValidationError

from lifeboat.dataset.models import (
    NUMBER_TYPES,
    Bucket,
    Clip,
    DatasetSpec,
    Derive,
    GroupImpute,
    Indicator,
    Log1p,
    MissingIndicator,
    Ratio,
    RegexExtract,
    Sum,
    TokenCount,
    category_key,
)
from lifeboat.dataset.models import Product as ProductStep

if TYPE_CHECKING:
    from lifeboat.settings import Settings

logger = logging.getLogger(__name__)

DeriveFunction = Callable[[dict[str, Any]], Mapping[str, Any]]


class DatasetSpecError(ValueError):
    """A dataset spec is unreadable, inconsistent, or contradicts its data."""

    def __init__(self, file: str | Path, key: str, message: str) -> None:
        self.file = str(file)
        self.key = key
        self.message = message
        super().__init__(f"{self.file}: {key or '<top>'}: {message}")


def spec_of(settings: Settings) -> DatasetSpec:
    """The spec of the settings' dataset (``LIFEBOAT_DATASET_SPEC``), parsed once per version of the file."""
    path = Path(settings.dataset_spec)
    try:
        changed = path.stat().st_mtime_ns
    except OSError as exc:
        raise DatasetSpecError(path, "", f"cannot read the file: {exc.strerror or exc}") from exc
    return _load_cached(str(path.resolve()), changed)


@lru_cache(maxsize=32)
def _load_cached(path: str, changed: int) -> DatasetSpec:
    """:func:`load_spec` memoised by path and modification time (a spec is immutable once parsed)."""
    return load_spec(path)


def load_spec(path: str | Path) -> DatasetSpec:
    """Read and check ``data/<dataset>/dataset.yaml``."""
    # PyYAML is imported here, not at the top: the server reads fitted encoders (JSON that embeds the
    # spec) and needs no YAML parser (requirements-serving.txt has none).
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DatasetSpecError(path, "", f"cannot read the file: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where is not None else ""
        raise DatasetSpecError(path, "", f"not valid YAML{at}: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, Mapping):
        raise DatasetSpecError(path, "", f"expected a mapping at the top, got {type(data).__name__}")
    spec = parse_spec(data, file=path)
    logger.debug("loaded dataset spec %s (%s) from %s", spec.name, spec.fingerprint()[:12], path)
    return spec


def _dotted(loc: tuple[int | str, ...], data: Any) -> str:
    """``('columns', 3, 'type')`` -> ``columns.Sex.type`` (list items named by their ``name`` when known)."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            name = node[item].get("name") if isinstance(node, list) and item < len(node) else None
            if isinstance(name, str) and isinstance(node[item], Mapping):
                parts.append(name)
            else:
                parts.append(f"[{item}]")
            node = node[item] if isinstance(node, list) and item < len(node) else None
        else:
            parts.append(str(item))
            node = node.get(item) if isinstance(node, Mapping) else None
    return ".".join(parts).replace(".[", "[")


def parse_spec(data: Mapping[str, Any], file: str | Path = "<spec>") -> DatasetSpec:
    """Build and cross-check a spec from its parsed YAML (the first problem found is raised)."""
    try:
        spec = DatasetSpec.model_validate(dict(data))
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p in _TAGS))
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "union_tag_invalid":
            message = f"unknown transform {error.get('input', {}).get('transform')!r}"
        elif error["type"] == "literal_error":
            message = f"{message}, got {error.get('input')!r}"
        raise DatasetSpecError(file, _dotted(loc, data), message) from exc
    _check_references(spec, file)
    return spec


_TAGS = frozenset(
    {
        "missing_indicator",
        "indicator",
        "ratio",
        "sum",
        "product",
        "log1p",
        "clip",
        "bucket",
        "token_count",
        "regex_extract",
        "group_impute",
        "derive",
    }
)


def step_inputs(step: Any) -> list[str]:
    """The columns a derived step reads."""
    if isinstance(step, MissingIndicator | Log1p | Clip | Bucket | TokenCount | RegexExtract):
        extra = [c for rule in step.fallback for c in rule.when] if isinstance(step, RegexExtract) else []
        return [step.column, *extra]
    if isinstance(step, GroupImpute):
        return [step.column, step.by]
    if isinstance(step, Indicator):
        return list(step.when)
    if isinstance(step, Ratio):
        return [step.numerator, step.denominator]
    if isinstance(step, Sum | ProductStep):
        return list(step.columns)
    return []


def _check_references(spec: DatasetSpec, file: str | Path) -> None:
    """Names unique, every reference known and of a usable type, hooks importable."""
    types: dict[str, str] = {}
    for column in spec.columns:
        if column.name in types:
            raise DatasetSpecError(file, f"columns.{column.name}", "duplicate column name")
        types[column.name] = column.type
    label = spec.columns_by_name.get(spec.label.column)
    if label is None or label.role != "label":
        raise DatasetSpecError(file, "label.column", f"{spec.label.column!r} is not a column with role label")
    if spec.id_column is not None:
        id_col = spec.columns_by_name.get(spec.id_column)
        if id_col is None or id_col.role != "id":
            raise DatasetSpecError(file, "id_column", f"{spec.id_column!r} is not a column with role id")
    usable = {c.name for c in spec.columns if c.role == "feature"}
    for index, step in enumerate(spec.derived):
        key = f"derived.{step.name}" if not isinstance(step, Derive) else f"derived[{index}]"
        for name in step_inputs(step):
            if name not in usable:
                raise DatasetSpecError(file, key, f"references unknown column {name!r}")
        if isinstance(step, Derive):
            load_derive_function(step.derive.function, file, f"{key}.derive.function")
            outputs = step.derive.outputs
        else:
            outputs = {step.name: "categorical" if isinstance(step, RegexExtract) else "numeric"}
            _check_step(step, types, file, key)
        for name, kind in outputs.items():
            if name in types:
                raise DatasetSpecError(file, key, f"duplicate name {name!r}")
            types[name] = kind
            usable.add(name)
    for name in spec.example:
        if name not in spec.columns_by_name:
            raise DatasetSpecError(file, f"example.{name}", "unknown column")
    seen: set[str] = set()
    for feature in spec.features:
        key = f"features.{feature.name or feature.column}"
        if feature.column not in usable:
            raise DatasetSpecError(file, key, f"references unknown column {feature.column!r}")
        if feature.encoding == "numeric" and types[feature.column] not in NUMBER_TYPES:
            raise DatasetSpecError(file, key, f"a {types[feature.column]} column needs encoding: onehot")
        name = feature.name or feature.prefix or feature.column
        if name in seen:
            raise DatasetSpecError(file, key, f"duplicate feature name {name!r}")
        seen.add(name)
    _check_matrix_names(spec.feature_names or [], file)
    for key, names, known in (
        ("alerts.ranges", spec.alert_ranges, usable),
        ("alerts.categories", spec.alert_categories, usable),
        ("alerts.missing", spec.alerts.missing or [], usable),
        ("drift.columns", spec.drift_columns, types),
    ):
        for name in names:
            if name not in known:
                raise DatasetSpecError(
                    file,
                    key,
                    f"unknown column {name!r}" + (" (or not a feature column)" if name in types else ""),
                )
    for name in spec.alert_ranges:
        if types[name] not in ("numeric", "integer"):
            raise DatasetSpecError(file, "alerts.ranges", f"{name!r} is {types[name]}, not numeric")


def case_clashes(names: Sequence[str]) -> list[tuple[str, str]]:
    """Pairs of matrix column names equal but for case (or equal: two values named alike once made
    identifiers): Spark treats them as one column, so they cannot both exist (e.g. a vocabulary value
    ``Other`` next to the unknown-value bucket ``<prefix>_other``)."""
    first: dict[str, str] = {}
    clashes: list[tuple[str, str]] = []
    for name in names:
        if name.lower() in first:
            clashes.append((first[name.lower()], name))
        else:
            first[name.lower()] = name
    return clashes


def _check_matrix_names(names: Sequence[str], file: str | Path) -> None:
    clashes = case_clashes(names)
    if clashes:
        a, b = clashes[0]
        raise DatasetSpecError(
            file,
            "features",
            f"feature columns {a!r} and {b!r} name the same Spark column (names ignore case, and characters "
            "other than letters, digits and _ become _); rename a value with the feature's values, or use "
            "unknown: ignore instead of other",
        )


def _check_step(step: Any, types: Mapping[str, str], file: str | Path, key: str) -> None:
    if isinstance(step, RegexExtract):
        if types[step.column] not in ("text", "categorical"):
            raise DatasetSpecError(file, f"{key}.column", f"{step.column!r} is not text")
        try:
            pattern = re.compile(step.pattern)
        except re.error as exc:
            raise DatasetSpecError(file, f"{key}.pattern", f"not a regular expression: {exc}") from exc
        if step.group > pattern.groups:
            raise DatasetSpecError(file, f"{key}.group", f"the pattern has only {pattern.groups} group(s)")
        return
    numeric_inputs = {
        "group_impute": [getattr(step, "column", "")],
        "ratio": step_inputs(step),
        "sum": step_inputs(step),
        "product": step_inputs(step),
        "log1p": step_inputs(step),
        "clip": step_inputs(step),
        "bucket": step_inputs(step),
    }.get(getattr(step, "transform", ""), [])
    for name in numeric_inputs:
        if types[name] not in NUMBER_TYPES:
            raise DatasetSpecError(file, key, f"{name!r} is {types[name]}, not a number column")
    if isinstance(step, TokenCount) and types[step.column] not in ("text", "categorical"):
        raise DatasetSpecError(file, f"{key}.column", f"{step.column!r} is not text")


def load_derive_function(
    path: str, file: str | Path = "<spec>", key: str = "derive.function"
) -> DeriveFunction:
    """Import ``package.module:function``; any failure is a :class:`DatasetSpecError` naming ``key``."""
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure of user code is reported the same way
        raise DatasetSpecError(file, key, f"cannot import {module_name!r}: {exc!r}") from exc
    function = getattr(module, attribute, None)
    if not callable(function):
        raise DatasetSpecError(file, key, f"{module_name!r} has no function {attribute!r}")
    return function


def check_against_data(spec: DatasetSpec, frame: pd.DataFrame, file: str | Path = "<spec>") -> None:
    """Refuse a spec its data contradicts: a label without exactly two values (or without the positive
    one), a vocabulary missing a value present in the data, a value outside a declared range."""
    label = spec.label.column
    if label in frame.columns:
        values = sorted({category_key(v) for v in _present(frame[label])})
        if len(values) != 2:
            raise DatasetSpecError(
                file, "label.column", f"{label!r} must hold exactly two values in the data, found {values}"
            )
        if category_key(spec.label.positive) not in values:
            raise DatasetSpecError(
                file, "label.positive", f"{spec.label.positive!r} is not one of the label's values {values}"
            )
    for column in spec.columns:
        if column.name not in frame.columns:
            continue
        present = _present(frame[column.name])
        key = f"columns.{column.name}"
        if column.vocabulary is not None:
            allowed = set(column.vocabulary_keys or [])
            unknown = sorted({category_key(v) for v in present} - allowed)
            if unknown:
                raise DatasetSpecError(
                    file, f"{key}.vocabulary", f"misses values present in the data: {unknown[:10]}"
                )
        if column.range is not None and len(present):
            numbers = pd.to_numeric(present, errors="coerce")
            lo, hi = float(numbers.min()), float(numbers.max())
            if column.range.min is not None and lo < column.range.min:
                raise DatasetSpecError(
                    file, f"{key}.range.min", f"the data goes down to {lo:g}, below {column.range.min:g}"
                )
            if column.range.max is not None and hi > column.range.max:
                raise DatasetSpecError(
                    file, f"{key}.range.max", f"the data goes up to {hi:g}, above {column.range.max:g}"
                )


def _present(values: pd.Series) -> pd.Series:
    """Non-missing values, strings stripped (empty strings are missing)."""
    values = values.dropna()
    if values.dtype == object:
        values = values.map(lambda v: v.strip() if isinstance(v, str) else v)
        values = values[values != ""]
    return values
