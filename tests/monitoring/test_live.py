"""Live performance: the join of logged predictions with their labels, and the figures computed from it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from lifeboat.dataset.spec import load_spec
from lifeboat.monitoring.feedback import LabelIn, ingest_labels
from lifeboat.monitoring.live import (
    JOINED_META,
    calibration_table,
    labelled_predictions,
    live_performance,
    roc_auc,
)
from lifeboat.monitoring.prediction_log import PredictionLog, log_columns

pytestmark = pytest.mark.unit

DATA = Path(__file__).resolve().parents[2] / "data"
TITANIC = load_spec(DATA / "titanic" / "dataset.yaml")
COLUMNS = log_columns(TITANIC)


def passenger(i: int) -> dict[str, Any]:
    return {"PassengerId": i, "Pclass": 1 + i % 3, "Sex": "male" if i % 2 else "female", "Age": 20.0 + i}


def write_log(path: Path, rows: list[tuple[str, float, str]], at: datetime | None = None) -> Path:
    """A log with one row per (request id, probability, model version)."""
    log = PredictionLog(path, max_rows=100_000, columns=COLUMNS)
    for i, (rid, probability, version) in enumerate(rows):
        log.append(
            [passenger(i)], [probability], [int(probability >= 0.5)], version, logged_at=at, request_ids=[rid]
        )
    log.close()
    return path


def label(path: Path, pairs: list[tuple[str, int]]) -> None:
    ingest_labels(path, TITANIC, [LabelIn(rid, value, row) for row, (rid, value) in enumerate(pairs)])


def test_joins_only_labelled_rows_with_their_label_and_features(tmp_path: Path) -> None:
    path = write_log(tmp_path / "log.sqlite", [("a", 0.9, "1"), ("b", 0.2, "1"), ("c", 0.7, "2")])
    label(path, [("a", 1), ("c", 0)])
    frame = labelled_predictions(path, COLUMNS)
    assert list(frame.columns) == [c.name for c in COLUMNS] + list(JOINED_META)
    assert frame["request_id"].tolist() == ["a", "c"]
    assert frame["target"].tolist() == [1, 0]
    assert frame["prediction"].tolist() == [1, 1]
    assert frame["model_version"].tolist() == ["1", "2"]
    assert frame["Sex"].tolist() == ["female", "female"]
    assert frame["Age"].tolist() == [20.0, 22.0]


def test_filters_by_model_version_newest_rows_and_time(tmp_path: Path) -> None:
    old = datetime(2026, 1, 1, tzinfo=UTC)
    path = write_log(tmp_path / "log.sqlite", [("a", 0.9, "1"), ("b", 0.2, "1")], at=old)
    write_log(path, [("c", 0.7, "2"), ("d", 0.6, "2"), ("e", 0.1, "2")])
    label(path, [("a", 1), ("b", 0), ("c", 1), ("d", 0), ("e", 0)])
    assert labelled_predictions(path, model_version="2")["request_id"].tolist() == ["c", "d", "e"]
    assert labelled_predictions(path, last_n=2)["request_id"].tolist() == ["d", "e"]
    since = old + timedelta(days=1)
    assert labelled_predictions(path, since=since)["request_id"].tolist() == ["c", "d", "e"]
    with pytest.raises(ValueError, match="last_n"):
        labelled_predictions(path, last_n=-1)


def test_a_request_id_logged_twice_counts_once_with_its_newest_prediction(tmp_path: Path) -> None:
    path = write_log(tmp_path / "log.sqlite", [("same", 0.2, "1"), ("same", 0.8, "2")])
    label(path, [("same", 1)])
    frame = labelled_predictions(path)
    assert len(frame) == 1
    assert frame["probability"].tolist() == [0.8]
    assert frame["model_version"].tolist() == ["2"]


def test_no_file_no_labels_table_or_no_labels_gives_an_empty_typed_frame(tmp_path: Path) -> None:
    assert labelled_predictions(tmp_path / "missing.sqlite").empty
    path = write_log(tmp_path / "log.sqlite", [("a", 0.9, "1")])
    frame = labelled_predictions(path, COLUMNS)
    assert frame.empty
    assert frame["target"].dtype == "int64"
    assert live_performance(frame).labelled_rows == 0
    assert live_performance(frame).accuracy is None


def test_figures_equal_scikit_learns() -> None:
    rng = np.random.default_rng(7)
    target = rng.integers(0, 2, 500)
    probability = np.clip(0.3 * target + rng.random(500) * 0.7, 0, 1).round(2)  # rounded: ties
    prediction = (probability >= 0.5).astype(int)
    frame = pd.DataFrame(
        {"target": target, "prediction": prediction, "probability": probability, "model_version": "3"}
    )
    figures = live_performance(frame)
    assert figures.labelled_rows == 500
    assert figures.positives == int(target.sum())
    assert figures.model_versions == ["3"]
    assert figures.accuracy == pytest.approx(accuracy_score(target, prediction))
    assert figures.roc_auc == pytest.approx(roc_auc_score(target, probability), abs=1e-12)
    assert figures.precision == pytest.approx(precision_score(target, prediction))
    assert figures.recall == pytest.approx(recall_score(target, prediction))
    assert figures.f1 == pytest.approx(f1_score(target, prediction))
    assert figures.brier == pytest.approx(brier_score_loss(target, probability))


def test_roc_auc_is_undefined_with_one_class_and_precision_without_positive_predictions() -> None:
    assert roc_auc(np.array([1, 1, 1]), np.array([0.1, 0.5, 0.9])) is None
    frame = pd.DataFrame(
        {"target": [0, 0], "prediction": [0, 0], "probability": [0.1, 0.2], "model_version": "1"}
    )
    figures = live_performance(frame)
    assert figures.roc_auc is None
    assert figures.precision is None
    assert figures.recall is None
    assert figures.accuracy == 1.0


def test_calibration_table_bins_rows_and_measures_the_gap() -> None:
    target = np.array([0, 0, 1, 1])
    probability = np.array([0.05, 0.15, 0.95, 1.0])
    table, ece = calibration_table(target, probability, bins=10)
    assert [b.rows for b in table] == [1, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    assert table[9].positive_rate == 1.0
    assert table[9].mean_probability == pytest.approx(0.975)
    assert table[2].mean_probability is None
    assert ece == pytest.approx((0.05 + 0.15 + 2 * 0.025) / 4)
    _, perfect = calibration_table(np.array([0, 1]), np.array([0.0, 1.0]))
    assert perfect == 0.0
