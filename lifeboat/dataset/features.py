"""Feature encoding, written once and used by Spark training and by serving.

Training runs :func:`encode` inside Spark (``mapInPandas``) and serving runs the very same function on the
request's rows, so a raw passenger always becomes the same model input on both sides (see DESIGN.md, "Skew").

The encoding has two parts:

* **fitted statistics** (:class:`FeatureStats`, :class:`ReferenceStats`), learned from the training rows by
  :func:`fit_feature_spec` and shipped with the model as ``feature_spec.json``;
* the pure transform :func:`encode`: raw columns + :class:`FeatureSpec` -> a float32 matrix whose columns
  are :data:`FEATURE_NAMES`.

Every categorical is encoded as plain 0/1 or numeric columns (no Spark ML categorical metadata), which is what
lets tree models convert to ONNX exactly (docs/stack-notes.md).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Version of the encoding; bump it whenever :func:`encode` changes meaning, so old specs are refused.
ENCODING_VERSION = 1

TITLES: tuple[str, ...] = ("Mr", "Mrs", "Miss", "Master", "Rare")
PORTS: tuple[str, ...] = ("C", "Q", "S")
_TITLE_ALIASES = {
    "Mr": "Mr",
    "Mrs": "Mrs",
    "Mme": "Mrs",
    "Miss": "Miss",
    "Mlle": "Miss",
    "Ms": "Miss",
    "Master": "Master",
}
_TITLE_RE = re.compile(r",\s*([^.,]+)\.")

FEATURE_NAMES: tuple[str, ...] = (
    "pclass",
    "sex_male",
    "age",
    "age_missing",
    "is_child",
    "sibsp",
    "parch",
    "family_size",
    "is_alone",
    "fare",
    "fare_per_person",
    "log_fare",
    "cabin_known",
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
                    f"feature spec has encoding version {version}; "
                    f"this code encodes version {ENCODING_VERSION}"
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
    append = out.append
    for v in columns[name]:
        if v.__class__ is str:  # the common case (every served row), checked first
            append(v.strip() or None)
        elif v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            append(None)
        else:
            append(str(v).strip() or None)
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


def _titles(names: list[str | None], sexes: list[str | None], ages: np.ndarray) -> list[str]:
    return [title_of(nm, sx, a) for nm, sx, a in zip(names, sexes, ages.tolist(), strict=True)]


def derive_titles(columns: Columns) -> list[str]:
    """Title group of every row (see :func:`title_of`)."""
    n = _length(columns)
    return _titles(_text(columns, "Name", n), _text(columns, "Sex", n), _numeric(columns, "Age", n))


@dataclass(frozen=True)
class _Passengers:
    """Raw columns read once (numbers as float64 with NaN, text stripped or None) for encoding and alerts."""

    n: int
    numeric: dict[str, np.ndarray]
    text: dict[str, list[str | None]]
    titles: list[str]


_NUMERIC_COLUMNS = ("Pclass", "Age", "SibSp", "Parch", "Fare")
_TITLE_CODES = {t: j for j, t in enumerate(TITLES)}
_PORT_CODES: dict[str | None, int] = {p: j for j, p in enumerate(PORTS)}
#: Up to this many rows, drift sentences are written row by row without the bulk pre-check (cheaper).
_ROW_BY_ROW = 16
_TEXT_COLUMNS = ("Sex", "Cabin", "Embarked", "Name")


def _read(columns: Columns) -> _Passengers:
    n = _length(columns)
    numeric = {name: _numeric(columns, name, n) for name in _NUMERIC_COLUMNS}
    text = {name: _text(columns, name, n) for name in _TEXT_COLUMNS}
    return _Passengers(n, numeric, text, _titles(text["Name"], text["Sex"], numeric["Age"]))


def _by_pclass(pclass: np.ndarray, table: dict[str, float], default: float) -> np.ndarray:
    """``table[str(int(c))]`` for each class ``c`` (``default`` when missing or unknown), per class."""
    out = np.full(pclass.shape[0], default, dtype=np.float64)
    for c in _distinct(pclass):
        out[pclass == c] = table.get(str(int(c)), default)
    return out


def _distinct(values: np.ndarray) -> set[float]:
    """The distinct values of a float column, NaN left out."""
    return {v for v in values.tolist() if v == v}


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
            age_by_title=age_by_title,
            age_overall=age_overall,
            fare_by_pclass=fare_by_pclass,
            fare_overall=fare_overall,
            embarked_mode=embarked_mode,
        ),
        reference=ReferenceStats(rows=n, ranges=ranges, categories=raw_categories, missing_rate=missing_rate),
    )


def encode(columns: Columns, spec: FeatureSpec) -> np.ndarray:
    """Turn raw passenger columns into the model input matrix (float32, one column per FEATURE_NAMES).

    ``columns`` maps raw column names (schema.COLUMNS) to equal-length sequences: a pandas DataFrame, or a
    dict of lists/arrays. Missing optional values are imputed with the spec's fitted statistics.
    """
    return _encode(_read(columns), spec)


def encode_with_alerts(columns: Columns, spec: FeatureSpec) -> tuple[np.ndarray, list[str]]:
    """``(encode(columns, spec), drift_alerts(columns, spec))`` reading the columns once (serving's path)."""
    passengers = _read(columns)
    return _encode(passengers, spec), _drift_alerts(passengers, spec)


def _encode(passengers: _Passengers, spec: FeatureSpec) -> np.ndarray:
    """The model input matrix: row by row in plain Python for a few rows, else column-wise with numpy."""
    if passengers.n <= _ROW_BY_ROW:
        try:
            return _encode_rows(passengers, spec)
        except (ZeroDivisionError, ValueError, OverflowError, FloatingPointError):  # odd values: numpy path
            pass
    return _encode_columns(passengers, spec)


def _encode_rows(passengers: _Passengers, spec: FeatureSpec) -> np.ndarray:
    """:func:`_encode_columns`, row by row in plain Python: the same matrix, bit for bit.

    Serving encodes one row per request, and for a few rows numpy's fixed cost per call (about thirty calls,
    whatever the row count) is most of the work. Every operation is the one numpy does: IEEE float64 sums,
    division and comparisons, ``np.log1p`` itself, then one conversion to float32. Values Python refuses
    where numpy answers inf or NaN (a zero family size, ``log1p`` below -1) raise, and the caller falls back
    to the numpy path.
    """
    stats = spec.stats
    text = passengers.text
    pclasses, ages, sibsps, parches, fares = (passengers.numeric[c].tolist() for c in _NUMERIC_COLUMNS)
    mode = _PORT_CODES.get(stats.embarked_mode, -1)
    no_title = [0.0] * len(TITLES)
    no_port = [0.0] * len(PORTS)
    rows: list[list[float]] = []
    fares_imputed: list[float] = []
    for i, title in enumerate(passengers.titles):
        pclass, age, sibsp, parch, fare = pclasses[i], ages[i], sibsps[i], parches[i], fares[i]
        male = 1.0 if text["Sex"][i] == "male" else 0.0
        age_missing = age != age
        if age_missing:
            age = stats.age_by_title.get(title, stats.age_overall)
        if fare != fare:
            fare = (
                stats.fare_by_pclass.get(str(int(pclass)), stats.fare_overall)
                if pclass == pclass
                else (stats.fare_overall)
            )
        family = sibsp + parch + 1.0
        title_hot = list(no_title)
        code = _TITLE_CODES.get(title, -1)
        if code >= 0:
            title_hot[code] = 1.0
        port_hot = list(no_port)
        code = _PORT_CODES.get(text["Embarked"][i], mode)
        if code >= 0:
            port_hot[code] = 1.0
        fares_imputed.append(fare)
        rows.append(
            [
                pclass,
                male,
                age,
                float(age_missing),
                float(age < 16),
                sibsp,
                parch,
                family,
                float(family == 1.0),
                fare,
                fare / family,
                0.0,  # log1p(fare): below, in one numpy call
                float(text["Cabin"][i] is not None),
                *title_hot,
                *port_hot,
                (1.0 - male) * float(pclass == 3),
            ]
        )
    with np.errstate(invalid="raise", divide="raise"):
        logs = np.log1p(fares_imputed).tolist()
    for row, value in zip(rows, logs, strict=True):
        row[11] = value
    return np.array(rows, dtype=np.float32).reshape(passengers.n, len(FEATURE_NAMES))


def _encode_columns(passengers: _Passengers, spec: FeatureSpec) -> np.ndarray:
    # Few numpy calls whatever the number of rows.
    n = passengers.n
    stats = spec.stats
    numeric, text = passengers.numeric, passengers.text
    pclass, age, sibsp, parch, fare = (numeric[c] for c in _NUMERIC_COLUMNS)
    titles = passengers.titles
    title_codes = np.array([_TITLE_CODES.get(t, -1) for t in titles], dtype=np.int64)
    # an unknown or missing port counts as the training mode (-1, no port, if the mode is none of PORTS)
    mode = _PORT_CODES.get(stats.embarked_mode, -1)
    port_codes = np.array([_PORT_CODES.get(e, mode) for e in text["Embarked"]], dtype=np.int64)

    sex_male = np.array([s == "male" for s in text["Sex"]], dtype=np.float64)
    age_missing = np.isnan(age)
    age_imputed = np.where(age_missing, [stats.age_by_title.get(t, stats.age_overall) for t in titles], age)
    fare_imputed = np.where(
        np.isnan(fare), _by_pclass(pclass, stats.fare_by_pclass, stats.fare_overall), fare
    )
    family = sibsp + parch + 1.0

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
    out[:, 12] = [c is not None for c in text["Cabin"]]
    base = 13
    out[:, base : base + len(TITLES)] = title_codes[:, None] == np.arange(len(TITLES))  # one-hot
    base += len(TITLES)
    out[:, base : base + len(PORTS)] = port_codes[:, None] == np.arange(len(PORTS))
    out[:, base + len(PORTS)] = (1.0 - sex_male) * (pclass == 3)
    return out


def _fmt(x: float) -> str:
    return f"{x:g}"


def _span(lo: float, hi: float) -> str:
    return f"{_fmt(lo)}–{_fmt(hi)}"


def drift_alerts(columns: Columns, spec: FeatureSpec) -> list[str]:
    """One readable sentence per row: what in it lies outside the training data, or ``NO_DRIFT``.

    Flags a numeric value outside the training range, a category never seen in training, and a missing
    value that had to be imputed (naming the imputed value and the training range).
    """
    return _drift_alerts(_read(columns), spec)


def _drift_alerts(passengers: _Passengers, spec: FeatureSpec) -> list[str]:
    """Find the rows with anything to say in bulk; only those get a sentence written row by row."""
    if passengers.n <= _ROW_BY_ROW:
        return [_row_alerts(passengers, i, spec) for i in range(passengers.n)]
    ref = spec.reference
    numeric, text = passengers.numeric, passengers.text
    flagged = np.zeros(passengers.n, dtype=bool)
    for col in RANGE_COLUMNS:
        lo_hi = ref.ranges.get(col)
        if lo_hi is None:
            continue
        values = numeric[col]
        missing = np.isnan(values)
        flagged |= ~missing & ((values < lo_hi[0]) | (values > lo_hi[1]))
        if col in ("Age", "Fare"):
            flagged |= missing
    seen_pclass = ref.categories.get("Pclass")
    if seen_pclass is not None:
        pclass = numeric["Pclass"]
        for c in _distinct(pclass):
            if str(int(c)) not in seen_pclass:
                flagged |= pclass == c
    categories: tuple[tuple[str, Sequence[str | None]], ...] = (
        ("Sex", text["Sex"]),
        ("Embarked", text["Embarked"]),
        ("Title", passengers.titles),
    )
    for col, category in categories:
        seen = ref.categories.get(col)
        if seen is not None:
            known = set(seen)
            flagged |= np.array([v is not None and v not in known for v in category], dtype=bool)
    flagged |= np.array([v is None for v in text["Embarked"]], dtype=bool)
    flagged |= np.array([v is None for v in text["Name"]], dtype=bool)
    results = [NO_DRIFT] * passengers.n
    for i in np.flatnonzero(flagged).tolist():
        results[i] = _row_alerts(passengers, i, spec)
    return results


def _row_alerts(passengers: _Passengers, i: int, spec: FeatureSpec) -> str:
    """The drift sentence of row ``i`` (``NO_DRIFT`` when nothing is off)."""
    ref = spec.reference
    stats = spec.stats
    numeric, text = passengers.numeric, passengers.text
    title = passengers.titles[i]
    pclass = float(numeric["Pclass"][i])
    alerts: list[str] = []
    for col in RANGE_COLUMNS:
        value = float(numeric[col][i])
        lo_hi = ref.ranges.get(col)
        if lo_hi is None:
            continue
        lo, hi = lo_hi
        if math.isnan(value):
            if col == "Age":
                fill = stats.age_by_title.get(title, stats.age_overall)
                alerts.append(
                    f"Age is missing: imputed {_fmt(fill)} (median for title {title}; "
                    f"training range {_span(lo, hi)})"
                )
            elif col == "Fare":
                key = str(int(pclass)) if not math.isnan(pclass) else ""
                fill = stats.fare_by_pclass.get(key, stats.fare_overall)
                alerts.append(f"Fare is missing: imputed {_fmt(fill)} (training range {_span(lo, hi)})")
        elif value < lo or value > hi:
            alerts.append(f"{col} {_fmt(value)} is outside the training range {_span(lo, hi)}")
    categories = {
        "Pclass": str(int(pclass)) if not math.isnan(pclass) else None,
        "Sex": text["Sex"][i],
        "Embarked": text["Embarked"][i],
        "Title": title,
    }
    for col, category in categories.items():
        seen = ref.categories.get(col)
        if category is not None and seen is not None and category not in seen:
            alerts.append(f"{col} {category!r} was never seen in training (seen: {', '.join(seen)})")
    if text["Embarked"][i] is None:
        alerts.append(
            f"Embarked is missing: imputed {stats.embarked_mode!r} (the most common port in training)"
        )
    if text["Name"][i] is None:
        alerts.append(f"Name is missing: title inferred as {title!r} from Sex and Age")
    return "; ".join(alerts) if alerts else NO_DRIFT
