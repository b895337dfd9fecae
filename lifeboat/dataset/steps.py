"""Derived features of a dataset spec: the built-in transforms and the ``derive`` escape hatch (models only).

The transforms themselves are in :mod:`lifeboat.dataset.transforms`; docs/dataset-spec.md documents each key.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from lifeboat.dataset.columns import NAME_PATTERN, ColumnType, Scalar, Strict


class Condition(Strict):
    """A test on one column; several keys must all hold. Comparisons with a missing value are false."""

    eq: Scalar | None = None
    ne: Scalar | None = None
    lt: float | None = None
    le: float | None = None
    gt: float | None = None
    ge: float | None = None
    isin: list[Scalar] | None = Field(None, alias="in")
    missing: bool | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _not_empty(self) -> Condition:
        if not self.model_dump(exclude_none=True):
            raise ValueError("a condition needs at least one of eq, ne, lt, le, gt, ge, in, missing")
        return self


When = dict[str, Condition]


class Rule(Strict):
    """``value`` where every condition of ``when`` holds (an empty ``when`` always holds)."""

    when: When = Field(default_factory=dict)
    value: str


class _Step(Strict):
    name: str = Field(pattern=NAME_PATTERN)


class MissingIndicator(_Step):
    """1.0 where ``column`` is missing, else 0.0."""

    transform: Literal["missing_indicator"]
    column: str


class Indicator(_Step):
    """1.0 where every condition holds, else 0.0."""

    transform: Literal["indicator"]
    when: When = Field(min_length=1)


class Ratio(_Step):
    """``numerator / denominator`` (IEEE: x/0 is inf, 0/0 is NaN)."""

    transform: Literal["ratio"]
    numerator: str
    denominator: str


class Sum(_Step):
    """``columns[0] + columns[1] + ... + constant``, added left to right."""

    transform: Literal["sum"]
    columns: list[str] = Field(min_length=1)
    constant: float = 0.0


class Product(_Step):
    """``columns[0] * columns[1] * ...``."""

    transform: Literal["product"]
    columns: list[str] = Field(min_length=2)


class Log1p(_Step):
    """``log(1 + column)``."""

    transform: Literal["log1p"]
    column: str


class Clip(_Step):
    """``column`` limited to ``[min, max]``."""

    transform: Literal["clip"]
    column: str
    min: float | None = None
    max: float | None = None


class Bucket(_Step):
    """How many of the increasing ``boundaries`` are at or below the value (0..len); NaN stays NaN."""

    transform: Literal["bucket"]
    column: str
    boundaries: list[float] = Field(min_length=1)

    @field_validator("boundaries")
    @classmethod
    def _increasing(cls, value: list[float]) -> list[float]:
        if any(b >= a for a, b in zip(value[1:], value, strict=False)):
            raise ValueError("boundaries must be strictly increasing")
        return value


class TokenCount(_Step):
    """Number of tokens of a text column (split on ``separator``, default whitespace); missing text is 0."""

    transform: Literal["token_count"]
    column: str
    separator: str | None = None


class RegexExtract(_Step):
    """A category taken from text: group ``group`` of the first match of ``pattern``, stripped.

    An extracted value is looked up in ``mapping`` (values not in it become ``unmapped``, or stay as they are
    when ``unmapped`` is unset). Where the text is missing or does not match, the first ``fallback`` rule that
    holds gives the value (no rule holds: missing). ``missing_alert`` is the drift sentence of a row whose
    text is missing (``{column}``, ``{value}`` = the value used).
    """

    transform: Literal["regex_extract"]
    column: str
    pattern: str
    group: int = Field(1, ge=0)
    mapping: dict[str, str] | None = None
    unmapped: str | None = None
    fallback: list[Rule] = Field(default_factory=list)
    vocabulary: list[str] | None = None
    missing_alert: str | None = None


class GroupImpute(_Step):
    """``column`` with each missing value replaced by the training ``statistic`` of its ``by`` group.

    Groups unseen in training (or without values there) get the overall statistic; ``default`` is used when
    the training column has no value at all. ``missing_alert``: ``{column}``, ``{value}``, ``{group}``,
    ``{range}`` (the training range).
    """

    transform: Literal["group_impute"]
    column: str
    by: str
    statistic: Literal["median", "mean"] = "median"
    default: float = 0.0
    missing_alert: str | None = None


class DeriveHook(Strict):
    """The escape hatch: ``derive(columns) -> {output: values}`` loaded from ``module:function``."""

    function: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    outputs: dict[str, ColumnType] = Field(min_length=1)


class Derive(Strict):
    """A derived-features entry computed by a Python function (see :class:`DeriveHook`)."""

    derive: DeriveHook


def _derived_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        return "derive" if "derive" in value else value.get("transform")
    return "derive" if isinstance(value, Derive) else getattr(value, "transform", None)


Derived = Annotated[
    Annotated[MissingIndicator, Tag("missing_indicator")]
    | Annotated[Indicator, Tag("indicator")]
    | Annotated[Ratio, Tag("ratio")]
    | Annotated[Sum, Tag("sum")]
    | Annotated[Product, Tag("product")]
    | Annotated[Log1p, Tag("log1p")]
    | Annotated[Clip, Tag("clip")]
    | Annotated[Bucket, Tag("bucket")]
    | Annotated[TokenCount, Tag("token_count")]
    | Annotated[RegexExtract, Tag("regex_extract")]
    | Annotated[GroupImpute, Tag("group_impute")]
    | Annotated[Derive, Tag("derive")],
    Discriminator(_derived_tag),
]
