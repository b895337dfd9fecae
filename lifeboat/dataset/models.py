"""The typed model of ``data/<dataset>/dataset.yaml`` (pydantic v2; unknown keys are refused everywhere).

docs/dataset-spec.md documents every key; :mod:`lifeboat.dataset.spec` loads and cross-checks a file.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

ColumnType = Literal["numeric", "integer", "categorical", "boolean", "text"]
Role = Literal["feature", "id", "ignored", "label"]
Scalar = str | int | float | bool
#: Column types read as float64 arrays (NaN = missing); the others are read as stripped text (None = missing).
NUMBER_TYPES: frozenset[str] = frozenset({"numeric", "integer", "boolean"})
#: Model families the training step knows (lifeboat/training/train.py ``FAMILIES``).
MODEL_FAMILIES: tuple[str, ...] = ("lr", "rf", "gbt")
_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Range(_Strict):
    """Inclusive bounds of a numeric column (either may be omitted)."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        return self


class Column(_Strict):
    """One raw column of the data files."""

    name: str = Field(pattern=_NAME)
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


class Label(_Strict):
    """The label column and the value that counts as the positive class."""

    column: str
    positive: Scalar = 1


class Condition(_Strict):
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


class Rule(_Strict):
    """``value`` where every condition of ``when`` holds (an empty ``when`` always holds)."""

    when: When = Field(default_factory=dict)
    value: str


class _Step(_Strict):
    name: str = Field(pattern=_NAME)


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


class DeriveHook(_Strict):
    """The escape hatch: ``derive(columns) -> {output: values}`` loaded from ``module:function``."""

    function: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    outputs: dict[str, ColumnType] = Field(min_length=1)


class Derive(_Strict):
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


class Feature(_Strict):
    """One model input (``numeric``) or one group of 0/1 inputs (``onehot``) made from a column.

    numeric: ``impute`` fills missing values with the training median or mean, or ``fill_value``.
    onehot: one column per value of ``values`` (default: the column's vocabulary, else the sorted training
    values), named ``<prefix>_<value>``; ``unknown`` says what an unknown or missing value becomes: no 1 at
    all (``ignore``), a 1 in an extra ``<prefix>_other`` column (``other``), or the training mode
    (``most_frequent``). ``missing_alert``: the drift sentence of a row where the column is missing and was
    imputed (``{column}``, ``{value}``).
    """

    column: str
    name: str | None = Field(None, pattern=_NAME)
    encoding: Literal["numeric", "onehot"] = "numeric"
    impute: Literal["none", "median", "mean", "constant"] = "none"
    fill_value: float | None = None
    prefix: str | None = None
    values: list[Scalar] | None = None
    unknown: Literal["ignore", "other", "most_frequent"] = "ignore"
    default: str | None = None
    missing_alert: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Feature:
        if self.encoding == "onehot" and self.impute != "none":
            raise ValueError("impute applies to numeric features; one-hot features use 'unknown'")
        if (self.impute == "constant") != (self.fill_value is not None):
            raise ValueError("fill_value is required with impute: constant, and only then")
        return self

    @property
    def output_names(self) -> list[str]:
        """Names of the matrix columns of a numeric feature (one-hot names need the fitted values)."""
        return [self.name or self.column]


class Alerts(_Strict):
    """Which columns the per-row drift sentences check (defaults: see docs/dataset-spec.md)."""

    ranges: list[str] | None = None
    categories: list[str] | None = None
    missing: list[str] | None = None


class Drift(_Strict):
    """Columns compared by the drift report, and the statistical test of each kind or column."""

    columns: list[str] | None = None
    numeric_method: str = "wasserstein"
    categorical_method: str = "jensenshannon"
    methods: dict[str, str] = Field(default_factory=dict)
    missing_indicators: bool = True


class Gate(_Strict):
    """Per-dataset overrides of the promotion gate (unset = the global ``LIFEBOAT_GATE_*`` settings)."""

    min_roc_auc: float | None = Field(None, ge=0, le=1)
    min_accuracy: float | None = Field(None, ge=0, le=1)
    primary_metric: Literal["roc_auc", "pr_auc", "accuracy", "f1"] | None = None
    min_improvement: float | None = None
    accuracy_tolerance: float | None = Field(None, ge=0)
    recall_tolerance: float | None = Field(None, ge=0)
    brier_tolerance: float | None = Field(None, ge=0)
    parity_tolerance: float | None = Field(None, gt=0)

    def overrides(self) -> dict[str, Any]:
        """The thresholds set here, by ``GateConfig`` field name."""
        return self.model_dump(exclude_none=True)


class Response(_Strict):
    """Field names of a prediction in the HTTP answer."""

    prediction: str = "prediction"
    probability: str = "probability"


class DatasetSpec(_Strict):
    """One dataset: its raw columns, features, encoding, training, gate, drift and serving settings."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    registered_model: str | None = None
    id_column: str | None = None
    label: Label
    columns: list[Column] = Field(min_length=1)
    derived: list[Derived] = Field(default_factory=list)
    features: list[Feature] = Field(min_length=1)
    alerts: Alerts = Field(default_factory=Alerts)
    models: dict[str, dict[str, list[Scalar]]] = Field(default_factory=dict)
    gate: Gate = Field(default_factory=Gate)
    drift: Drift = Field(default_factory=Drift)
    response: Response = Field(default_factory=Response)
    example: dict[str, Any] = Field(default_factory=dict)
    schedule: str = "0 2 * * *"

    @field_validator("models")
    @classmethod
    def _known_families(cls, value: dict[str, dict[str, list[Scalar]]]) -> dict[str, dict[str, list[Scalar]]]:
        unknown = sorted(set(value) - set(MODEL_FAMILIES))
        if unknown:
            raise ValueError(f"unknown model families {unknown}; expected some of {list(MODEL_FAMILIES)}")
        return value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError(f"expected a cron string of five fields, got {value!r}")
        return value

    # --- derived views -------------------------------------------------------------------------------------

    @property
    def registered_model_name(self) -> str:
        """The MLflow registered model (default: the dataset's name)."""
        return self.registered_model or self.name

    @property
    def columns_by_name(self) -> dict[str, Column]:
        """Raw columns by name."""
        return {c.name: c for c in self.columns}

    @property
    def raw_columns(self) -> list[str]:
        """Raw column names in file order, the label excluded."""
        return [c.name for c in self.columns if c.role != "label"]

    @property
    def input_columns(self) -> list[str]:
        """Raw columns the features are made from (role ``feature``)."""
        return [c.name for c in self.columns if c.role == "feature"]

    def derived_types(self) -> dict[str, str]:
        """Name -> column type of every derived column, in spec order."""
        out: dict[str, str] = {}
        for step in self.derived:
            if isinstance(step, Derive):
                out.update(step.derive.outputs)
            elif isinstance(step, RegexExtract):
                out[step.name] = "categorical"
            else:
                out[step.name] = "numeric"
        return out

    def column_types(self) -> dict[str, str]:
        """Name -> type of every raw and derived column."""
        return {**{c.name: c.type for c in self.columns}, **self.derived_types()}

    @property
    def alert_ranges(self) -> list[str]:
        """Raw columns whose training range is recorded and checked per row."""
        if self.alerts.ranges is not None:
            return list(self.alerts.ranges)
        return [c.name for c in self.columns if c.role == "feature" and c.type in ("numeric", "integer")]

    @property
    def alert_categories(self) -> list[str]:
        """Columns (raw or regex-derived) whose training vocabulary is recorded and checked per row."""
        if self.alerts.categories is not None:
            return list(self.alerts.categories)
        raw = [c.name for c in self.columns if c.role == "feature" and c.type == "categorical"]
        return raw + [s.name for s in self.derived if isinstance(s, RegexExtract)]

    @property
    def drift_columns(self) -> list[str]:
        """Columns the drift report compares (default: every raw feature column and regex category)."""
        if self.drift.columns is not None:
            return list(self.drift.columns)
        raw = [c.name for c in self.columns if c.role == "feature" and c.type != "text"]
        return raw + [s.name for s in self.derived if isinstance(s, RegexExtract)]

    def drift_method(self, column: str) -> str:
        """The drift test of one column (its override, else the method of its kind)."""
        if column in self.drift.methods:
            return self.drift.methods[column]
        kind = self.column_types().get(column, "categorical")
        return self.drift.numeric_method if kind in ("numeric", "integer") else self.drift.categorical_method

    def canonical_json(self) -> str:
        """The spec as canonical JSON: sorted keys, no whitespace, defaults filled in."""
        data = self.model_dump(mode="json", by_alias=True)
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def fingerprint(self) -> str:
        """sha256 of :meth:`canonical_json`: the same for any YAML layout or key order of one spec."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()
