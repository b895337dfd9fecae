"""Validation of passenger CSVs: every kind of bad data is refused with file, row and column named."""

from __future__ import annotations

from pathlib import Path

import pytest

from lifeboat.dataset.schema import COLUMN_NAMES, DataValidationError, validate_csv

pytestmark = pytest.mark.unit

HEADER = "PassengerId,Survived,Pclass,Name,Sex,Age,SibSp,Parch,Ticket,Fare,Cabin,Embarked"
GOOD_ROWS = [
    '1,0,3,"Braund, Mr. Owen Harris",male,22,1,0,A/5 21171,7.25,,S',
    '2,1,1,"Cumings, Mrs. John Bradley",female,38,1,0,PC 17599,71.2833,C85,C',
    '3,1,3,"Heikkinen, Miss. Laina",female,,0,0,STON/O2. 3101282,,,',
]


def write_csv(tmp_path: Path, rows: list[str], header: str = HEADER, name: str = "batch.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_real_training_file_is_valid(raw_train_csv: Path) -> None:
    summary = validate_csv(raw_train_csv)
    assert summary.rows == 891
    assert summary.missing["Age"] == 177
    assert summary.missing["Embarked"] == 2
    assert summary.positive_rate == pytest.approx(342 / 891)


def test_real_unlabelled_file_is_valid_without_label(raw_test_csv: Path) -> None:
    summary = validate_csv(raw_test_csv, require_label=False)
    assert summary.rows == 418
    assert summary.missing["Fare"] == 1


def test_missing_optional_values_are_allowed(tmp_path: Path) -> None:
    summary = validate_csv(write_csv(tmp_path, GOOD_ROWS))
    assert summary.rows == 3
    assert summary.missing["Age"] == 1
    assert summary.missing["Fare"] == 1
    assert summary.missing["Embarked"] == 1


@pytest.mark.parametrize(
    ("row", "row_number", "column", "fragment"),
    [
        ('4,2,3,"A, Mr. B",male,22,0,0,T,7.25,,S', 4, "Survived", "impossible value '2'"),
        ('4,,3,"A, Mr. B",male,22,0,0,T,7.25,,S', 4, "Survived", "value is required"),
        ('4,0,3,"A, Mr. B",male,twenty,0,0,T,7.25,,S', 4, "Age", "expected a number, got 'twenty'"),
        ('4,0,3,"A, Mr. B",male,22,0,0,T,-3,,S', 4, "Fare", "below the minimum 0"),
        ('4,0,3,"A, Mr. B",male,121,0,0,T,7.25,,S', 4, "Age", "above the maximum 120"),
        ('4,0,4,"A, Mr. B",male,22,0,0,T,7.25,,S', 4, "Pclass", "impossible value '4'"),
        ('4,0,3,"A, Mr. B",unknown,22,0,0,T,7.25,,S', 4, "Sex", "unknown value 'unknown'"),
        ('4,0,3,"A, Mr. B",male,22,1.5,0,T,7.25,,S', 4, "SibSp", "whole number"),
        ('4,0,3,"A, Mr. B",male,22,0,0,T,inf,,S', 4, "Fare", "finite number"),
        ('4,0,3,"A, Mr. B",male,22,0,0,T,7.25,,X', 4, "Embarked", "unknown value 'X'"),
    ],
)
def test_bad_cells_name_file_row_and_column(
    tmp_path: Path, row: str, row_number: int, column: str, fragment: str
) -> None:
    path = write_csv(tmp_path, [*GOOD_ROWS, row])
    with pytest.raises(DataValidationError) as info:
        validate_csv(path)
    message = str(info.value)
    assert str(path) in message
    assert f"row {row_number}" in message
    assert f"column '{column}'" in message
    assert fragment in message


def test_missing_required_column(tmp_path: Path) -> None:
    header = HEADER.replace("Sex,", "")
    rows = [r.replace("male,", "", 1) for r in GOOD_ROWS]
    with pytest.raises(DataValidationError, match="column 'Sex': required column is missing"):
        validate_csv(write_csv(tmp_path, rows, header=header))


def test_label_required_only_for_labelled_files(tmp_path: Path) -> None:
    header = HEADER.replace("Survived,", "")
    rows = [",".join(r.split(",")[:1] + r.split(",")[2:]) for r in GOOD_ROWS]
    path = write_csv(tmp_path, rows, header=header)
    assert validate_csv(path, require_label=False).rows == 3
    with pytest.raises(DataValidationError, match="column 'Survived': required column is missing"):
        validate_csv(path)


def test_duplicate_id_with_conflicting_labels(tmp_path: Path) -> None:
    conflicting = GOOD_ROWS[0].replace("1,0,3", "1,1,3", 1)
    with pytest.raises(DataValidationError) as info:
        validate_csv(write_csv(tmp_path, [*GOOD_ROWS, conflicting]))
    assert "row 4, column 'PassengerId': PassengerId 1 appears again with label 1" in str(info.value)
    assert "row 1 gives label 0" in str(info.value)


def test_exact_duplicates_are_counted_not_refused(tmp_path: Path) -> None:
    summary = validate_csv(write_csv(tmp_path, [*GOOD_ROWS, GOOD_ROWS[0]]))
    assert summary.duplicate_rows == 1
    assert summary.rows == 4


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(DataValidationError, match="empty"):
        validate_csv(path)


def test_header_only_file(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match="no data rows"):
        validate_csv(write_csv(tmp_path, []))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match="file not found"):
        validate_csv(tmp_path / "nope.csv")


def test_problems_are_counted_beyond_the_listed_ones(tmp_path: Path) -> None:
    rows = [f'{i},0,9,"A, Mr. B",male,22,0,0,T,7.25,,S' for i in range(1, 51)]
    with pytest.raises(DataValidationError) as info:
        validate_csv(write_csv(tmp_path, rows))
    assert info.value.total == 50
    assert "and 30 more problem(s)" in str(info.value)


def test_chunked_reading_keeps_row_numbers(tmp_path: Path) -> None:
    rows = [f'{i},0,3,"A, Mr. B",male,22,0,0,T,7.25,,S' for i in range(1, 12)]
    rows[9] = '10,0,3,"A, Mr. B",male,22,0,0,T,-1,,S'
    with pytest.raises(DataValidationError, match="row 10, column 'Fare'"):
        validate_csv(write_csv(tmp_path, rows), chunk_rows=4)


def test_column_order_matches_kaggle() -> None:
    assert COLUMN_NAMES == (
        "PassengerId",
        "Pclass",
        "Name",
        "Sex",
        "Age",
        "SibSp",
        "Parch",
        "Ticket",
        "Fare",
        "Cabin",
        "Embarked",
    )
