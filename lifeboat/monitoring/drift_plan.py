"""What a drift report of one dataset compares: columns, their kind, test and threshold, from the spec.

:func:`drift_plan` reads the spec's ``drift`` section (docs/dataset-spec.md): the columns (default: every
raw feature column that is not free text, and every regex-extracted category), a present/missing indicator
for every nullable numerical column (Evidently drops missing values, so a batch where a third of the ages
are suddenly blank would otherwise look like the training data), and per kind or per column the method and
threshold, which fall back to the global ``LIFEBOAT_DRIFT_*`` settings.

A column is *categorical* when it is categorical or boolean, an integer column with a vocabulary (Titanic's
Pclass), a regex-extracted category or a 0/1 indicator; every other column is *numerical*.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from lifeboat.dataset.models import DatasetSpec, Derive, Indicator, MissingIndicator, RegexExtract
from lifeboat.settings import Settings

Kind = Literal["numerical", "categorical"]

MISSING_SUFFIX = "_missing"


class DriftPlanError(ValueError):
    """The spec's drift section cannot be analysed (a free-text column, an unknown override ...)."""


@dataclass(frozen=True)
class DriftPlan:
    """The analysed columns of one dataset, each with its kind, method and threshold."""

    spec: DatasetSpec = field(compare=False, repr=False)
    id_column: str | None
    #: Raw columns a non-empty frame must hold (analysed raw columns that may not be blank).
    required: tuple[str, ...]
    numerical: tuple[str, ...]
    #: Categorical columns, then the missing indicators.
    categorical: tuple[str, ...]
    #: Analysed columns computed by the spec's derived steps (raw rows do not hold them).
    derived: tuple[str, ...]
    #: Nullable numerical column -> its indicator column (``<column>_missing``).
    indicators: Mapping[str, str]
    methods: Mapping[str, str] = field(default_factory=dict)
    thresholds: Mapping[str, float] = field(default_factory=dict)

    @property
    def dataset(self) -> str:
        return self.spec.name

    @property
    def analysed(self) -> tuple[str, ...]:
        """Every analysed column, in report order: numerical, then categorical."""
        return (*self.numerical, *self.categorical)

    def kind(self, column: str) -> Kind:
        return "numerical" if column in self.numerical else "categorical"

    def method(self, column: str) -> str:
        return self.methods[column]

    def threshold(self, column: str) -> float:
        return self.thresholds[column]


def _kinds(spec: DatasetSpec) -> dict[str, Kind]:
    """The drift kind of every raw and derived column (text columns are left out)."""
    kinds: dict[str, Kind] = {}
    for column in spec.columns:
        if column.type == "text":
            continue
        numeric = column.type == "numeric" or (column.type == "integer" and column.vocabulary is None)
        kinds[column.name] = "numerical" if numeric else "categorical"
    for step in spec.derived:
        if isinstance(step, Derive):
            for name, kind in step.derive.outputs.items():
                if kind != "text":
                    kinds[name] = "numerical" if kind in ("numeric", "integer") else "categorical"
        elif isinstance(step, RegexExtract | Indicator | MissingIndicator):
            kinds[step.name] = "categorical"
        else:
            kinds[step.name] = "numerical"
    return kinds


def drift_plan(spec: DatasetSpec, settings: Settings) -> DriftPlan:
    """The drift plan of ``spec``; raises :class:`DriftPlanError` naming the offending ``drift`` key."""
    kinds = _kinds(spec)
    columns = spec.drift_columns
    text = [c for c in columns if c not in kinds]
    if text:
        raise DriftPlanError(
            f"{spec.name}: drift.columns: {text[0]!r} is free text (or unknown); drift is measured on "
            "numerical and categorical columns, e.g. a regex_extract of it"
        )
    for key, names in (("drift.methods", spec.drift.methods), ("drift.thresholds", spec.drift.thresholds)):
        unknown = sorted(set(names) - set(columns))
        if unknown:
            raise DriftPlanError(f"{spec.name}: {key}: {unknown[0]!r} is not one of the drift columns")
    by_name = spec.columns_by_name
    numerical = tuple(c for c in columns if kinds[c] == "numerical")
    indicators = {
        c: f"{c}{MISSING_SUFFIX}"
        for c in numerical
        if spec.drift.missing_indicators and c in by_name and by_name[c].nullable
    }
    categorical = (*(c for c in columns if kinds[c] == "categorical"), *indicators.values())
    num_method = spec.drift.numeric_method or settings.drift_num_method
    cat_method = spec.drift.categorical_method or settings.drift_cat_method
    num_threshold = spec.drift.numeric_threshold or settings.drift_num_threshold
    cat_threshold = spec.drift.categorical_threshold or settings.drift_cat_threshold
    methods: dict[str, str] = {}
    thresholds: dict[str, float] = {}
    for column in (*numerical, *categorical):
        numeric = column in numerical
        methods[column] = spec.drift.methods.get(column, num_method if numeric else cat_method)
        thresholds[column] = spec.drift.thresholds.get(column, num_threshold if numeric else cat_threshold)
    return DriftPlan(
        spec=spec,
        id_column=spec.id_column,
        required=tuple(c for c in columns if c in by_name and not by_name[c].nullable),
        numerical=numerical,
        categorical=categorical,
        derived=tuple(c for c in columns if c not in by_name),
        indicators=indicators,
        methods=methods,
        thresholds=thresholds,
    )


def plan_of(settings: Settings) -> DriftPlan:
    """The drift plan of the settings' dataset (its spec file, see :func:`lifeboat.dataset.spec.spec_of`)."""
    from lifeboat.dataset.spec import spec_of

    return drift_plan(spec_of(settings), settings)
