"""The typed model of ``data/<dataset>/dataset.yaml`` (pydantic v2; unknown keys are refused everywhere).

Raw columns are modelled in :mod:`lifeboat.dataset.columns`, derived features in :mod:`lifeboat.dataset.steps`
(both re-exported here); docs/dataset-spec.md documents every key; :mod:`lifeboat.dataset.spec` loads and
cross-checks a file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from lifeboat.dataset.columns import (
    NAME_PATTERN,
    NUMBER_TYPES,
    Column,
    ColumnType,
    Label,
    Range,
    Role,
    Scalar,
    Strict,
    category_key,
    onehot_names,
)
from lifeboat.dataset.steps import (
    Bucket,
    Clip,
    Condition,
    Derive,
    Derived,
    DeriveHook,
    GroupImpute,
    Indicator,
    Log1p,
    MissingIndicator,
    Product,
    Ratio,
    RegexExtract,
    Rule,
    Sum,
    TokenCount,
    When,
)

__all__ = [
    "MODEL_FAMILIES",
    "NUMBER_TYPES",
    "Alerts",
    "Bucket",
    "Clip",
    "Column",
    "ColumnType",
    "Condition",
    "DatasetSpec",
    "Derive",
    "DeriveHook",
    "Derived",
    "Drift",
    "Feature",
    "Gate",
    "GroupImpute",
    "Indicator",
    "Label",
    "Log1p",
    "MissingIndicator",
    "Product",
    "Range",
    "Ratio",
    "RegexExtract",
    "Response",
    "Role",
    "Rule",
    "Scalar",
    "Sum",
    "TokenCount",
    "When",
    "category_key",
    "onehot_names",
]

#: Model families the training step knows (lifeboat/training/train.py ``FAMILIES``).
MODEL_FAMILIES: tuple[str, ...] = ("lr", "rf", "gbt")


class Feature(Strict):
    """One model input (``numeric``) or one group of 0/1 inputs (``onehot``) made from a column.

    numeric: ``impute`` fills missing values with the training median or mean, or ``fill_value``.
    onehot: one column per value of ``values`` (default: the column's vocabulary, else the sorted training
    values), named ``<prefix>_<value>``; ``unknown`` says what an unknown or missing value becomes: no 1 at
    all (``ignore``), a 1 in an extra ``<prefix>_other`` column (``other``), or the training mode
    (``most_frequent``). ``missing_alert``: the drift sentence of a row where the column is missing and was
    imputed (``{column}``, ``{value}``).
    """

    column: str
    name: str | None = Field(None, pattern=NAME_PATTERN)
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


class Alerts(Strict):
    """Which columns the per-row drift sentences check (defaults: see docs/dataset-spec.md)."""

    ranges: list[str] | None = None
    categories: list[str] | None = None
    missing: list[str] | None = None


class Drift(Strict):
    """Columns compared by the drift report, and the statistical test and threshold of each kind or column.

    Unset methods and thresholds are the global ``LIFEBOAT_DRIFT_*`` settings (calibrated on Titanic, see
    :mod:`lifeboat.monitoring.drift`).
    """

    columns: list[str] | None = None
    numeric_method: str | None = None
    categorical_method: str | None = None
    numeric_threshold: float | None = Field(None, gt=0)
    categorical_threshold: float | None = Field(None, gt=0)
    methods: dict[str, str] = Field(default_factory=dict)
    thresholds: dict[str, float] = Field(default_factory=dict)
    missing_indicators: bool = True


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def canonical(dumped: Mapping[str, Any]) -> str:
    """Canonical JSON of a dumped spec (:meth:`DatasetSpec.canonical_json`), also for one stored long ago."""
    return json.dumps(_without_none(dict(dumped)), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class PerformanceRule(Strict):
    """Retrain when the live metric falls below the champion's holdout figure by more than ``max_drop``."""

    metric: Literal["accuracy", "roc_auc"] = "accuracy"
    max_drop: float = Field(0.05, gt=0, le=1)
    min_labelled_rows: int = Field(200, ge=1)


class Retrain(Strict):
    """When a run retrains: any rule that fires (see :mod:`lifeboat.monitoring.policy`)."""

    on_drift: bool = True
    min_new_rows: int | None = Field(None, ge=1)
    performance: PerformanceRule | None = None
    on_schedule: bool = False


class Gate(Strict):
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


class Response(Strict):
    """Field names of a prediction in the HTTP answer."""

    prediction: str = "prediction"
    probability: str = "probability"


class DatasetSpec(Strict):
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
    #: The retraining rules; None keeps the global ``LIFEBOAT_DRIFT_POLICY``.
    retrain: Retrain | None = None

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
    def feature_names(self) -> list[str] | None:
        """Matrix column names known before fitting; None when a one-hot feature takes its values from the
        training data (then only the fitted encoder knows them)."""
        names: list[str] = []
        for feature in self.features:
            if feature.encoding == "numeric":
                names.append(feature.name or feature.column)
                continue
            values = self._declared_values(feature)
            if values is None:
                return None
            prefix = feature.prefix or feature.name or feature.column
            names.extend(onehot_names(prefix, values, feature.unknown == "other"))
        return names

    def _declared_values(self, feature: Feature) -> list[str] | None:
        if feature.values is not None:
            return [str(v) for v in feature.values]
        column = self.columns_by_name.get(feature.column)
        if column is not None:
            return column.vocabulary_keys
        for step in self.derived:
            if isinstance(step, RegexExtract) and step.name == feature.column:
                return step.vocabulary
        return None

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

    def canonical_json(self) -> str:
        """The spec as canonical JSON: sorted keys, no whitespace, defaults filled in, unset (None) keys left
        out, so that a key added to the spec model later (None by default) changes no existing fingerprint."""
        return canonical(self.model_dump(mode="json", by_alias=True))

    def fingerprint(self) -> str:
        """sha256 of :meth:`canonical_json`: the same for any YAML layout or key order of one spec."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()
