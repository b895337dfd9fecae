"""Behavioural tests of the served model (directional, invariance, minimum functionality), through the API.

They hold for any sensible champion: the sklearn test model today, a version trained by the Spark job later.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.serving.serving_support import without_ids

pytestmark = pytest.mark.integration

BASE = {"Age": 30.0, "SibSp": 0, "Parch": 0, "Embarked": "S", "Cabin": None, "Ticket": "349909"}
FIRST_CLASS_WOMAN = {**BASE, "Pclass": 1, "Sex": "female", "Name": "Smith, Mrs. Mary", "Fare": 80.0}
THIRD_CLASS_MAN = {**BASE, "Pclass": 3, "Sex": "male", "Name": "Smith, Mr. John", "Fare": 8.05}


def probability(client: Any, passenger: dict[str, Any]) -> float:
    response = client.post("/predict", json=passenger)
    assert response.status_code == 200, response.text
    return float(response.json()["probability_survive"])


def test_a_first_class_woman_is_far_likelier_to_survive_than_a_third_class_man(served: Any) -> None:
    woman, man = probability(served, FIRST_CLASS_WOMAN), probability(served, THIRD_CLASS_MAN)
    assert woman - man >= 0.4, (woman, man)
    assert woman >= 0.5 > man


@pytest.mark.parametrize("pclass", [1, 2, 3])
def test_women_are_likelier_to_survive_than_men_in_every_class(served: Any, pclass: int) -> None:
    woman = probability(served, {**FIRST_CLASS_WOMAN, "Pclass": pclass})
    man = probability(served, {**THIRD_CLASS_MAN, "Pclass": pclass, "Fare": FIRST_CLASS_WOMAN["Fare"]})
    assert woman > man


def test_predictions_ignore_id_personal_name_and_ticket(served: Any, test_rows: list[dict[str, Any]]) -> None:
    rows = [r for r in test_rows if r["Name"] and "," in r["Name"] and "." in r["Name"]][:40]
    variants = []
    for i, row in enumerate(rows):
        _surname, rest = row["Name"].split(",", 1)
        title = rest.split(".", 1)[0]
        variants.append(
            {
                **row,
                "PassengerId": 100_000 + i,
                "Name": f"Otherperson, {title}. Anne Marie",
                "Ticket": f"XYZ {i}",
            }
        )
    original = served.post("/predict/batch", json={"passengers": rows}).json()["predictions"]
    changed = served.post("/predict/batch", json={"passengers": variants}).json()["predictions"]
    assert len(original) == len(changed) == 40
    assert without_ids(changed) == without_ids(original)


def test_the_test_set_gets_both_classes_with_women_ahead(
    served: Any, test_rows: list[dict[str, Any]]
) -> None:
    predictions = served.post("/predict/batch", json={"passengers": test_rows}).json()["predictions"]
    by_sex: dict[str, list[int]] = {"female": [], "male": []}
    for row, prediction in zip(test_rows, predictions, strict=True):
        by_sex[row["Sex"]].append(prediction["survived"])
    rate = {sex: sum(v) / len(v) for sex, v in by_sex.items()}
    assert 0.1 < sum(p["survived"] for p in predictions) / len(predictions) < 0.7
    assert rate["female"] > rate["male"] + 0.3, rate
