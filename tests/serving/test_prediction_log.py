"""The prediction log: window reading, trimming, bounded queue, broken paths, several writer processes, and
the group commit (the caller only queues; the writer groups many requests into one transaction)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lifeboat.dataset.schema import COLUMN_NAMES
from lifeboat.dataset.spec import load_spec
from lifeboat.monitoring.prediction_log import (
    META_COLUMNS,
    LogColumn,
    PredictionLog,
    log_columns,
    read_window,
)

pytestmark = pytest.mark.unit

TITANIC_SPEC = Path(__file__).resolve().parents[2] / "data" / "titanic" / "dataset.yaml"
#: Titanic's raw columns, as the server logs them.
TITANIC: tuple[LogColumn, ...] = log_columns(load_spec(TITANIC_SPEC))


def new_log(path: Path | str, **options: Any) -> PredictionLog:
    """A prediction log of Titanic records."""
    return PredictionLog(path, columns=TITANIC, **options)


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
    log = new_log(path, max_rows=1000)
    log.start()
    rows = [passenger(1, Age=None, Embarked=None), passenger(2, Name="Roe, Mrs. Jane", Sex="female")]
    log.append(rows, [0.1, 0.9], [0, 1], "7")
    assert log.flush()
    log.close()

    window = read_window(path, columns=TITANIC)
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
    log = new_log(path, max_rows=1000)
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
    window = read_window(tmp_path / "nothing-here.sqlite", columns=TITANIC)
    assert window.empty
    assert list(window.columns) == [*COLUMN_NAMES, *META_COLUMNS]
    # Without the dataset's columns only the metadata is known.
    assert list(read_window(tmp_path / "nothing-here.sqlite").columns) == list(META_COLUMNS)


def test_untyped_window_takes_the_table_columns(tmp_path: Path) -> None:
    path = tmp_path / "predictions.sqlite"
    log = new_log(path, max_rows=1000)
    log.start()
    write(log, range(1, 4))
    assert log.flush()
    log.close()
    window = read_window(path)
    assert list(window.columns) == [*COLUMN_NAMES, *META_COLUMNS]
    assert window["Pclass"].dtype == "Int64"  # NULL is possible as far as the table knows
    assert window["Fare"].dtype == "float64"
    assert window["Sex"].tolist() == ["male"] * 3


def test_a_spec_that_gains_a_column_keeps_the_old_rows(tmp_path: Path) -> None:
    path = tmp_path / "predictions.sqlite"
    old = PredictionLog(path, max_rows=1000, columns=TITANIC[:5])
    old.start()
    write(old, range(1, 3))
    assert old.flush()
    old.close()
    assert list(read_window(path).columns) == [*COLUMN_NAMES[:5], *META_COLUMNS]

    new = new_log(path, max_rows=1000)
    new.start()
    write(new, range(3, 5))
    assert new.flush()
    new.close()
    assert new.stats().written == 2
    window = read_window(path, columns=TITANIC)
    assert window["PassengerId"].tolist() == [1, 2, 3, 4]
    assert window["Fare"].isna().tolist() == [True, True, False, False]  # added after the first rows
    assert window["Sex"].tolist() == ["male"] * 4


def test_log_keeps_at_most_max_rows_trimming_the_oldest(tmp_path: Path) -> None:
    path = tmp_path / "predictions.sqlite"
    log = new_log(path, max_rows=100)
    log.start()
    for start in range(0, 350, 50):
        write(log, range(start, start + 50))
        assert log.flush()
    log.close()

    window = read_window(path)
    assert len(window) == 100
    assert window["PassengerId"].tolist() == list(range(250, 350))


def test_full_queue_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    log = new_log(tmp_path / "predictions.sqlite", max_rows=1000, max_pending_rows=10)
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
    log = new_log(blocker / "sub" / "predictions.sqlite", max_rows=1000)
    log.start()
    write(log, range(3))
    assert log.flush()
    log.close()
    stats = log.stats()
    assert (stats.written, stats.failed) == (0, 3)


def test_a_locked_database_never_blocks_the_caller(tmp_path: Path) -> None:
    path = tmp_path / "predictions.sqlite"
    log = new_log(path, max_rows=1000)
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
from lifeboat.dataset.spec import load_spec
from lifeboat.monitoring.prediction_log import PredictionLog, log_columns
columns = log_columns(load_spec(sys.argv[3]))
log = PredictionLog(sys.argv[1], max_rows=100000, columns=columns)
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
            [sys.executable, "-c", _WRITER, str(path), str(base), str(TITANIC_SPEC)],
            stdout=subprocess.PIPE,
            text=True,
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


# --- group commit: the caller only queues, the writer groups many requests into one transaction -----------


def wait_until(condition: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return bool(condition())


def test_many_appends_share_one_transaction_in_order(tmp_path: Path) -> None:
    path = tmp_path / "predictions.sqlite"
    log = new_log(path, max_rows=10_000)
    sizes = [1 + i % 7 for i in range(300)]  # single rows and small batches, as the server queues them
    next_id = 1
    for size in sizes:
        write(log, range(next_id, next_id + size))
        next_id += size
    assert log.stats().pending == sum(sizes)
    log.start()
    assert log.flush()
    log.close()

    stats = log.stats()
    assert (stats.written, stats.failed, stats.pending) == (sum(sizes), 0, 0)
    assert stats.transactions == 1
    assert read_window(path)["PassengerId"].tolist() == list(range(1, next_id))


def test_the_writer_commits_at_most_once_per_interval_and_close_flushes(tmp_path: Path) -> None:
    path = tmp_path / "predictions.sqlite"
    log = new_log(path, max_rows=10_000, commit_interval=30.0)
    log.start()
    write(log, range(1))  # an idle log writes at once
    assert wait_until(lambda: log.stats().written == 1)
    for i in range(1, 101):  # within the interval: queued, not written
        write(log, range(i, i + 1))
    time.sleep(0.3)
    stats = log.stats()
    assert (stats.written, stats.pending, stats.transactions) == (1, 100, 1)

    started = time.monotonic()
    log.close()  # does not wait for the interval: writes the 100 queued rows in one transaction
    assert time.monotonic() - started < 5
    stats = log.stats()
    assert (stats.written, stats.pending, stats.transactions) == (101, 0, 2)
    assert read_window(path)["PassengerId"].tolist() == list(range(101))


def test_a_backlog_of_commit_rows_is_written_before_the_interval(tmp_path: Path) -> None:
    log = new_log(tmp_path / "predictions.sqlite", max_rows=10_000, commit_interval=30.0, commit_rows=50)
    log.start()
    write(log, range(1))
    assert wait_until(lambda: log.stats().written == 1)
    for start in range(1, 61, 10):
        write(log, range(start, start + 10))
    assert wait_until(lambda: log.stats().written >= 51)  # no flush, and long before the 30 s interval
    log.close()
    assert log.stats().written == 61


def test_flush_does_not_wait_for_the_interval(tmp_path: Path) -> None:
    log = new_log(tmp_path / "predictions.sqlite", max_rows=10_000, commit_interval=30.0)
    log.start()
    write(log, range(1))
    assert wait_until(lambda: log.stats().written == 1)
    write(log, range(1, 5))
    started = time.monotonic()
    assert log.flush(timeout=10)
    assert time.monotonic() - started < 5
    assert log.stats().written == 5
    log.close()


def test_a_full_queue_drops_and_counts_while_the_writer_waits(tmp_path: Path) -> None:
    path = tmp_path / "predictions.sqlite"
    log = new_log(path, max_rows=1000, max_pending_rows=20, commit_interval=30.0, commit_rows=1000)
    log.start()
    write(log, range(1))
    assert wait_until(lambda: log.stats().written == 1)
    started = time.perf_counter()
    accepted = [
        log.append([passenger(i) for i in range(s, s + 3)], [0.5] * 3, [1] * 3, "1") for s in range(1, 31, 3)
    ]
    assert time.perf_counter() - started < 0.5
    assert accepted == [True] * 6 + [False] * 4  # 6 x 3 = 18 rows fit under 20; the 7th would make 21
    stats = log.stats()
    assert (stats.pending, stats.dropped) == (18, 12)
    log.close()
    stats = log.stats()
    assert (stats.written, stats.dropped, stats.failed, stats.pending) == (19, 12, 0, 0)
    assert read_window(path)["PassengerId"].tolist() == list(range(19))


def test_close_writes_rows_queued_before_the_writer_ever_started(tmp_path: Path) -> None:
    path = tmp_path / "predictions.sqlite"
    log = new_log(path, max_rows=1000)
    write(log, range(5))
    log.close()
    assert log.stats().written == 5
    assert len(read_window(path)) == 5


def test_appends_after_close_are_dropped_and_counted(tmp_path: Path) -> None:
    log = new_log(tmp_path / "predictions.sqlite", max_rows=1000)
    log.start()
    write(log, range(2))
    log.close()
    assert log.append([passenger(9)], [0.5], [1], "1") is False
    stats = log.stats()
    assert (stats.written, stats.dropped, stats.pending) == (2, 1, 0)


def test_mismatched_lengths_are_a_caller_error(tmp_path: Path) -> None:
    log = new_log(tmp_path / "predictions.sqlite", max_rows=1000)
    with pytest.raises(ValueError, match="2 passenger"):
        log.append([passenger(1), passenger(2)], [0.5], [1, 0], "1")
    assert log.stats().pending == 0


def test_numpy_nan_and_pandas_na_are_stored_as_plain_values(tmp_path: Path) -> None:
    path = tmp_path / "predictions.sqlite"
    log = new_log(path, max_rows=1000)
    odd = passenger(
        1,
        PassengerId=np.int64(1),
        Pclass=np.int32(3),
        Age=float("nan"),
        Fare=np.float32(7.25),
        Embarked=pd.NA,
        Name=np.str_("Doe, Mr. John"),
    )
    log.append([odd, passenger(2)], list(np.array([0.25, 0.75])), list(np.array([0, 1])), "1")
    log.start()
    assert log.flush()
    log.close()

    types = sqlite3.connect(path).execute(
        "SELECT typeof(PassengerId), typeof(Pclass), typeof(Age), typeof(Fare), typeof(Embarked), "
        "typeof(Name), typeof(probability), typeof(prediction) FROM predictions ORDER BY id"
    )
    assert types.fetchall() == [
        ("integer", "integer", "null", "real", "null", "text", "real", "integer"),
        ("integer", "integer", "real", "real", "text", "text", "real", "integer"),
    ]
    window = read_window(path)
    assert window["PassengerId"].tolist() == [1, 2]
    assert window["Pclass"].tolist() == [3, 3]
    assert pd.isna(window.loc[0, "Age"])
    assert window.loc[0, "Fare"] == 7.25
    assert window.loc[0, "Embarked"] is None
    assert window["probability"].tolist() == [0.25, 0.75]
    assert window["prediction"].tolist() == [0, 1]


def test_a_request_that_cannot_be_stored_fails_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "predictions.sqlite"
    log = new_log(path, max_rows=1000)
    write(log, range(1, 3))
    log.append([passenger(3, Fare=Decimal("7.25"))], [0.5], [1], "1")  # SQLite has no Decimal
    log.append([passenger(4, PassengerId=2**70)], [0.5], [1], "1")  # beyond SQLite's 64-bit integers
    log.append([None], [0.5], [1], "1")  # type: ignore[list-item]  # not a passenger at all
    write(log, range(5, 7))
    log.start()
    assert log.flush()
    log.close()

    stats = log.stats()
    assert (stats.written, stats.failed, stats.pending) == (4, 3, 0)
    assert read_window(path)["PassengerId"].tolist() == [1, 2, 5, 6]
    assert "cannot write the prediction log" in caplog.text


def test_request_ids_are_stored_indexed_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "predictions.sqlite"
    log = new_log(path, max_rows=1000)
    log.start()
    assert log.append([passenger(1), passenger(2)], [0.1, 0.9], [0, 1], "1", request_ids=["r-0", "r-1"])
    assert log.append([passenger(3)], [0.5], [1], "1", request_ids=["single"])
    write(log, range(4, 5))  # no ids: NULL
    assert log.flush()
    log.close()
    window = read_window(path, columns=TITANIC)
    assert window["request_id"].tolist() == ["r-0", "r-1", "single", None]
    with sqlite3.connect(path) as connection:
        indexes = {row[1] for row in connection.execute("PRAGMA index_list(predictions)")}
    assert "predictions_request_id" in indexes
    with pytest.raises(ValueError, match="request ids"):
        log.append([passenger(5)], [0.5], [1], "1", request_ids=["a", "b"])


def test_an_old_log_without_request_ids_still_reads_and_gains_the_column(tmp_path: Path) -> None:
    path = tmp_path / "predictions.sqlite"
    with sqlite3.connect(path) as connection:  # the layout before request ids
        raw = ", ".join(f'"{c.name}" {"TEXT" if c.kind == "str" else "REAL"}' for c in TITANIC)
        connection.execute(
            "CREATE TABLE predictions (id INTEGER PRIMARY KEY, logged_at TEXT NOT NULL, model_version TEXT "
            f"NOT NULL, probability REAL NOT NULL, prediction INTEGER NOT NULL, {raw})"
        )
        connection.execute(
            'INSERT INTO predictions (logged_at, model_version, probability, prediction, "PassengerId") '
            "VALUES ('2026-01-01T00:00:00.000000+00:00', '1', 0.25, 0, 1)"
        )
    connection.close()
    before = read_window(path, columns=TITANIC)  # read-only, not migrated: the column reads as missing
    assert list(before.columns) == [*COLUMN_NAMES, *META_COLUMNS]
    assert before["request_id"].tolist() == [None]

    log = new_log(path, max_rows=1000)
    log.start()
    assert log.append([passenger(2)], [0.75], [1], "2", request_ids=["new-0"])
    assert log.flush()
    log.close()
    assert log.stats().written == 1
    after = read_window(path, columns=TITANIC)
    assert after["PassengerId"].tolist() == [1, 2]
    assert after["request_id"].tolist() == [None, "new-0"]
    with sqlite3.connect(path) as connection:
        indexes = {row[1] for row in connection.execute("PRAGMA index_list(predictions)")}
    connection.close()
    assert "predictions_request_id" in indexes
