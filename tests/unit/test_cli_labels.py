"""``lifeboat labels add FILE --dataset D``: the counts, the same log file as the server, exit code 2 with a
clear message on a conflict, an invalid label or a missing file."""

from __future__ import annotations

from pathlib import Path

import pytest

from lifeboat import cli
from lifeboat.dataset.spec import spec_of
from lifeboat.monitoring.feedback import read_labels
from lifeboat.monitoring.prediction_log import PredictionLog, log_columns
from lifeboat.settings import Settings

pytestmark = pytest.mark.unit


@pytest.fixture
def adult_log(tmp_path: Path, settings_env: pytest.MonkeyPatch) -> Path:
    """The adult dataset's prediction log, where the server writes it, holding ids a-0 .. a-3."""
    settings_env.setenv("LIFEBOAT_STATE_DIR", str(tmp_path / "state"))
    settings_env.delenv("LIFEBOAT_DATASET", raising=False)
    settings = Settings(dataset="adult")
    log = PredictionLog(settings.prediction_log_path, max_rows=1000, columns=log_columns(spec_of(settings)))
    ids = [f"a-{i}" for i in range(4)]
    log.append([{"age": 30 + i} for i in range(4)], [0.2] * 4, [0] * 4, "1", request_ids=ids)
    log.close()
    return settings.prediction_log_path


def test_labels_add_counts_and_stores(
    adult_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,label\na-0,1\na-1,0\na-1,0\nmissing,1\n")
    assert cli.main(["labels", "add", str(labels), "--dataset", "adult"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "4 label(s) for dataset adult: 2 matched (stored), 1 unknown" in out
    first, announced = out.rstrip().splitlines()
    assert first.endswith("1 duplicate")
    # Stored labels are announced on the incoming asset (no embedded stack runs in this test).
    assert announced == "the embedded Airflow is not running: the next scheduled run uses the data"
    assert read_labels(adult_log) == {"a-0": ("1", 1), "a-1": ("0", 0)}
    as_json = tmp_path / "labels.json"
    as_json.write_text('{"labels": [{"request_id": "a-2", "label": 1}, {"request_id": "a-0", "label": 1}]}')
    assert cli.main(["labels", "add", str(as_json), "--dataset", "adult"]) == cli.EXIT_OK
    assert "2 label(s) for dataset adult: 1 matched (stored), 0 unknown" in capsys.readouterr().out


def test_a_conflict_exits_2_naming_the_ids(
    adult_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = tmp_path / "first.csv"
    first.write_text("request_id,label\na-0,1\n")
    assert cli.main(["labels", "add", str(first), "--dataset", "adult"]) == cli.EXIT_OK
    second = tmp_path / "second.csv"
    second.write_text("request_id,label\na-3,1\na-0,0\n")
    assert cli.main(["labels", "add", str(second), "--dataset", "adult"]) == cli.EXIT_BAD_DATA
    err = capsys.readouterr().err
    assert f"lifeboat labels: error: {second}: 1 request id(s) already have a different label" in err
    assert err.rstrip().endswith("nothing was stored: a-0")
    assert read_labels(adult_log) == {"a-0": ("1", 1)}


def test_an_invalid_label_or_a_missing_file_exits_2(
    adult_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("request_id,label\na-0,1\na-1,>50K\n")
    assert cli.main(["labels", "add", str(bad), "--dataset", "adult"]) == cli.EXIT_BAD_DATA
    assert "line 3 label '>50K': not a value of the label column 'income_over_50k'" in capsys.readouterr().err
    assert (
        cli.main(["labels", "add", str(tmp_path / "absent.csv"), "--dataset", "adult"]) == cli.EXIT_BAD_DATA
    )
    assert "no such file" in capsys.readouterr().err
    assert read_labels(adult_log) == {}


def test_labels_add_needs_a_file_and_export_a_positive_min_rows(
    adult_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["labels", "add", "--dataset", "adult"]) == cli.EXIT_BAD_DATA
    assert "labels add needs FILE" in capsys.readouterr().err
    assert cli.main(["labels", "export", "--min-rows", "0", "--dataset", "adult"]) == cli.EXIT_BAD_DATA
    assert "--min-rows must be at least 1, got 0" in capsys.readouterr().err


def test_export_without_labelled_rows_adds_no_batch(
    adult_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["labels", "export", "--dataset", "adult"]) == cli.EXIT_OK
    assert capsys.readouterr().out.strip() == "0 labelled row(s) to export < 1: no batch"


def test_an_export_that_fails_validation_adds_nothing_and_keeps_the_rows_for_later(
    adult_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The logged adult rows hold only ``age``: the batch fails the spec's checks, no file is added, and the
    labels stay unexported (a later export takes them again)."""
    from lifeboat.monitoring.labelled_batch import unexported_rows

    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,label\na-0,1\na-1,0\n")
    assert cli.main(["labels", "add", str(labels), "--dataset", "adult"]) == cli.EXIT_OK
    capsys.readouterr()
    assert cli.main(["labels", "export", "--dataset", "adult"]) == cli.EXIT_BAD_DATA
    assert "lifeboat labels: error:" in capsys.readouterr().err
    settings = Settings(dataset="adult")
    assert not list(settings.incoming_dir.glob("batch-*"))
    assert unexported_rows(settings)["request_id"].tolist() == ["a-0", "a-1"]
