"""Dataset folders without DVC: names, listing, checking (lifeboat.data.datasets)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lifeboat.data.datasets import (
    DatasetFolderError,
    check_dataset,
    dataset_folder,
    dataset_names,
    list_datasets,
    read_table,
)
from lifeboat.dataset.schema import DataValidationError
from lifeboat.dataset.spec import DatasetSpecError
from lifeboat.settings import Settings

pytestmark = pytest.mark.unit

TITANIC = Path(__file__).resolve().parents[2] / "data" / "titanic"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A data folder holding a copy of Titanic, a spec without data, a broken spec and an interrupted init."""
    root = tmp_path / "data"
    (root / "titanic" / "raw").mkdir(parents=True)
    shutil.copy(TITANIC / "dataset.yaml", root / "titanic" / "dataset.yaml")
    shutil.copy(TITANIC / "raw" / "train.csv", root / "titanic" / "raw" / "train.csv")
    (root / "later").mkdir()
    shutil.copy(TITANIC / "dataset.yaml", root / "later" / "dataset.yaml")
    (root / "broken").mkdir()
    (root / "broken" / "dataset.yaml").write_text("name: broken\n")
    (root / ".shop.x1y2").mkdir()
    (root / ".shop.x1y2" / "dataset.yaml").write_text("name: shop\n")
    (root / "remote").mkdir()
    return Settings(data_root=root, state_dir=tmp_path / "state")


def test_names_are_the_folders_with_a_spec(settings: Settings) -> None:
    assert dataset_names(settings) == ["broken", "later", "titanic"]


def test_list_shows_rows_or_not_pulled_and_spec_errors(settings: Settings) -> None:
    broken, later, titanic = list_datasets(settings)
    assert (titanic.name, titanic.registered_model, titanic.rows) == ("titanic", "titanic-survival", 891)
    assert titanic.fingerprint is not None
    assert len(titanic.fingerprint) == 64
    assert (later.rows, later.error) == (None, None)
    assert broken.registered_model is None
    assert broken.error is not None
    assert "broken/dataset.yaml: label: Field required" in broken.error
    assert broken.as_dict()["error"] == broken.error


def test_check_summarises_a_valid_dataset(settings: Settings) -> None:
    check = check_dataset("titanic", settings)
    assert check.summary() == f"ok titanic: 891 rows, 22 features, fingerprint {check.fingerprint[:12]}"


def test_check_refusals(settings: Settings) -> None:
    spec = settings.data_root / "later" / "dataset.yaml"
    with pytest.raises(DatasetSpecError, match="name: 'titanic' is not the folder's name 'later'"):
        check_dataset("later", settings)  # a copy of Titanic's spec
    spec.write_text(spec.read_text().replace("name: titanic", "name: later", 1))
    with pytest.raises(DataValidationError, match="file not found"):
        check_dataset("later", settings)
    with pytest.raises(DatasetSpecError, match="label: Field required"):
        check_dataset("broken", settings)
    with pytest.raises(DatasetFolderError, match="invalid dataset name 'Titanic'"):
        dataset_folder("Titanic", settings)


def test_read_table_refuses_missing_and_ragged_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetFolderError, match="no such file"):
        read_table(tmp_path / "none.csv")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(DatasetFolderError, match="cannot read it as a CSV file"):
        read_table(ragged)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DatasetFolderError, match="cannot read it as a CSV file"):
        read_table(empty)
