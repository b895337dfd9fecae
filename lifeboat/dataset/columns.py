"""Raw columns of a dataset spec: types, roles, ranges, vocabularies, the label (models only)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ColumnType = Literal["numeric", "integer", "categorical", "boolean", "text"]
Role = Literal["feature", "id", "ignored", "label"]
Scalar = str | int | float | bool
#: Column types read as float64 arrays (NaN = missing); the others are read as stripped text (None = missing).
NUMBER_TYPES: frozenset[str] = frozenset({"numeric", "integer", "boolean"})
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"


class Strict(BaseModel):
    """A spec section: unknown keys are refused, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Range(Strict):
    """Inclusive bounds of a numeric column (either may be omitted)."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        return self


class Column(Strict):
    """One raw column of the data files."""

    name: str = Field(pattern=NAME_PATTERN)
    type: ColumnType
    role: Role = "feature"
    nullable: bool = False
    description: str = ""
    range: Range | None = None
    vocabulary: list[Scalar] | None = None
    max_length: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> Column:
        if self.range is not None and self.type not in ("numeric", "integer"):
            raise ValueError(f"a range needs a numeric or integer column, not {self.type}")
        if self.vocabulary is not None and self.type in ("numeric", "text"):
            raise ValueError(f"a vocabulary needs a categorical, integer or boolean column, not {self.type}")
        if self.vocabulary is not None and len({str(v) for v in self.vocabulary}) != len(self.vocabulary):
            raise ValueError("vocabulary values must be distinct")
        return self

    @property
    def vocabulary_keys(self) -> list[str] | None:
        """The vocabulary as category keys (integers as ``"1"``, see :func:`category_key`)."""
        if self.vocabulary is None:
            return None
        return [category_key(v) for v in self.vocabulary]


def category_key(value: Scalar) -> str:
    """How a value is named as a category: integral numbers without a decimal point, text as is."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float | int):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    return str(value)


class Label(Strict):
    """The label column and the value that counts as the positive class."""

    column: str
    positive: Scalar = 1


_NOT_IDENTIFIER = re.compile(r"[^A-Za-z0-9_]+")


def onehot_names(prefix: str, values: Sequence[str], other: bool) -> list[str]:
    """Matrix column names of a one-hot group: ``<prefix>_<value>`` per value, then ``<prefix>_other`` when
    unknown values get their own column. Runs of characters other than letters, digits and ``_`` become one
    ``_`` (``workclass_Self-emp-inc`` -> ``workclass_Self_emp_inc``), so every name is a valid Spark, ONNX
    and MLflow identifier."""
    names = [f"{prefix}_{value}" for value in values] + ([f"{prefix}_other"] if other else [])
    return [_NOT_IDENTIFIER.sub("_", name) for name in names]
