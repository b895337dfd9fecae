"""Drift specs of simulated batches (``Age+15,Fare*3,Sex=male:0.8,missing=Age:0.3``), checked per dataset.

Which columns a spec may touch comes from the dataset spec (``data/<dataset>/dataset.yaml``) through
:class:`BatchColumns`: numeric and integer columns without a vocabulary can be shifted or scaled,
categorical and boolean columns and integer columns with a vocabulary can have their mix changed, nullable
columns can be blanked. The id and the label column are never drifted. :mod:`lifeboat.data.simulate`
applies a parsed spec to a batch; its docstring describes what every part does.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal

from lifeboat.dataset.models import Column, DatasetSpec

#: What a boolean column's mix value may be written as, and its category key.
BOOLEAN_KEYS: dict[str, str] = {"1": "1", "0": "0", "true": "1", "false": "0"}

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_SHIFT_RE = re.compile(rf"^(\w+)\s*([-+*])\s*({_NUMBER})$")
_MIX_RE = re.compile(rf"^(\w+)\s*=\s*([^:=]+?)\s*:\s*({_NUMBER})$")


@dataclass(frozen=True)
class BatchColumns:
    """A dataset's raw columns as batch simulation sees them (see the module docstring)."""

    dataset: str
    #: Raw columns in file order, the label excluded (the id, when there is one, included).
    raw: tuple[str, ...]
    id_column: str | None
    label: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    optional: tuple[str, ...]
    #: Columns a source frame must have (not nullable; the label excluded).
    required: tuple[str, ...]
    by_name: dict[str, Column] = field(compare=False, repr=False)

    @classmethod
    def of(cls, spec: DatasetSpec) -> BatchColumns:
        """The simulation view of ``spec``."""
        label = spec.label.column
        drifting = [c for c in spec.columns if c.name not in (spec.id_column, label) and c.role != "label"]
        return cls(
            dataset=spec.name,
            raw=tuple(spec.raw_columns),
            id_column=spec.id_column,
            label=label,
            numeric=tuple(
                c.name for c in drifting if c.type in ("numeric", "integer") and c.vocabulary is None
            ),
            categorical=tuple(
                c.name
                for c in drifting
                if c.type in ("categorical", "boolean") or (c.type == "integer" and c.vocabulary is not None)
            ),
            optional=tuple(c.name for c in spec.columns if c.nullable and c.role != "label"),
            required=tuple(c.name for c in spec.columns if not c.nullable and c.role != "label"),
            by_name=spec.columns_by_name,
        )

    def allowed_values(self, column: str) -> list[str] | None:
        """The category keys a mix of ``column`` may name (None: any value the data has)."""
        spec = self.by_name[column]
        if spec.vocabulary is not None:
            return spec.vocabulary_keys
        if spec.type == "boolean":
            return ["0", "1"]
        return None

    def is_boolean(self, column: str) -> bool:
        """Whether ``column`` is a boolean column (its values are compared as ``"0"``/``"1"``)."""
        spec = self.by_name.get(column)
        return spec is not None and spec.type == "boolean"


def columns_of(dataset: DatasetSpec | BatchColumns | None) -> BatchColumns:
    """The simulation view of ``dataset`` (None: the current settings' dataset, ``LIFEBOAT_DATASET``)."""
    if isinstance(dataset, BatchColumns):
        return dataset
    if dataset is None:
        from lifeboat.dataset.spec import spec_of
        from lifeboat.settings import get_settings

        dataset = spec_of(get_settings())
    return BatchColumns.of(dataset)


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
    """A parsed drift specification (see the module docstring of :mod:`lifeboat.data.simulate`)."""

    numeric: tuple[NumericChange, ...] = ()
    mixes: tuple[CategoryMix, ...] = ()
    missing: tuple[MissingValues, ...] = ()
    text: str = field(default="", compare=False)

    @classmethod
    def parse(cls, text: str, dataset: DatasetSpec | BatchColumns | None = None) -> DriftSpec:
        """Parse ``"Age+15,Fare*3,Sex=male:0.8,missing=Age:0.3"`` against ``dataset``'s columns (None: the
        current settings' dataset); raise ValueError naming the bad part and listing the valid columns."""
        columns = columns_of(dataset)
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
                numeric.append(_numeric_change(columns, part, column, op, float(number)))
            elif mix_match:
                key, value, number = mix_match.groups()
                share = float(number)
                if not 0.0 <= share <= 1.0:
                    raise ValueError(f"bad drift spec part {part!r}: share {number} must lie between 0 and 1")
                if key == "missing":
                    missing.append(_missing_values(columns, part, value.strip(), share))
                else:
                    mixes.append(_category_mix(columns, part, key, value.strip(), share))
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


def _listing(names: tuple[str, ...]) -> str:
    return ", ".join(names) if names else "none"


def _numeric_change(columns: BatchColumns, part: str, column: str, op: str, amount: float) -> NumericChange:
    if column not in columns.numeric:
        raise ValueError(
            f"bad drift spec part {part!r}: {column!r} is not a numeric column of {columns.dataset} "
            f"(numeric columns: {_listing(columns.numeric)})"
        )
    if not math.isfinite(amount):
        raise ValueError(f"bad drift spec part {part!r}: the amount must be a finite number")
    if op == "*":
        if amount < 0:
            raise ValueError(f"bad drift spec part {part!r}: a scale factor must not be negative")
        return NumericChange(column, "*", amount)
    return NumericChange(column, "+", amount if op == "+" else -amount)


def _category_mix(columns: BatchColumns, part: str, column: str, value: str, share: float) -> CategoryMix:
    if column not in columns.categorical:
        raise ValueError(
            f"bad drift spec part {part!r}: {column!r} is not a categorical column of {columns.dataset} "
            f"(categorical columns: {_listing(columns.categorical)})"
        )
    if columns.is_boolean(column) and columns.by_name[column].vocabulary is None:
        value = BOOLEAN_KEYS.get(value.lower(), value)
    allowed = columns.allowed_values(column)
    if allowed is not None and value not in allowed:
        raise ValueError(
            f"bad drift spec part {part!r}: {value!r} is not a value of {column} "
            f"(allowed: {', '.join(allowed)})"
        )
    return CategoryMix(column, value, share)


def _missing_values(columns: BatchColumns, part: str, column: str, share: float) -> MissingValues:
    if column not in columns.optional:
        raise ValueError(
            f"bad drift spec part {part!r}: {column!r} cannot be missing in {columns.dataset} "
            f"(optional columns: {_listing(columns.optional)})"
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


def parse_spec(text: str | None, dataset: DatasetSpec | BatchColumns | None = None) -> DriftSpec | None:
    """:meth:`DriftSpec.parse`, or None for an empty or missing string (no drift)."""
    if text is None or not text.strip():
        return None
    return DriftSpec.parse(text, dataset)
