"""Shared constants of the drift tests: batch size, id range and what each drift spec must flag."""

from __future__ import annotations

#: Rows of the batches the calibration is about (LIFEBOAT_DRIFT_MIN_ROWS defaults to this size).
BATCH_ROWS = 300
#: Ids of simulated passengers start here (Kaggle's go up to 1309).
START_ID = 10_000

#: Every supported spec: the columns it must flag, and the other columns it may also flag, with the reason.
SPEC_EXPECTATIONS: dict[str, tuple[set[str], dict[str, str]]] = {
    "Age+15": ({"Age"}, {}),
    "Fare*3": ({"Fare"}, {}),
    "SibSp+1": ({"SibSp"}, {}),
    "Sex=male:0.8": (
        {"Sex"},
        {"Title": "Title follows Sex: more men means more 'Mr' (and fewer 'Mrs'/'Miss')"},
    ),
    "Pclass=3:0.7": (
        {"Pclass"},
        {
            "Fare": "third-class fares are far lower",
            "Age": "third-class passengers were younger",
            "Age_missing": "ages are missing far more often in third class",
            "Embarked": "nearly every Queenstown passenger travelled third class",
            "Title": "the title mix differs by class (more 'Mr' and 'Master' in third)",
        },
    ),
    "Embarked=Q:0.3": (
        {"Embarked"},
        {
            "Pclass": "Queenstown passengers were 94 % third class",
            "Age_missing": "most Queenstown passengers have no recorded age",
            "Title": "more young unmarried women ('Miss') embarked at Queenstown",
            "Fare": "Queenstown fares were low",
            "Age": "Queenstown passengers were younger",
        },
    ),
    "missing=Age:0.3": ({"Age_missing"}, {}),
    "Age+15,Fare*3": ({"Age", "Fare"}, {}),
}

#: What Titanic's drift report compares (data/titanic/dataset.yaml): the tests pin it.
TITANIC_NUMERICAL: tuple[str, ...] = ("Age", "Fare", "SibSp", "Parch")
TITANIC_CATEGORICAL: tuple[str, ...] = ("Pclass", "Sex", "Embarked", "Title", "Age_missing", "Fare_missing")
TITANIC_ANALYSED: tuple[str, ...] = (*TITANIC_NUMERICAL, *TITANIC_CATEGORICAL)
