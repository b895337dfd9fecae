"""Each built-in transform and encoding on a small made-up dataset, in both the row and the column path."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lifeboat.dataset.encoder import FittedEncoder, encode, encode_with_alerts, fit
from lifeboat.dataset.spec import parse_spec

pytestmark = pytest.mark.unit

SPEC: dict[str, Any] = {
    "name": "shop",
    "label": {"column": "bought", "positive": True},
    "columns": [
        {"name": "bought", "type": "boolean", "role": "label"},
        {"name": "price", "type": "numeric", "nullable": True, "range": {"min": 0}},
        {"name": "items", "type": "integer", "nullable": True},
        {"name": "colour", "type": "categorical", "nullable": True, "vocabulary": ["red", "blue", "green"]},
        {"name": "note", "type": "text", "nullable": True},
        {"name": "member", "type": "boolean", "nullable": True},
    ],
    "derived": [
        {"name": "unit_price", "transform": "ratio", "numerator": "price", "denominator": "items"},
        {"name": "spend", "transform": "product", "columns": ["price", "items"]},
        {"name": "price_capped", "transform": "clip", "column": "price", "min": 1, "max": 50},
        {"name": "price_band", "transform": "bucket", "column": "price", "boundaries": [10, 100]},
        {"name": "words", "transform": "token_count", "column": "note"},
        {"name": "note_missing", "transform": "missing_indicator", "column": "note"},
        {"name": "warm", "transform": "indicator", "when": {"colour": {"in": ["red"]}, "member": {"eq": 1}}},
    ],
    "features": [
        {"column": "price", "impute": "median"},
        {"column": "items", "impute": "mean"},
        {"column": "member", "impute": "constant", "fill_value": -1},
        {"column": "unit_price"},
        {"column": "spend"},
        {"column": "price_capped"},
        {"column": "price_band"},
        {"column": "words"},
        {"column": "note_missing"},
        {"column": "warm"},
        {"column": "colour", "encoding": "onehot", "unknown": "other"},
    ],
    "models": {"lr": {"regParam": [0.1]}},
}

TRAIN = pd.DataFrame(
    {
        "bought": [True, False, True, False],
        "price": [5.0, 20.0, None, 200.0],
        "items": [1, 4, 2, None],
        "colour": ["red", "blue", None, "red"],
        "note": ["two words", None, "one", "  "],
        "member": [True, False, None, True],
    }
)


@pytest.fixture(scope="module")
def shop() -> FittedEncoder:
    return fit(parse_spec(SPEC), TRAIN)


def row(**values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"price": 20.0, "items": 4, "colour": "blue", "note": "a b c", "member": False}
    return {**base, **values}


def features_of(fitted: FittedEncoder, values: dict[str, Any]) -> dict[str, float]:
    return dict(zip(fitted.feature_names, encode(fitted, [values])[0].tolist(), strict=True))


def test_fitted_fills_and_names(shop: FittedEncoder) -> None:
    assert shop.statistics.fills == {"price": 20.0, "items": pytest.approx(7 / 3), "member": -1.0}
    assert shop.feature_names[-4:] == ("colour_red", "colour_blue", "colour_green", "colour_other")


def test_each_transform(shop: FittedEncoder) -> None:
    f = features_of(shop, row(price=30.0, items=3, colour="red", member=True, note=" x  y "))
    assert f["unit_price"] == 10.0
    assert f["spend"] == 90.0
    assert f["price_capped"] == 30.0
    assert f["price_band"] == 1.0
    assert f["words"] == 2.0
    assert f["note_missing"] == 0.0
    assert f["warm"] == 1.0
    assert (f["colour_red"], f["colour_other"]) == (1.0, 0.0)
    g = features_of(shop, row(price=None, items=None, member=None, note=None, colour="pink"))
    assert (g["price"], g["member"]) == (20.0, -1.0)
    assert g["items"] == pytest.approx(7 / 3)
    assert math.isnan(g["unit_price"])  # NaN price: the imputation is the feature's, not the ratio's input
    assert (g["words"], g["note_missing"], g["warm"]) == (0.0, 1.0, 0.0)
    assert (g["colour_blue"], g["colour_other"]) == (0.0, 1.0)
    h = features_of(shop, row(price=500.0, items=0))
    assert (h["price_capped"], h["price_band"], h["unit_price"]) == (50.0, 2.0, math.inf)


def test_row_path_equals_column_path_on_made_up_rows(shop: FittedEncoder) -> None:
    rng = np.random.default_rng(7)
    rows = [
        row(
            price=rng.choice([None, 0.0, 5.5, 99.0, 1e9]),
            items=rng.choice([None, 0, 1, 7]),
            colour=rng.choice([None, "red", "blue", "green", "pink"]),
            note=rng.choice([None, "", "one", "one two three"]),
            member=rng.choice([None, True, False]),
        )
        for _ in range(200)
    ]
    with np.errstate(all="ignore"):
        columns, alerts = encode_with_alerts(shop, rows)
        for i in range(0, 200, 8):
            few, few_alerts = encode_with_alerts(shop, rows[i : i + 8])
            assert few.tobytes() == columns[i : i + 8].tobytes()
            assert few_alerts == alerts[i : i + 8]


def test_default_alerts_of_a_spec_without_templates(shop: FittedEncoder) -> None:
    (alert,) = encode_with_alerts(shop, [row(price=900.0, colour="pink")])[1]
    assert alert == (
        "price 900 is outside the training range 5–200; "
        "colour 'pink' was never seen in training (seen: blue, red)"
    )


def test_no_rows_encode_to_an_empty_matrix(shop: FittedEncoder) -> None:
    width = len(shop.feature_names)
    assert encode(shop, []).shape == (0, width)
    assert encode(shop, TRAIN.head(0)).shape == (0, width)
    assert encode_with_alerts(shop, {"price": []})[1] == []
