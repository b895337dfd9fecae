"""Feature encoding, written once and used by Spark training and by serving.

Training runs :func:`encode` inside Spark (``mapInPandas``) and serving runs the very same function on the
request's rows, so a raw passenger always becomes the same model input on both sides (see DESIGN.md, "Skew").

The encoding has two parts:

* **fitted statistics** (:class:`FeatureStats`, :class:`ReferenceStats`), learned from the training rows by
  :func:`fit_feature_spec` and shipped with the model as ``feature_spec.json``;
* the pure transform :func:`encode`: raw columns + :class:`FeatureSpec` -> a float32 matrix whose columns
  are :data:`FEATURE_NAMES`.

Every categorical is encoded as plain 0/1 or numeric columns (no Spark ML categorical metadata), which is what
lets tree models convert to ONNX exactly (STACK_NOTES.md).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Version of the encoding; bump it whenever :func:`encode` changes meaning, so old specs are refused.
ENCODING_VERSION = 1

TITLES: tuple[str, ...] = ("Mr", "Mrs", "Miss", "Master", "Rare")
PORTS: tuple[str, ...] = ("C", "Q", "S")
_TITLE_ALIASES = {"Mr": "Mr", "Mrs": "Mrs", "Mme": "Mrs", "Miss": "Miss", "Mlle": "Miss", "Ms": "Miss",
                  "Master": "Master"}
_TITLE_RE = re.compile(r",\s*([^.,]+)\.")

FEATURE_NAMES: tuple[str, ...] = (
    "pclass", "sex_male", "age", "age_missing", "is_child", "sibsp", "parch", "family_size", "is_alone",
    "fare", "fare_per_person", "log_fare", "cabin_known",
    *(f"title_{t}" for t in TITLES),
    *(f"embarked_{p}" for p in PORTS),
    "female_third_class",
)

#: Raw numeric columns whose training range is recorded and checked per request.
RANGE_COLUMNS: tuple[str, ...] = ("Age", "Fare", "SibSp", "Parch")
#: Raw categorical columns (plus the derived Title) whose training vocabulary is recorded.
CATEGORY_COLUMNS: tuple[str, ...] = ("Pclass", "Sex", "Embarked", "Title")
#: Optional raw columns that are imputed when missing.
IMPUTED_COLUMNS: tuple[str, ...] = ("Age", "Fare", "Embarked", "Name")

NO_DRIFT = "No drift detected"

Columns = Mapping[str, Any]


class FeatureSpecError(ValueError):
    """A feature spec file is unreadable or was written by an incompatible encoding version."""


@dataclass(frozen=True)
class FeatureStats:
    """Imputation statistics fitted on the training rows."""

    age_by_title: dict[str, float]
    age_overall: float
    fare_by_pclass: dict[str, float]
    fare_overall: float
    embarked_mode: str


@dataclass(frozen=True)
class ReferenceStats:
    """What the training rows looked like: used for per-request drift alerts."""

    rows: int
    ranges: dict[str, tuple[float, float]]
    categories: dict[str, list[str]]
    missing_rate: dict[str, float]


@dataclass(frozen=True)
class FeatureSpec:
    """Everything serving needs to turn raw passengers into model inputs exactly as training did."""

    stats: FeatureStats
    reference: ReferenceStats
    feature_names: tuple[str, ...] = FEATURE_NAMES
    encoding_version: int = ENCODING_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        data = asdict(self)
        data["feature_names"] = list(self.feature_names)
        data["reference"]["ranges"] = {k: list(v) for k, v in self.reference.ranges.items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        """Inverse of :meth:`to_dict`; refuses specs of another encoding version."""
        try:
            version = int(data["encoding_version"])
            if version != ENCODING_VERSION:
                raise FeatureSpecError(
                    f"feature spec has encoding version {version}; this code encodes version {ENCODING_VERSION}"
                )
            names = tuple(data["feature_names"])
            if names != FEATURE_NAMES:
                raise FeatureSpecError(f"feature spec lists features {names}, expected {FEATURE_NAMES}")
            ref = data["reference"]
            return cls(
                stats=FeatureStats(**data["stats"]),
                reference=ReferenceStats(
                    rows=int(ref["rows"]),
                    ranges={k: (float(v[0]), float(v[1])) for k, v in ref["ranges"].items()},
                    categories={k: list(v) for k, v in ref["categories"].items()},
                    missing_rate={k: float(v) for k, v in ref["missing_rate"].items()},
                ),
                feature_names=names,
                encoding_version=version,
                extra=dict(data.get("extra", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, FeatureSpecError):
                raise
            raise FeatureSpecError(f"malformed feature spec: {exc!r}") from exc

    def save(self, path: Path) -> None:
        """Write the spec as JSON."""
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True))

    @classmethod
    def load(cls, path: Path) -> FeatureSpec:
        """Read a spec written by :meth:`save`."""
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise FeatureSpecError(f"cannot read feature spec {path}: {exc}") from exc


def _length(columns: Columns) -> int:
    for name in ("Pclass", "Sex"):
        if name in columns:
            return len(columns[name])
    raise KeyError("columns must include Pclass and Sex")


def _numeric(columns: Columns, name: str, n: int) -> np.ndarray:
    """A column as float64 with NaN for missing values (None, NaN, pandas NA, absent column)."""
    if name not in columns:
        return np.full(n, np.nan)
    values = columns[name]
    if isinstance(values, pd.Series):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.asarray(values, dtype=np.float64)


def _text(columns: Columns, name: str, n: int) -> list[str | None]:
    """A column as a list of stripped strings, None where missing or empty."""
    if name not in columns:
        return [None] * n
    out: list[str | None] = []
    for v in columns[name]:
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            out.append(None)
        else:
            s = str(v).strip()
            out.append(s or None)
    return out


def title_of(name: str | None, sex: str | None, age: float) -> str:
    """The passenger's title group from the Name column, or inferred from Sex and Age when Name is missing."""
    if name:
        match = _TITLE_RE.search(name)
        if match:
            return _TITLE_ALIASES.get(match.group(1).strip(), "Rare")
    if sex == "male":
        return "Master" if not math.isnan(age) and age < 13 else "Mr"
    return "Mrs" if not math.isnan(age) and age >= 30 else "Miss"


def derive_titles(columns: Columns) -> list[str]:
    """Title group of every row (see :func:`title_of`)."""
    n = _length(columns)
    names = _text(columns, "Name", n)
    sexes = _text(columns, "Sex", n)
    ages = _numeric(columns, "Age", n)
    return [title_of(nm, sx, float(a)) for nm, sx, a in zip(names, sexes, ages, strict=True)]


def fit_feature_spec(train: pd.DataFrame) -> FeatureSpec:
    """Learn imputation and reference statistics from the (validated, raw) training rows."""
    if len(train) == 0:
        raise ValueError("cannot fit a feature spec on zero training rows")
    n = len(train)
    titles = pd.Series(derive_titles(train), index=train.index)
    age = pd.Series(_numeric(train, "Age", n), index=train.index)
    fare = pd.Series(_numeric(train, "Fare", n), index=train.index)
    pclass = pd.Series(_numeric(train, "Pclass", n), index=train.index)
    age_overall = float(age.median()) if age.notna().any() else 30.0
    age_by_title = {t: float(age[titles == t].median()) for t in TITLES if age[titles == t].notna().any()}
    fare_overall = float(fare.median()) if fare.notna().any() else 14.0
    fare_by_pclass = {
        str(int(c)): float(fare[pclass == c].median()) for c in (1, 2, 3) if fare[pclass == c].notna().any()
    }
    embarked = pd.Series(_text(train, "Embarked", n), dtype=object)
    embarked_mode = str(embarked.mode().iloc[0]) if embarked.notna().any() else "S"
    ranges: dict[str, tuple[float, float]] = {}
    for col in RANGE_COLUMNS:
        values = pd.Series(_numeric(train, col, n))
        if values.notna().any():
            ranges[col] = (float(values.min()), float(values.max()))
    raw_categories = {
        "Pclass": sorted({str(int(v)) for v in pclass.dropna()}),
        "Sex": sorted({v for v in _text(train, "Sex", n) if v}),
        "Embarked": sorted({v for v in _text(train, "Embarked", n) if v}),
        "Title": sorted(set(titles)),
    }
    missing_rate = {
        col: float(pd.Series(_text(train, col, n), dtype=object).isna().mean()) for col in IMPUTED_COLUMNS
    }
    return FeatureSpec(
        stats=FeatureStats(
            age_by_title=age_by_title, age_overall=age_overall, fare_by_pclass=fare_by_pclass,
            fare_overall=fare_overall, embarked_mode=embarked_mode,
        ),
        reference=ReferenceStats(rows=n, ranges=ranges, categories=raw_categories, missing_rate=missing_rate),
    )


def encode(columns: Columns, spec: FeatureSpec) -> np.ndarray:
    """Turn raw passenger columns into the model input matrix (float32, one column per FEATURE_NAMES).

    ``columns`` maps raw column names (schema.COLUMNS) to equal-length sequences: a pandas DataFrame, or a
    dict of lists/arrays. Missing optional values are imputed with the spec's fitted statistics.
    """
    n = _length(columns)
    stats = spec.stats
    pclass = _numeric(columns, "Pclass", n)
    sex = _text(columns, "Sex", n)
    age = _numeric(columns, "Age", n)
    sibsp = _numeric(columns, "SibSp", n)
    parch = _numeric(columns, "Parch", n)
    fare = _numeric(columns, "Fare", n)
    cabin = _text(columns, "Cabin", n)
    embarked = _text(columns, "Embarked", n)
    titles = derive_titles(columns)

    sex_male = np.array([1.0 if s == "male" else 0.0 for s in sex])
    age_missing = np.isnan(age)
    age_fill = np.array([stats.age_by_title.get(t, stats.age_overall) for t in titles])
    age_imputed = np.where(age_missing, age_fill, age)
    fare_fill = np.array([stats.fare_by_pclass.get(str(int(c)), stats.fare_overall) if not math.isnan(c)
                          else stats.fare_overall for c in pclass])
    fare_imputed = np.where(np.isnan(fare), fare_fill, fare)
    family = sibsp + parch + 1.0
    ports = [e if e in PORTS else stats.embarked_mode for e in embarked]

    out = np.empty((n, len(FEATURE_NAMES)), dtype=np.float32)
    out[:, 0] = pclass
    out[:, 1] = sex_male
    out[:, 2] = age_imputed
    out[:, 3] = age_missing
    out[:, 4] = age_imputed < 16
    out[:, 5] = sibsp
    out[:, 6] = parch
    out[:, 7] = family
    out[:, 8] = family == 1.0
    out[:, 9] = fare_imputed
    out[:, 10] = fare_imputed / family
    out[:, 11] = np.log1p(fare_imputed)
    out[:, 12] = [c is not None for c in cabin]
    base = 13
    for j, t in enumerate(TITLES):
        out[:, base + j] = [x == t for x in titles]
    base += len(TITLES)
    for j, p in enumerate(PORTS):
        out[:, base + j] = [x == p for x in ports]
    out[:, base + len(PORTS)] = (1.0 - sex_male) * (pclass == 3)
    return out


def _fmt(x: float) -> str:
    return f"{x:g}"


def drift_alerts(columns: Columns, spec: FeatureSpec) -> list[str]:
    """One readable sentence per row: what in it lies outside the training data, or ``NO_DRIFT``.

    Flags a numeric value outside the training range, a category never seen in training, and a missing
    value that had to be imputed (naming the imputed value and the training range).
    """
    n = _length(columns)
    ref = spec.reference
    stats = spec.stats
    numeric = {c: _numeric(columns, c, n) for c in RANGE_COLUMNS}
    titles = derive_titles(columns)
    pclass = _numeric(columns, "Pclass", n)
    texts = {c: _text(columns, c, n) for c in ("Sex", "Embarked", "Name")}
    results: list[str] = []
    for i in range(n):
        alerts: list[str] = []
        for col in RANGE_COLUMNS:
            value = float(numeric[col][i])
            lo_hi = ref.ranges.get(col)
            if lo_hi is None:
                continue
            lo, hi = lo_hi
            if math.isnan(value):
                if col == "Age":
                    fill = stats.age_by_title.get(titles[i], stats.age_overall)
                    alerts.append(f"Age is missing: imputed {_fmt(fill)} (median for title {titles[i]}; "
                                  f"training range {_fmt(lo)}–{_fmt(hi)})")
                elif col == "Fare":
                    key = str(int(pclass[i])) if not math.isnan(pclass[i]) else ""
                    fill = stats.fare_by_pclass.get(key, stats.fare_overall)
                    alerts.append(f"Fare is missing: imputed {_fmt(fill)} (training range {_fmt(lo)}–{_fmt(hi)})")
            elif value < lo or value > hi:
                alerts.append(f"{col} {_fmt(value)} is outside the training range {_fmt(lo)}–{_fmt(hi)}")
        categories = {
            "Pclass": str(int(pclass[i])) if not math.isnan(pclass[i]) else None,
            "Sex": texts["Sex"][i],
            "Embarked": texts["Embarked"][i],
            "Title": titles[i],
        }
        for col, value in categories.items():
            seen = ref.categories.get(col)
            if value is not None and seen is not None and value not in seen:
                alerts.append(f"{col} {value!r} was never seen in training (seen: {', '.join(seen)})")
        if texts["Embarked"][i] is None:
            alerts.append(f"Embarked is missing: imputed {stats.embarked_mode!r} (the most common port in training)")
        if texts["Name"][i] is None:
            alerts.append(f"Name is missing: title inferred as {titles[i]!r} from Sex and Age")
        results.append("; ".join(alerts) if alerts else NO_DRIFT)
    return results
