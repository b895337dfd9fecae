#!/usr/bin/env python3
"""Profile data/adult/raw/train.csv and measure two baselines (not part of the product).

Prints the column profile, label base rate and duplicate counts recorded in README.md, then 5-fold stratified
cross-validation (shuffled, seed 0) of

* logistic regression: numeric columns median-imputed and standardised, categorical columns one-hot encoded
  (missing as its own level, unseen levels ignored), ``LogisticRegression(max_iter=2000)``;
* ``HistGradientBoostingClassifier(random_state=0)`` with native categorical support (and native missing
  values);

reporting ROC-AUC and accuracy (threshold 0.5) as mean ± standard deviation over the folds, and the same two
models fitted on the original UCI train part (the first 32,561 rows) and scored on the test part (the last
16,281 rows). Needs pandas and scikit-learn::

    .venv/bin/python data/adult/profile_baseline.py [--csv data/adult/raw/train.csv] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

LABEL = "income_over_50k"
NUMERIC = ["age", "education_num", "capital_gain", "capital_loss", "hours_per_week"]
CATEGORICAL = [
    "workclass",
    "education",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "native_country",
]
UCI_TRAIN_ROWS = 32561
SEED = 0


def load(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype={c: object for c in CATEGORICAL}, keep_default_na=False, na_values=[""])
    for column in CATEGORICAL:
        frame[column] = frame[column].astype("category")
    return frame


def profile(frame: pd.DataFrame) -> dict[str, object]:
    columns = {}
    for column in frame.columns:
        values = frame[column]
        entry: dict[str, object] = {"missing": int(values.isna().sum())}
        if column in CATEGORICAL:
            entry.update(type="categorical", levels=int(values.nunique()))
        else:
            entry.update(type="integer", min=int(values.min()), max=int(values.max()))
        columns[column] = entry
    features = frame.drop(columns=[LABEL]).astype(str)
    key = pd.util.hash_pandas_object(features, index=False)
    labels_per_key = frame[LABEL].groupby(key.to_numpy()).nunique()
    return {
        "rows": len(frame),
        "base_rate": float(frame[LABEL].mean()),
        "positives": int(frame[LABEL].sum()),
        "base_rate_uci_train": float(frame[LABEL].iloc[:UCI_TRAIN_ROWS].mean()),
        "base_rate_uci_test": float(frame[LABEL].iloc[UCI_TRAIN_ROWS:].mean()),
        "rows_with_missing": int(frame.isna().any(axis=1).sum()),
        "duplicate_rows": int(frame.astype(str).duplicated().sum()),
        "feature_vectors_with_both_labels": int((labels_per_key > 1).sum()),
        "columns": columns,
    }


def models() -> dict[str, object]:
    logistic = make_pipeline(
        ColumnTransformer(
            [
                ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMERIC),
                (
                    "cat",
                    make_pipeline(
                        SimpleImputer(strategy="constant", fill_value="__missing__"),
                        OneHotEncoder(handle_unknown="ignore"),
                    ),
                    CATEGORICAL,
                ),
            ]
        ),
        LogisticRegression(max_iter=2000),
    )
    boosting = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=SEED)
    return {"logistic_regression": logistic, "hist_gradient_boosting": boosting}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path, default=Path(__file__).resolve().parent / "raw" / "train.csv")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    frame = load(args.csv)
    x = frame[NUMERIC + CATEGORICAL]
    # The one-hot pipeline gets plain objects (NaN for missing); the boosting model pandas categoricals.
    x_plain = x.astype({c: object for c in CATEGORICAL})
    y = frame[LABEL].to_numpy()
    result: dict[str, object] = {
        "versions": {"sklearn": sklearn.__version__, "pandas": pd.__version__, "numpy": np.__version__},
        "profile": profile(frame),
        "cv": {},
        "uci_split": {},
    }
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=SEED)
    for name, model in models().items():
        data = x_plain if name == "logistic_regression" else x
        started = time.perf_counter()
        scores = cross_validate(model, data, y, cv=folds, scoring=("roc_auc", "accuracy"), n_jobs=1)
        result["cv"][name] = {
            "roc_auc_mean": float(scores["test_roc_auc"].mean()),
            "roc_auc_std": float(scores["test_roc_auc"].std()),
            "accuracy_mean": float(scores["test_accuracy"].mean()),
            "accuracy_std": float(scores["test_accuracy"].std()),
            "roc_auc_folds": [round(float(s), 5) for s in scores["test_roc_auc"]],
            "seconds": round(time.perf_counter() - started, 1),
        }
        model.fit(data.iloc[:UCI_TRAIN_ROWS], y[:UCI_TRAIN_ROWS])
        proba = model.predict_proba(data.iloc[UCI_TRAIN_ROWS:])[:, 1]
        result["uci_split"][name] = {
            "roc_auc": float(roc_auc_score(y[UCI_TRAIN_ROWS:], proba)),
            "accuracy": float(accuracy_score(y[UCI_TRAIN_ROWS:], (proba >= 0.5).astype(int))),
        }

    print(json.dumps(result["profile"], indent=2))
    print(f"versions: {result['versions']}")
    print("\n5-fold stratified CV (shuffle, seed 0), mean ± std over folds:")
    for name, s in result["cv"].items():
        print(
            f"  {name:24s} ROC-AUC {s['roc_auc_mean']:.4f} ± {s['roc_auc_std']:.4f}   "
            f"accuracy {s['accuracy_mean']:.4f} ± {s['accuracy_std']:.4f}   ({s['seconds']} s)"
        )
    print("\nOriginal UCI split (fit on the first 32,561 rows, score the last 16,281):")
    for name, s in result["uci_split"].items():
        print(f"  {name:24s} ROC-AUC {s['roc_auc']:.4f}   accuracy {s['accuracy']:.4f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
