"""The DVC data layer against real git + DVC repositories made in temporary folders.

Each test builds its own repository with a local remote folder inside it (like the project's bundled
``data/remote``), so nothing here touches the project's own repository or the network.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
from pathlib import Path

import pytest

from lifeboat.data import versioning as data
from lifeboat.settings import Settings
from tests.support.dvc_repo import DVC, GIT_IDENTITY, init_repo
from tests.support.dvc_repo import remote_object as _remote_object
from tests.support.dvc_repo import run as _run

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git + DVC repository whose default remote is the folder ``remote/`` inside it (built once)."""
    return init_repo(tmp_path_factory.mktemp("template") / "repo")


@pytest.fixture
def repo(template_repo: Path, tmp_path: Path) -> Path:
    """A fresh copy of the template repository for one test."""
    root = tmp_path / "repo"
    shutil.copytree(template_repo, root, symlinks=True)
    return root


@pytest.fixture
def settings(repo: Path, tmp_path: Path) -> Settings:
    return Settings(
        state_dir=tmp_path / "state",
        raw_data=repo / "data" / "titanic" / "raw" / "train.csv",
        incoming_dir=repo / "data" / "titanic" / "incoming",
    )


def _csv(repo: Path, raw_train_csv: Path, name: str = "data/titanic/raw/train.csv", rows: int = 30) -> Path:
    path = repo / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(raw_train_csv.read_text().splitlines(keepends=True)[: rows + 1]))
    return path


def test_the_remote_is_the_folder_inside_the_repository(repo: Path) -> None:
    remote = _run([DVC, "remote", "list"], repo)
    assert remote.split() == ["bundled", str(repo / "remote"), "(default)"]


def test_add_push_then_pull_restores_the_file_byte_identically(
    repo: Path, settings: Settings, raw_train_csv: Path
) -> None:
    csv = _csv(repo, raw_train_csv)
    original = csv.read_bytes()

    pointer = data.add_and_push(csv, settings=settings)

    assert pointer == repo / "data" / "titanic" / "raw" / "train.csv.dvc"
    assert data.pointer_md5(csv) == _md5(csv)
    assert _remote_object(repo / "remote", _md5(csv)).read_bytes() == original
    assert "/train.csv" in (csv.parent / ".gitignore").read_text().splitlines()

    csv.unlink()
    shutil.rmtree(repo / ".dvc" / "cache")
    data.pull(root=repo, settings=settings)

    assert csv.read_bytes() == original
    assert data.fingerprint([csv]).files[0].matches_pointer is True


def test_pull_of_an_object_missing_from_the_remote_names_the_file(
    repo: Path, settings: Settings, raw_train_csv: Path
) -> None:
    csv = _csv(repo, raw_train_csv)
    data.add_and_push(csv, settings=settings)
    shutil.rmtree(repo / "remote" / "files")
    shutil.rmtree(repo / ".dvc" / "cache")
    csv.unlink()

    with pytest.raises(data.DataError) as caught:
        data.pull(root=repo, settings=settings)

    message = str(caught.value)
    assert "failed to pull" in message
    assert "data/titanic/raw/train.csv" in message
    assert not csv.exists()


def test_pull_of_named_targets(repo: Path, settings: Settings, raw_train_csv: Path) -> None:
    first = _csv(repo, raw_train_csv, "data/titanic/raw/train.csv", rows=10)
    second = _csv(repo, raw_train_csv, "data/titanic/raw/other.csv", rows=20)
    for path in (first, second):
        data.add_and_push(path, settings=settings)
        path.unlink()

    data.pull([first], root=repo, settings=settings)

    assert first.is_file()
    assert not second.exists()


def test_failed_push_undoes_the_add(repo: Path, settings: Settings, raw_train_csv: Path) -> None:
    csv = _csv(repo, raw_train_csv)
    blocker = repo / "not-a-folder"
    blocker.write_text("a remote cannot live under a file")
    _run([DVC, "remote", "modify", "bundled", "url", "not-a-folder/remote"], repo)

    with pytest.raises(data.DataError, match=r"pushing .*train\.csv to the DVC remote failed"):
        data.add_and_push(csv, settings=settings)

    assert csv.is_file()
    assert not data.pointer_path(csv).exists()
    gitignore = csv.parent / ".gitignore"
    assert not gitignore.exists() or "/train.csv" not in gitignore.read_text()


def test_add_batch_copies_tracks_and_pushes(repo: Path, settings: Settings, raw_train_csv: Path) -> None:
    source = _csv(repo.parent, raw_train_csv, "new-batch.csv", rows=12)
    raw = _csv(repo, raw_train_csv)
    data.add_and_push(raw, settings=settings)

    target = data.add_batch(source, settings=settings)

    assert target.parent == settings.incoming_dir
    assert target.name.startswith("batch-")
    assert target.read_bytes() == source.read_bytes()
    assert data.pointer_md5(target) == _md5(source)
    assert _remote_object(repo / "remote", _md5(source)).read_bytes() == source.read_bytes()
    assert data.training_files(settings) == [raw, target]
    assert data.fingerprint(data.training_files(settings)).total_rows == 30 + 12

    named = data.add_batch(source, name="second-batch", settings=settings)
    assert named == settings.incoming_dir / "second-batch.csv"
    with pytest.raises(data.DataError, match="already exists"):
        data.add_batch(source, name="second-batch", settings=settings)


def test_add_batch_leaves_nothing_behind_when_dvc_fails(
    repo: Path, settings: Settings, raw_train_csv: Path
) -> None:
    source = _csv(repo.parent, raw_train_csv, "new-batch.csv", rows=5)
    (repo / "not-a-folder").write_text("x")
    _run([DVC, "remote", "modify", "bundled", "url", "not-a-folder/remote"], repo)

    with pytest.raises(data.DataError, match="was not added"):
        data.add_batch(source, name="doomed", settings=settings)

    leftovers = sorted(p.name for p in settings.incoming_dir.iterdir() if p.name != ".gitignore")
    assert leftovers == []
    assert data.training_files(settings) == [settings.raw_data]


def test_concurrent_adds_are_serialised(repo: Path, settings: Settings, raw_train_csv: Path) -> None:
    paths = [_csv(repo, raw_train_csv, f"data/titanic/raw/part-{i}.csv", rows=5 + i) for i in range(3)]
    errors: list[BaseException] = []

    def add(path: Path) -> None:
        try:
            data.add_and_push(path, settings=settings)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(p,)) for p in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)

    assert errors == []
    for path in paths:
        assert _remote_object(repo / "remote", _md5(path)).is_file()


def test_a_fresh_clone_of_the_project_layout_pulls_from_the_bundled_remote(tmp_path: Path) -> None:
    """The project's DVC config, pointers and bundled remote, committed to git, restore the data offline."""
    origin = tmp_path / "origin"
    origin.mkdir()
    tracked = [Path(".dvc/config"), Path(".dvc/.gitignore"), Path(".dvcignore")]
    for folder in ("data/titanic/raw", "data/titanic/incoming"):
        found = (REPO_ROOT / folder).glob("*")
        tracked += [p.relative_to(REPO_ROOT) for p in found if p.suffix == ".dvc" or p.name == ".gitignore"]
    pointers = [p for p in tracked if p.suffix == ".dvc"]
    assert Path("data/titanic/raw/train.csv.dvc") in pointers
    for name in tracked:
        (origin / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / name, origin / name)
    shutil.copytree(REPO_ROOT / "data" / "remote", origin / "data" / "remote")
    _run(["git", "init", "-q"], origin)
    _run(["git", "add", "-A"], origin)
    _run(["git", *GIT_IDENTITY, "commit", "-q", "-m", "layout"], origin)
    clone = tmp_path / "moved" / "clone"
    _run(["git", "clone", "-q", str(origin), str(clone)], tmp_path)
    assert not (clone / "data" / "titanic" / "raw" / "train.csv").exists()

    data.pull(root=clone, settings=Settings(state_dir=tmp_path / "state"))

    for pointer in pointers:
        pulled = clone / pointer.with_suffix("")
        assert _md5(pulled) == data.pointer_md5(pulled), pointer
    assert _md5(clone / "data" / "titanic" / "raw" / "train.csv") == _md5(
        REPO_ROOT / "data" / "titanic" / "raw" / "train.csv"
    )
