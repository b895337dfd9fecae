"""The prediction log: window reading, trimming, bounded queue, broken paths, several writer processes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from lifeboat.prediction_log import META_COLUMNS, PredictionLog, read_window
from lifeboat.schema import COLUMN_NAMES

pytestmark = pytest.mark.unit


def passenger(i: int, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "PassengerId": i,
        "Pclass": 1 + i % 3,
        "Name": f"Doe, Mr. John {i}",
        "Sex": "male",
        "Age": 20.0 + i % 50,
        "SibSp": 0,
        "Parch": i % 2,
        "Ticket": f"T{i}",
        "Fare": 7.25 + i,
        "Cabin": None,
        "Embarked": "S",
    }
    row.update(changes)
    return row


def write(log: PredictionLog, ids: range, version: str = "1", at: datetime | None = None) -> None:
    rows = [passenger(i) for i in ids]
    assert log.append(rows, [0.25] * len(rows), [0] * len(rows), version, logged_at=at)


def test_window_holds_raw_columns_and_predictions_in_order(tmp_path: Path) -> None:
    path = tmp_path / "log" / "predictions.sqlite"
    log = PredictionLog(path, max_rows=1000)
    log.start()
    rows = [passenger(1, Age=None, Embarked=None), passenger(2, Name="Roe, Mrs. Jane", Sex="female")]
    log.append(rows, [0.1, 0.9], [0, 1], "7")
    assert log.flush()
    log.close()

    window = read_window(path)
    assert list(window.columns) == [*COLUMN_NAMES, *META_COLUMNS]
    assert window["PassengerId"].tolist() == [1, 2]
    assert window["Sex"].tolist() == ["male", "female"]
    assert pd.isna(window.loc[0, "Age"])
    assert window.loc[1, "Age"] == 22.0
    assert window.loc[0, "Embarked"] is None
    assert window["probability"].tolist() == [0.1, 0.9]
    assert window["prediction"].tolist() == [0, 1]
    assert window["model_version"].tolist() == ["7", "7"]
    assert str(window["logged_at"].dt.tz) == "UTC"
    assert window["Pclass"].dtype == "int64"
    assert window["Age"].dtype == "float64"
    assert log.stats().written == 2
    assert log.stats().failed == 0


def test_window_last_n_and_since(tmp_path: Path) -> None:
    path = tmp_path / "predictions.sqlite"
    log = PredictionLog(path, max_rows=1000)
    log.start()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for day in range(5):
        write(log, range(day * 10, day * 10 + 10), version=str(day), at=start + timedelta(days=day))
    assert log.flush()
    log.close()

    last = read_window(path, last_n=15)
    assert last["PassengerId"].tolist() == list(range(35, 50))
    since = read_window(path, since=start + timedelta(days=3))
    assert set(since["model_version"]) == {"3", "4"}
    assert len(since) == 20
    both = read_window(path, last_n=5, since="2026-01-04T00:00:00+00:00")
    assert both["PassengerId"].tolist() == list(range(45, 50))
    naive = read_window(path, since=datetime(2026, 1, 5))  # naive means UTC
    assert naive["model_version"].unique().tolist() == ["4"]


def test_missing_file_reads_as_an_empty_window(tmp_path: Path) -> None:
    window = read_window(tmp_path / "nothing-here.sqlite")
    assert window.empty
    assert list(window.columns) == [*COLUMN_NAMES, *META_COLUMNS]


def test_log_keeps_at_most_max_rows_trimming_the_oldest(tmp_path: Path) -> None:
    path = tmp_path / "predictions.sqlite"
    log = PredictionLog(path, max_rows=100)
    log.start()
    for start in range(0, 350, 50):
        write(log, range(start, start + 50))
        assert log.flush()
    log.close()

    window = read_window(path)
    assert len(window) == 100
    assert window["PassengerId"].tolist() == list(range(250, 350))


def test_full_queue_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "predictions.sqlite", max_rows=1000, max_pending_rows=10)
    # The writer thread is not started: nothing drains the queue.
    write(log, range(8))
    started = time.perf_counter()
    accepted = log.append([passenger(i) for i in range(5)], [0.5] * 5, [1] * 5, "1")
    assert time.perf_counter() - started < 0.05
    assert accepted is False
    stats = log.stats()
    assert (stats.pending, stats.dropped, stats.written) == (8, 5, 0)


def test_a_path_that_cannot_be_created_fails_rows_not_callers(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    log = PredictionLog(blocker / "sub" / "predictions.sqlite", max_rows=1000)
    log.start()
    write(log, range(3))
    assert log.flush()
    log.close()
    stats = log.stats()
    assert (stats.written, stats.failed) == (0, 3)


def test_a_locked_database_never_blocks_the_caller(tmp_path: Path) -> None:
    path = tmp_path / "predictions.sqlite"
    log = PredictionLog(path, max_rows=1000)
    log.start()
    write(log, range(2))
    assert log.flush()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # the writer now waits (busy timeout) on every insert
    try:
        started = time.perf_counter()
        for i in range(50):
            write(log, range(100 + i * 10, 110 + i * 10))
        assert time.perf_counter() - started < 0.5
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert log.flush(timeout=30)
    log.close()
    assert log.stats().written + log.stats().failed == 502


_WRITER = """
import sys
from lifeboat.prediction_log import PredictionLog
log = PredictionLog(sys.argv[1], max_rows=100000)
log.start()
for start in range(0, 2000, 20):
    rows = [{"PassengerId": int(sys.argv[2]) + i, "Pclass": 3, "Sex": "male", "SibSp": 0, "Parch": 0}
            for i in range(start, start + 20)]
    log.append(rows, [0.5] * 20, [1] * 20, sys.argv[2])
assert log.flush(60)
log.close()
stats = log.stats()
print(stats.written, stats.failed)
"""


def test_several_processes_write_one_file(tmp_path: Path) -> None:
    path = tmp_path / "predictions.sqlite"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), str(base)], stdout=subprocess.PIPE, text=True
        )
        for base in (100_000, 200_000)
    ]
    outputs = [w.communicate(timeout=120)[0].split() for w in writers]
    assert [w.returncode for w in writers] == [0, 0]
    assert outputs == [["2000", "0"], ["2000", "0"]]
    window = read_window(path)
    assert len(window) == 4000
    assert window["PassengerId"].is_unique
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
