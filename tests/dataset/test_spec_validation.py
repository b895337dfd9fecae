"""validate_csv against the Titanic spec refuses what schema.validate_csv refuses, with the same messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from lifeboat.dataset import schema
from lifeboat.dataset.models import DatasetSpec
from lifeboat.dataset.schema import DataValidationError
from lifeboat.dataset.validation import validate_csv

pytestmark = pytest.mark.unit

HEADER = "PassengerId,Survived,Pclass,Name,Sex,Age,SibSp,Parch,Ticket,Fare,Cabin,Embarked"
GOOD_ROWS = [
    '1,0,3,"Braund, Mr. Owen Harris",male,22,1,0,A/5 21171,7.25,,S',
    '2,1,1,"Cumings, Mrs. John Bradley",female,38,1,0,PC 17599,71.2833,C85,C',
    '3,1,3,"Heikkinen, Miss. Laina",female,,0,0,STON/O2. 3101282,,,',
]
BAD_ROWS = [
    '4,2,3,"A, Mr. B",male,22,0,0,T,7.25,,S',
    '4,,3,"A, Mr. B",male,22,0,0,T,7.25,,S',
    '4,0,3,"A, Mr. B",male,twenty,0,0,T,7.25,,S',
    '4,0,3,"A, Mr. B",male,22,0,0,T,-3,,S',
    '4,0,3,"A, Mr. B",male,121,0,0,T,7.25,,S',
    '4,0,4,"A, Mr. B",male,22,0,0,T,7.25,,S',
    '4,0,3,"A, Mr. B",unknown,22,0,0,T,7.25,,S',
    '4,0,3,"A, Mr. B",male,22,1.5,0,T,7.25,,S',
    '4,0,3,"A, Mr. B",male,22,0,0,T,inf,,S',
    '4,0,3,"A, Mr. B",male,22,0,0,T,7.25,,X',
    '0,0,3,"A, Mr. B",male,22,0,0,T,7.25,,S',
    f'4,0,3,"A, Mr. {"B" * 200}",male,22,0,0,T,7.25,,S',
    '1,1,3,"Braund, Mr. Owen Harris",male,22,1,0,A/5 21171,7.25,,S',
    '4,0,,"A, Mr. B",,22,0,0,T,7.25,,S',
]


def write_csv(tmp_path: Path, rows: list[str], header: str = HEADER) -> Path:
    path = tmp_path / "batch.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def both(spec: DatasetSpec, path: Path, require_label: bool = True) -> tuple[str, str]:
    messages = []
    for validate in (
        lambda: schema.validate_csv(path, require_label),
        lambda: validate_csv(spec, path, require_label),
    ):
        with pytest.raises(DataValidationError) as info:
            validate()
        messages.append(str(info.value))
    return messages[0], messages[1]


@pytest.mark.parametrize("bad", BAD_ROWS)
def test_same_message_as_the_schema(tmp_path: Path, titanic_spec: DatasetSpec, bad: str) -> None:
    today, spec_driven = both(titanic_spec, write_csv(tmp_path, [*GOOD_ROWS, bad]))
    assert spec_driven == today


def test_same_message_for_missing_columns(tmp_path: Path, titanic_spec: DatasetSpec) -> None:
    header = HEADER.replace(",Sex", "").replace("Survived,", "")
    rows = [r.replace(",male", "").replace(",female", "").split(",", 2) for r in GOOD_ROWS]
    path = write_csv(tmp_path, [f"{r[0]},{r[2]}" for r in rows], header=header)
    today, spec_driven = both(titanic_spec, path)
    assert "column 'Sex': required column is missing" in spec_driven
    assert spec_driven == today


def test_same_count_beyond_the_listed_problems(tmp_path: Path, titanic_spec: DatasetSpec) -> None:
    rows = [f'{i},0,9,"A, Mr. B",male,22,0,0,T,7.25,,S' for i in range(1, 51)]
    today, spec_driven = both(titanic_spec, write_csv(tmp_path, rows))
    assert "and 30 more problem(s)" in spec_driven
    assert spec_driven == today


@pytest.mark.parametrize("content", ["", HEADER + "\n"])
def test_empty_files(tmp_path: Path, titanic_spec: DatasetSpec, content: str) -> None:
    path = tmp_path / "batch.csv"
    path.write_text(content)
    today, spec_driven = both(titanic_spec, path)
    assert spec_driven == today


def test_real_files_are_valid_with_the_same_summary(
    titanic_spec: DatasetSpec, raw_train_csv: Path, raw_test_csv: Path
) -> None:
    assert validate_csv(titanic_spec, raw_train_csv).as_dict() == schema.validate_csv(raw_train_csv).as_dict()
    unlabelled = validate_csv(titanic_spec, raw_test_csv, require_label=False)
    assert unlabelled.as_dict() == schema.validate_csv(raw_test_csv, require_label=False).as_dict()
    assert unlabelled.rows == 418


def test_chunked_reading_keeps_row_numbers(tmp_path: Path, titanic_spec: DatasetSpec) -> None:
    rows = [f'{i},0,3,"A, Mr. B",male,22,0,0,T,7.25,,S' for i in range(1, 12)]
    rows[9] = '10,0,3,"A, Mr. B",male,22,0,0,T,-1,,S'
    with pytest.raises(DataValidationError, match="row 10, column 'Fare'"):
        validate_csv(titanic_spec, write_csv(tmp_path, rows), chunk_rows=4)
