"""``lifeboat new-batch`` and ``replay`` per dataset: Adult (no id) and Titanic (ids after the training ones)
in a real git + DVC repository, and replayed rows reaching the dataset's batch route."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import pytest

from lifeboat.cli import EXIT_OK, main
from lifeboat.dataset.spec import load_spec
from lifeboat.dataset.validation import validate_csv
from tests.support.dvc_repo import init_repo

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture(scope="module")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git + DVC repository with Adult (its first 3000 rows) and Titanic as datasets."""
    root = init_repo(tmp_path_factory.mktemp("template") / "repo")
    for name, rows in (("adult", 3000), ("titanic", None)):
        folder = root / "data" / name
        (folder / "raw").mkdir(parents=True)
        shutil.copy(DATA / name / "dataset.yaml", folder / "dataset.yaml")
        lines = (DATA / name / "raw" / "train.csv").read_text().splitlines(keepends=True)
        (folder / "raw" / "train.csv").write_text("".join(lines[: None if rows is None else rows + 1]))
    return root


@pytest.fixture
def repo(template_repo: Path, tmp_path: Path, settings_env: pytest.MonkeyPatch) -> Path:
    """A fresh copy of the repository, the working directory of the test (so data/ is its data folder)."""
    root = tmp_path / "repo"
    shutil.copytree(template_repo, root, symlinks=True)
    settings_env.chdir(root)
    for name in ("LIFEBOAT_DATA_ROOT", "LIFEBOAT_DATASET"):
        settings_env.delenv(name, raising=False)
    settings_env.setenv("LIFEBOAT_STATE_DIR", str(tmp_path / "state"))
    return root


def test_new_batch_of_adult_is_valid_drifted_and_versioned(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["new-batch", "--dataset", "adult", "--rows", "500", "--drift", "age+10", "--name", "b1.csv"]
    assert main(argv) == EXIT_OK
    out = capsys.readouterr().out
    assert "added 500 adult rows (drift: age+10)" in out
    batch = repo / "data" / "adult" / "incoming" / "b1.csv"
    assert (batch.parent / "b1.csv.dvc").is_file()
    spec = load_spec(repo / "data" / "adult" / "dataset.yaml")
    assert validate_csv(spec, batch, require_label=True).rows == 500
    frame = pd.read_csv(batch)
    assert list(frame.columns) == [*spec.raw_columns, "income_over_50k"]  # no id column
    train = pd.read_csv(repo / "data" / "adult" / "raw" / "train.csv")
    assert frame["age"].mean() > train["age"].mean() + 8
    # Every training file of the dataset (raw data and the new batch) passes `lifeboat validate`.
    assert main(["validate", "--dataset", "adult"]) == EXIT_OK
    assert "b1.csv: 500 rows" in capsys.readouterr().out


def test_new_batch_refuses_a_spec_of_other_columns(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new-batch", "--dataset", "adult", "--drift", "Age+15"]) != EXIT_OK
    err = capsys.readouterr().err
    assert "'Age' is not a numeric column of adult (numeric columns: age, education_num" in err
    assert not (repo / "data" / "adult" / "incoming").exists()


def test_new_titanic_batches_never_reuse_training_ids(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("b1.csv", "b2.csv"):
        assert main(["new-batch", "--rows", "300", "--seed", "1", "--name", name]) == EXIT_OK
    out = capsys.readouterr().out
    assert "added 300 titanic rows (ids 892..1191, drift: none)" in out
    assert "added 300 titanic rows (ids 1192..1491, drift: none)" in out
    incoming = repo / "data" / "titanic" / "incoming"
    ids = pd.concat([pd.read_csv(incoming / n)["PassengerId"] for n in ("b1.csv", "b2.csv")])
    assert ids.is_unique
    assert ids.min() == 892


class _Recorder(BaseHTTPRequestHandler):
    """Answers every POST with 200 and keeps its path and JSON body."""

    seen: ClassVar[list[tuple[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((self.path, json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def server() -> Iterator[tuple[str, list[tuple[str, Any]]]]:
    seen: ClassVar[list[tuple[str, Any]]] = []
    handler = type("Recorder", (_Recorder,), {"seen": seen})
    httpd = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_replay_of_adult_posts_records_to_its_route(
    repo: Path, server: tuple[str, list[tuple[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, seen = server
    argv = ["replay", "--dataset", "adult", "--rows", "150", "--drift", "age+10", "--url", url]
    assert main(argv) == EXIT_OK
    assert (
        f"replayed 150 records to {url}/v1/datasets/adult/predict/batch (0 failed)" in capsys.readouterr().out
    )
    assert [path for path, _ in seen] == ["/v1/datasets/adult/predict/batch"] * 2
    records = [r for _, body in seen for r in body["records"]]
    spec = load_spec(repo / "data" / "adult" / "dataset.yaml")
    assert len(records) == 150
    assert all(list(r) == spec.raw_columns for r in records)  # no label, no id


def test_replay_of_titanic_keeps_the_original_route(
    repo: Path, server: tuple[str, list[tuple[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, seen = server
    assert main(["replay", "--rows", "20", "--url", url]) == EXIT_OK
    assert "replayed 20 passengers" in capsys.readouterr().out
    assert [path for path, _ in seen] == ["/predict/batch"]
    assert seen[0][1]["passengers"][0]["PassengerId"] == 892  # after train.csv's ids (no test.csv here)
