"""Ground-truth labels: matched, unknown and duplicate counts, conflicts refused whole, invalid labels named
by row and value, resends harmless; JSON and CSV parsing errors name the position or line."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from lifeboat.dataset.models import DatasetSpec
from lifeboat.dataset.spec import load_spec
from lifeboat.monitoring.feedback import (
    FeedbackConflict,
    FeedbackError,
    FeedbackInvalid,
    FeedbackResult,
    LabelIn,
    ingest_labels,
    label_values,
    read_labels,
)
from lifeboat.monitoring.label_input import labels_from_csv, labels_from_file, labels_from_json
from lifeboat.monitoring.prediction_log import PredictionLog, log_columns

pytestmark = pytest.mark.unit

DATA = Path(__file__).resolve().parents[2] / "data"
TITANIC = load_spec(DATA / "titanic" / "dataset.yaml")
ADULT = load_spec(DATA / "adult" / "dataset.yaml")


def passenger(i: int) -> dict[str, Any]:
    return {
        "PassengerId": i,
        "Pclass": 3,
        "Sex": "male",
        "Age": 30.0,
        "SibSp": 0,
        "Parch": 0,
        "Embarked": "S",
    }


def logged(path: Path, ids: list[str]) -> Path:
    """A Titanic prediction log holding one row per id."""
    log = PredictionLog(path, max_rows=100_000, columns=log_columns(TITANIC))
    log.append(
        [passenger(i) for i in range(len(ids))], [0.3] * len(ids), [0] * len(ids), "1", request_ids=ids
    )
    log.close()
    return path


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return logged(tmp_path / "predictions.sqlite", [f"r{i}" for i in range(10)])


def labels(*pairs: tuple[Any, Any]) -> list[LabelIn]:
    return [LabelIn(rid, label, row) for row, (rid, label) in enumerate(pairs)]


def test_counts_matched_unknown_and_duplicates_and_stores_only_the_matched(log_path: Path) -> None:
    result = ingest_labels(log_path, TITANIC, labels(("r0", 1), ("r1", "0"), ("nope", 1), ("r0", 1)))
    assert result == FeedbackResult(received=4, matched=2, unknown=1, duplicate=1)
    assert read_labels(log_path) == {"r0": ("1", 1), "r1": ("0", 0)}


def test_the_same_labels_again_are_duplicates_and_change_nothing(log_path: Path) -> None:
    sent = labels(("r2", 1), ("r3", 0), ("ghost", 0))
    ingest_labels(log_path, TITANIC, sent)
    before = read_labels(log_path)
    again = ingest_labels(log_path, TITANIC, sent)
    assert again == FeedbackResult(received=3, matched=0, unknown=1, duplicate=2)
    assert read_labels(log_path) == before


def test_a_different_label_for_a_stored_id_refuses_the_whole_request(log_path: Path) -> None:
    ingest_labels(log_path, TITANIC, labels(("r4", 1), ("r5", 1)))
    with pytest.raises(FeedbackConflict) as caught:
        ingest_labels(log_path, TITANIC, labels(("r6", 1), ("r5", 0), ("r4", "0"), ("r7", 0)))
    assert caught.value.ids == ["r4", "r5"]
    assert "r4, r5" in str(caught.value)
    assert "nothing was stored" in str(caught.value)
    assert read_labels(log_path) == {"r4": ("1", 1), "r5": ("1", 1)}  # r6 and r7 were not stored


def test_conflicts_within_the_request_and_with_stored_labels_are_named_together(log_path: Path) -> None:
    ingest_labels(log_path, TITANIC, labels(("r1", 1)))
    with pytest.raises(FeedbackConflict) as caught:
        ingest_labels(log_path, TITANIC, labels(("r2", 1), ("r1", 0), ("r2", 0), ("r3", 1)))
    assert caught.value.ids == ["r1", "r2"]
    assert read_labels(log_path) == {"r1": ("1", 1)}


def test_two_different_labels_for_one_id_in_a_request_is_a_conflict(log_path: Path) -> None:
    with pytest.raises(FeedbackConflict) as caught:
        ingest_labels(log_path, TITANIC, labels(("r8", 1), ("r9", 0), ("r8", 0)))
    assert caught.value.ids == ["r8"]
    assert read_labels(log_path) == {}


@pytest.mark.parametrize("value", [2, "yes", "", None, 0.5, [1], {"v": 1}, "nan"])
def test_a_value_that_is_not_a_label_is_refused_naming_row_and_value(log_path: Path, value: Any) -> None:
    with pytest.raises(FeedbackInvalid) as caught:
        ingest_labels(log_path, TITANIC, labels(("r0", 1), ("r1", value)))
    problem = caught.value.problems[0]
    assert (problem.row, problem.field, problem.value) == (1, "label", repr(value))
    assert "expected one of 0, 1" in problem.msg
    assert f"labels[1] label {value!r}" in str(caught.value)
    assert read_labels(log_path) == {}  # the valid r0 was not stored either


@pytest.mark.parametrize("rid", [None, 7, "", "x" * 161])
def test_a_malformed_request_id_is_refused(log_path: Path, rid: Any) -> None:
    with pytest.raises(FeedbackInvalid) as caught:
        ingest_labels(log_path, TITANIC, labels((rid, 1)))
    assert caught.value.problems[0].field == "request_id"


def test_values_as_the_training_csv_writes_them_are_accepted() -> None:
    values = label_values(TITANIC)
    assert [values.key_of(v) for v in (1, 0, "1", " 0 ", 1.0, "1.0", True)] == [
        "1",
        "0",
        "1",
        "0",
        "1",
        "1",
        "1",
    ]
    assert label_values(ADULT).keys == ("0", "1")


def test_a_categorical_label_takes_its_vocabulary_text() -> None:
    data = TITANIC.model_dump()
    for column in data["columns"]:
        if column["name"] == "Survived":
            column.update(type="categorical", vocabulary=[">50K", "<=50K"])
    data["label"]["positive"] = ">50K"
    values = label_values(DatasetSpec.model_validate(data))
    assert [values.key_of(v) for v in (">50K", "<=50K", "50K", 1)] == [">50K", "<=50K", None, None]


def test_a_label_column_without_values_cannot_take_labels() -> None:
    data = TITANIC.model_dump()
    for column in data["columns"]:
        if column["name"] == "Survived":
            column.update(type="categorical", vocabulary=None)
    with pytest.raises(FeedbackError, match="declares no vocabulary"):
        label_values(DatasetSpec.model_validate(data))


def test_empty_and_oversized_requests_are_refused(log_path: Path) -> None:
    with pytest.raises(FeedbackInvalid, match="no labels"):
        ingest_labels(log_path, TITANIC, [])
    with pytest.raises(FeedbackInvalid, match="3 labels were sent; the maximum per request is 2"):
        ingest_labels(log_path, TITANIC, labels(("r0", 1), ("r1", 1), ("r2", 1)), max_labels=2)


def test_a_missing_log_makes_every_id_unknown_and_creates_no_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.sqlite"
    assert ingest_labels(path, TITANIC, labels(("a", 1), ("a", 1))) == FeedbackResult(2, 0, 1, 1)
    assert not path.exists()


def test_labels_are_joinable_to_their_predictions(log_path: Path) -> None:
    ingest_labels(log_path, TITANIC, labels(("r1", 1), ("r2", 0)))
    with sqlite3.connect(log_path) as connection:
        joined = connection.execute(
            "SELECT p.request_id, p.prediction, l.target, l.received_at FROM predictions p "
            "JOIN labels l USING (request_id) ORDER BY p.request_id"
        ).fetchall()
    assert [row[:3] for row in joined] == [("r1", 0, 1), ("r2", 0, 0)]
    assert all(row[3].endswith("+00:00") for row in joined)


def test_many_labels_in_one_request(tmp_path: Path) -> None:
    ids = [f"id-{i}" for i in range(3000)]
    path = logged(tmp_path / "big.sqlite", ids)
    sent = [LabelIn(rid, i % 2, i) for i, rid in enumerate([*ids, "x-1", "x-2"])]
    assert ingest_labels(path, TITANIC, sent) == FeedbackResult(3002, 3000, 2, 0)
    assert len(read_labels(path)) == 3000


def test_labels_of_trimmed_predictions_go_once_the_table_is_over_its_bound(tmp_path: Path) -> None:
    path = tmp_path / "trimmed.sqlite"
    log = PredictionLog(path, max_rows=10, columns=log_columns(TITANIC))
    log.start()
    old = [f"old-{i}" for i in range(10)]
    log.append([passenger(i) for i in range(10)], [0.3] * 10, [0] * 10, "1", request_ids=old)
    assert log.flush()
    ingest_labels(path, TITANIC, labels(*[(rid, 1) for rid in old]), keep_labels=10)
    assert len(read_labels(path)) == 10  # at the bound: nothing deleted
    new = [f"new-{i}" for i in range(4)]
    log.append([passenger(i) for i in range(4)], [0.3] * 4, [0] * 4, "1", request_ids=new)
    log.close()  # the log now holds old-4..old-9 and new-0..new-3
    result = ingest_labels(path, TITANIC, labels(*[(rid, 0) for rid in new]), keep_labels=10)
    assert result == FeedbackResult(4, 4, 0, 0)
    assert sorted(read_labels(path)) == sorted([f"old-{i}" for i in range(4, 10)] + new)


# --- parsing -------------------------------------------------------------------------------------------


def test_json_body() -> None:
    parsed = labels_from_json(
        b'{"labels": [{"request_id": "a", "label": 1}, {"label": "0", "request_id": "b"}]}'
    )
    assert [(p.request_id, p.label, p.row) for p in parsed] == [("a", 1, 0), ("b", "0", 1)]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", "the body is empty"),
        (
            b'{"labels": [\n{"request_id": "a",, }]}',
            "line 2: Expecting property name enclosed in double quotes (column 20)",
        ),
        (b'[{"request_id": "a", "label": 1}]', 'JSON object {"labels": [...]}'),
        (b'{"labels": [], "extra": 1}', 'JSON object {"labels": [...]}'),
        (b'{"labels": [{"request_id": "a"}]}', "labels[0]: expected an object with the keys"),
        (b'{"labels": [{"request_id": "a", "label": 1}, 5]}', "labels[1]: expected an object"),
    ],
)
def test_json_errors_name_the_position(body: bytes, expected: str) -> None:
    with pytest.raises(FeedbackInvalid) as caught:
        labels_from_json(body)
    assert expected in str(caught.value)


def test_csv_body_in_any_column_order_with_line_numbers() -> None:
    parsed = labels_from_csv(b"label,request_id\r\n1,a\r\n\r\n0, b \r\n")
    assert [(p.request_id, p.label, p.row, p.line) for p in parsed] == [("a", "1", 0, 2), ("b", "0", 1, 4)]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", "the CSV is empty"),
        (b"request_id,survived\na,1\n", "line 1: expected the columns request_id and label"),
        (b"request_id,label\na,1\nb\nc,1,2\n", "line 3: the row has 1 cells"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_csv_errors_name_the_line(body: bytes, expected: str) -> None:
    with pytest.raises(FeedbackInvalid) as caught:
        labels_from_csv(body)
    assert expected in str(caught.value)


def test_an_invalid_csv_label_names_its_line(log_path: Path) -> None:
    with pytest.raises(FeedbackInvalid) as caught:
        ingest_labels(log_path, TITANIC, labels_from_csv(b"request_id,label\nr0,1\n\nr1,maybe\n"))
    assert "line 4 label 'maybe'" in str(caught.value)
    assert caught.value.problems[0].row == 1


def test_files_by_suffix(tmp_path: Path) -> None:
    (tmp_path / "l.json").write_text('{"labels": [{"request_id": "a", "label": 1}]}')
    (tmp_path / "l.csv").write_text("request_id,label\na,1\n")
    assert labels_from_file(tmp_path / "l.json")[0].label == 1
    assert labels_from_file(tmp_path / "l.csv")[0].label == "1"
