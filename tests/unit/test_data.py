"""The data layer without DVC commands: file order, fingerprints, batch checks, root discovery, the lock."""

from __future__ import annotations

import hashlib
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lifeboat.data import versioning as data
from lifeboat.dataset.schema import DataValidationError
from lifeboat.settings import Settings

pytestmark = pytest.mark.unit

HEADER = "PassengerId,Survived,Pclass,Name,Sex,Age,SibSp,Parch,Ticket,Fare,Cabin,Embarked\n"
ROW = '1,0,3,"Braund, Mr. Owen Harris",male,22,1,0,A/5 21171,7.25,,S\n'


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    settings = Settings(
        state_dir=tmp_path / "state",
        raw_data=tmp_path / "raw" / "titanic.csv",
        incoming_dir=tmp_path / "incoming",
    )
    return settings.model_copy(update=overrides)


def _recorded_md5(pointer: Path) -> str:
    """The md5 written in a .dvc pointer file (read independently of lifeboat.data.versioning)."""
    for line in pointer.read_text().splitlines():
        key, _, value = line.strip().lstrip("- ").partition(":")
        if key == "md5":
            return value.strip()
    raise AssertionError(f"no md5 in {pointer}")


def test_training_files_are_raw_then_batches_sorted_by_name(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    incoming = settings.incoming_dir
    incoming.mkdir()
    for name in ("batch-20261127T010000Z.csv", "a-first.csv", "batch-20250101T000000Z.csv"):
        (incoming / name).write_text(HEADER + ROW)
    (incoming / "README.md").write_text("not data")
    (incoming / "batch-20261127T010000Z.csv.dvc").write_text("outs: []")
    (incoming / "folder.csv").mkdir()

    files = data.training_files(settings)

    assert files == [
        settings.raw_data,
        incoming / "a-first.csv",
        incoming / "batch-20250101T000000Z.csv",
        incoming / "batch-20261127T010000Z.csv",
    ]


def test_training_files_without_incoming_folder_is_only_the_raw_file(tmp_path: Path) -> None:
    settings = _settings(tmp_path, incoming_dir=tmp_path / "absent")
    assert data.training_files(settings) == [settings.raw_data]


def test_fingerprint_md5_equals_the_dvc_pointer(raw_train_csv: Path, raw_test_csv: Path) -> None:
    result = data.fingerprint([raw_train_csv, raw_test_csv])

    train, test = result.files
    assert train.md5 == _recorded_md5(raw_train_csv.with_name("train.csv.dvc"))
    assert test.md5 == _recorded_md5(raw_test_csv.with_name("test.csv.dvc"))
    assert train.md5 == hashlib.md5(raw_train_csv.read_bytes()).hexdigest()
    assert train.matches_pointer is True
    assert (train.rows, test.rows) == (891, 418)
    assert result.total_rows == 891 + 418
    assert train.size == raw_train_csv.stat().st_size
    as_dict = result.as_dict()
    assert as_dict["total_rows"] == 1309
    assert as_dict["md5"] == result.md5


def test_fingerprint_counts_records_not_lines_and_tracks_order(tmp_path: Path) -> None:
    first = tmp_path / "first.csv"
    first.write_text('a,b\n1,"two\nlines"\n\n3,4\n')
    second = tmp_path / "second.csv"
    second.write_text("a,b\n")

    result = data.fingerprint([first, second])

    assert [f.rows for f in result.files] == [2, 0]
    assert result.files[0].pointer_md5 is None
    assert result.files[0].matches_pointer is None
    assert data.fingerprint([second, first]).md5 != result.md5


def test_fingerprint_detects_a_file_that_differs_from_its_pointer(tmp_path: Path) -> None:
    csv = tmp_path / "x.csv"
    csv.write_text("a\n1\n")
    data.pointer_path(csv).write_text(f"outs:\n- md5: {'0' * 32}\n  size: 4\n  hash: md5\n  path: x.csv\n")
    assert data.fingerprint([csv]).files[0].matches_pointer is False


def test_fingerprint_of_a_missing_file_says_to_pull(tmp_path: Path) -> None:
    with pytest.raises(data.DataError, match=r"missing\.csv: file not found .*lifeboat pull"):
        data.fingerprint([tmp_path / "missing.csv"])


def test_add_batch_refuses_an_invalid_csv_and_copies_nothing(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + ROW.replace(",22,", ",-4,"))

    # No DVC repository here: reaching any DVC step would raise DataError instead.
    with pytest.raises(DataValidationError) as caught:
        data.add_batch(bad, settings=settings)

    assert caught.type is DataValidationError
    assert "row 1" in str(caught.value)
    assert "column 'Age'" in str(caught.value)
    assert not settings.incoming_dir.exists()
    assert not settings.state_dir.exists()


def test_add_batch_refuses_unsafe_names_before_copying(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    good = tmp_path / "good.csv"
    good.write_text(HEADER + ROW)
    for name in ("../escape.csv", "sub/dir.csv", ".hidden.csv"):
        with pytest.raises(data.DataError, match="invalid batch name"):
            data.add_batch(good, name=name, settings=settings)
    assert not settings.incoming_dir.exists()


def test_batch_names_sort_in_time_order() -> None:
    early = data.batch_name(datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC))
    late = data.batch_name(datetime(2026, 1, 2, 3, 4, 5, 7, tzinfo=UTC))
    assert early == "batch-20260102T030405.000006Z.csv"
    assert early < late


def test_repo_root_walks_up_to_the_dvc_folder(tmp_path: Path) -> None:
    (tmp_path / ".dvc").mkdir()
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    assert data.repo_root(nested) == tmp_path.resolve()


def test_repo_root_outside_any_repository_fails(tmp_path: Path) -> None:
    with pytest.raises(data.DataError, match="not inside a DVC repository"):
        data.repo_root(tmp_path)


def test_dvc_executable_is_the_one_next_to_python() -> None:
    expected = Path(sys.executable).parent / "dvc"
    if not expected.is_file():
        pytest.fail(f"this environment has no dvc next to {sys.executable}")
    assert data.dvc_executable() == str(expected)


def test_dvc_lock_serialises_and_times_out(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with data.dvc_lock(settings) as path:
        assert path == settings.state_dir / data.LOCK_FILE
        with pytest.raises(data.DataError, match="held the DVC lock"), data.dvc_lock(settings, timeout=0.2):
            pass
    with data.dvc_lock(settings, timeout=0.2):
        assert path.exists()


def test_pull_outside_a_repository_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(data.DataError, match="not inside a DVC repository"):
        data.pull()
    assert os.listdir(tmp_path) == []
