"""jobs/preprocess.py: validation, de-duplication, the deterministic split, atomic output, no feature skew."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from lifeboat.dataset.encoder import encode, fit
from lifeboat.dataset.fitted import FittedEncoder
from lifeboat.dataset.schema import COLUMNS
from lifeboat.training import output as preprocess_output
from lifeboat.training import preprocessing
from lifeboat.training.output import ID, LABEL
from tests.support.models import titanic_spec

#: Titanic's 22 features (the spec's encoder names them).
FEATURE_NAMES: tuple[str, ...] = tuple(titanic_spec().feature_names or ())
TITANIC_SPEC = Path(__file__).resolve().parents[2] / "data" / "titanic" / "dataset.yaml"

pytestmark = pytest.mark.spark

JOBS_DIR = Path(__file__).resolve().parents[2] / "jobs"

WriteCsv = Callable[[Path, pd.DataFrame], Path]


def run_job(
    job: ModuleType, capsys: pytest.CaptureFixture[str], raw: Path, incoming: Path, output: Path, *extra: str
) -> tuple[int, str, str]:
    """Run preprocess's main in-process; return (exit code, stdout, stderr)."""
    code = job.main(["--raw", str(raw), "--incoming", str(incoming), "--output", str(output), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def splits_of(output: Path) -> dict[int, str]:
    """Row key (Titanic: the PassengerId) -> train/holdout, from a preprocess output."""
    frame = pd.read_parquet(output / preprocess_output.FEATURES_DIR, columns=[ID, "split"])
    return dict(zip(frame[ID].astype(int), frame["split"], strict=True))


def summary_of(output: Path) -> dict[str, object]:
    """The summary.json of a preprocess output."""
    data: dict[str, object] = json.loads((output / preprocess_output.SUMMARY_FILE).read_text())
    return data


def raw_rows(output: Path) -> pd.DataFrame:
    """train_raw + holdout_raw of a preprocess output, by row key (Titanic: the PassengerId)."""
    frames = [
        pd.read_parquet(output / d)
        for d in (preprocess_output.TRAIN_RAW_DIR, preprocess_output.HOLDOUT_RAW_DIR)
    ]
    return pd.concat(frames).sort_values(ID).reset_index(drop=True)


def parse_like_validator(path: Path) -> pd.DataFrame:
    """A CSV parsed the way lifeboat.dataset.schema.validate_csv reads cells: stripped, empty = missing,
    numbers."""
    text = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    out = pd.DataFrame(index=text.index)
    for spec in COLUMNS:
        if spec.name not in text.columns:
            out[spec.name] = None
            continue
        stripped = text[spec.name].str.strip().replace("", np.nan)
        if spec.kind == "str":
            out[spec.name] = stripped.astype(object).where(stripped.notna(), None)
        else:
            out[spec.name] = pd.to_numeric(stripped)
    return out


def test_invalid_spec_exits_2_naming_file_and_key(
    preprocess_job: ModuleType,
    titanic_rows: pd.DataFrame,
    write_csv: WriteCsv,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = tmp_path / "dataset.yaml"
    spec.write_text(TITANIC_SPEC.read_text().replace("type: numeric", "type: decimal", 1))
    raw = write_csv(tmp_path / "raw.csv", titanic_rows.iloc[:30])

    code, _, err = run_job(
        preprocess_job, capsys, raw, tmp_path / "none", tmp_path / "out", "--spec", str(spec)
    )

    assert code == 2
    assert (
        f"{spec}: columns.Age.type: Input should be 'numeric', 'integer', 'categorical', 'boolean' or "
        "'text', got 'decimal'"
    ) in err
    assert not (tmp_path / "out").exists()


def test_split_is_deterministic_across_runs_and_when_a_batch_is_added(
    spark: object,
    preprocess_job: ModuleType,
    titanic_rows: pd.DataFrame,
    write_csv: WriteCsv,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    raw = write_csv(tmp_path / "raw.csv", titanic_rows.iloc[:150])
    none = tmp_path / "no-batches"
    assert run_job(preprocess_job, capsys, raw, none, tmp_path / "run1")[0] == 0
    assert run_job(preprocess_job, capsys, raw, none, tmp_path / "run2")[0] == 0
    write_csv(tmp_path / "incoming" / "batch-001.csv", titanic_rows.iloc[150:200])
    assert run_job(preprocess_job, capsys, raw, tmp_path / "incoming", tmp_path / "run3")[0] == 0

    first, second, with_batch = (splits_of(tmp_path / f"run{i}") for i in (1, 2, 3))
    assert first == second
    assert {pid: with_batch[pid] for pid in first} == first
    assert set(with_batch) == set(range(1, 201))
    holdout_share = sum(s == "holdout" for s in with_batch.values()) / len(with_batch)
    assert 0.1 < holdout_share < 0.3
    # Same inputs -> byte-for-byte the same feature table.
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "run1" / "features"), pd.read_parquet(tmp_path / "run2" / "features")
    )


def test_duplicates_are_dropped_and_the_latest_file_wins(
    spark: object,
    preprocess_job: ModuleType,
    titanic_rows: pd.DataFrame,
    write_csv: WriteCsv,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = pd.concat([titanic_rows.iloc[:100], titanic_rows.iloc[[5]]])  # one exact duplicate inside the file
    updated = titanic_rows.iloc[[20]].copy()
    updated["Fare"] = "99.5"  # same passenger and label, corrected fare: the batch's row must win
    batch = pd.concat(
        [titanic_rows.iloc[[10]], updated, titanic_rows.iloc[100:120]]
    )  # row 10: exact duplicate
    raw = write_csv(tmp_path / "raw.csv", base)
    write_csv(tmp_path / "incoming" / "batch-001.csv", batch)

    code, out, _ = run_job(preprocess_job, capsys, raw, tmp_path / "incoming", tmp_path / "out")

    assert code == 0, out
    summary = summary_of(tmp_path / "out")
    assert summary["rows_in"] == 101 + 22
    assert summary["exact_duplicates_removed"] == 2
    assert summary["superseded_rows_removed"] == 1
    assert summary["rows_out"] == 120
    rows = raw_rows(tmp_path / "out")
    assert rows["PassengerId"].tolist() == list(range(1, 121))
    assert rows.loc[rows["PassengerId"] == 21, "Fare"].item() == 99.5
    assert "2 exact duplicates, 1 superseded" in out


def test_summary_counts_and_inputs(
    spark: object,
    preprocess_job: ModuleType,
    titanic_rows: pd.DataFrame,
    write_csv: WriteCsv,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    raw = write_csv(tmp_path / "raw.csv", titanic_rows.iloc[:120])
    batch = write_csv(tmp_path / "incoming" / "batch-001.csv", titanic_rows.iloc[120:160])

    code, _, _ = run_job(
        preprocess_job,
        capsys,
        raw,
        tmp_path / "incoming",
        tmp_path / "out",
        "--holdout-percent",
        "25",
        "--salt",
        "7",
    )

    assert code == 0
    summary = summary_of(tmp_path / "out")
    inputs = summary["inputs"]
    assert isinstance(inputs, list)
    assert [(Path(i["path"]).name, i["rows"], i["md5"]) for i in inputs] == [
        ("raw.csv", 120, hashlib.md5(raw.read_bytes()).hexdigest()),
        ("batch-001.csv", 40, hashlib.md5(batch.read_bytes()).hexdigest()),
    ]
    rows = raw_rows(tmp_path / "out")
    splits = splits_of(tmp_path / "out")
    for name in ("train", "holdout"):
        part = rows[rows["PassengerId"].map(splits) == name]
        assert summary[name] == {
            "rows": len(part),
            "positives": int(part["Survived"].sum()),
            "positive_rate": pytest.approx(part["Survived"].mean()),
        }
        assert len(pd.read_parquet(tmp_path / "out" / f"{name}_raw")) == len(part)
    assert summary["rows_out"] == 160
    assert summary["holdout_percent"] == 25
    assert summary["salt"] == 7
    assert summary["feature_names"] == list(FEATURE_NAMES)
    assert summary["spark_version"] == spark.version  # type: ignore[attr-defined]
    assert summary["dataset"] == "titanic"
    assert summary["dataset_spec_fingerprint"] == titanic_spec().fingerprint()
    assert (summary["id_column"], summary["label_column"], summary["positive_label"]) == (
        "PassengerId",
        "Survived",
        1,
    )


def test_conflicting_labels_across_files_fail_naming_ids_and_files(
    spark: object,
    preprocess_job: ModuleType,
    titanic_rows: pd.DataFrame,
    write_csv: WriteCsv,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    raw = write_csv(tmp_path / "raw.csv", titanic_rows.iloc[:60])
    flipped = titanic_rows.iloc[[2, 6]].copy()
    flipped["Survived"] = flipped["Survived"].map({"0": "1", "1": "0"})
    write_csv(tmp_path / "incoming" / "batch-001.csv", pd.concat([flipped, titanic_rows.iloc[60:70]]))

    code, _, err = run_job(preprocess_job, capsys, raw, tmp_path / "incoming", tmp_path / "out")

    assert code == 2
    lines = [line for line in err.splitlines() if "PassengerId" in line]
    assert len(lines) == 2
    for pid, line in zip((3, 7), lines, strict=True):
        assert f"PassengerId {pid} " in line
        assert "raw.csv" in line
        assert "batch-001.csv" in line
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.*"))


def test_invalid_csv_exits_2_naming_file_row_column_and_writes_nothing(
    preprocess_job: ModuleType,
    titanic_rows: pd.DataFrame,
    write_csv: WriteCsv,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = titanic_rows.iloc[:30].copy()
    rows.iloc[2, rows.columns.get_loc("Age")] = "abc"
    raw = write_csv(tmp_path / "raw.csv", rows)
    batch = titanic_rows.iloc[30:40].copy()
    batch.iloc[0, batch.columns.get_loc("Sex")] = "alien"
    write_csv(tmp_path / "incoming" / "batch-001.csv", batch)

    code, _, err = run_job(preprocess_job, capsys, raw, tmp_path / "incoming", tmp_path / "out")

    assert code == 2
    assert f"{raw}: row 3, column 'Age': expected a number, got 'abc'" in err
    assert "batch-001.csv: row 1, column 'Sex': unknown value 'alien'" in err
    assert not (tmp_path / "out").exists()


def test_messy_but_valid_csv_reads_exactly_like_the_validator(
    spark: object,
    preprocess_job: ModuleType,
    titanic_rows: pd.DataFrame,
    write_csv: WriteCsv,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = titanic_rows.iloc[:80].copy()
    rows.iloc[0, rows.columns.get_loc("Age")] = " 22 "
    rows.iloc[1, rows.columns.get_loc("Pclass")] = "1.0"
    rows.iloc[2, rows.columns.get_loc("Name")] = 'Smith, Mr. John "Jack", Jr'
    rows.iloc[3, rows.columns.get_loc("Embarked")] = ""
    rows.iloc[4, rows.columns.get_loc("Fare")] = "  8.05"
    rows = rows.drop(columns=["Cabin"])  # optional column absent from the file
    rows = rows[list(reversed(rows.columns))]  # columns in another order
    raw = write_csv(tmp_path / "raw.csv", rows)

    code, _, err = run_job(preprocess_job, capsys, raw, tmp_path / "none", tmp_path / "out")

    assert code == 0, err
    encoder = FittedEncoder.load(tmp_path / "out" / preprocess_output.ENCODER_FILE)
    features = pd.read_parquet(tmp_path / "out" / "features").sort_values(ID)
    expected = encode(encoder, parse_like_validator(raw).sort_values("PassengerId").reset_index(drop=True))
    np.testing.assert_array_equal(features[list(FEATURE_NAMES)].to_numpy(), expected)
    stored = raw_rows(tmp_path / "out")
    assert stored.loc[2, "Name"] == 'Smith, Mr. John "Jack", Jr'
    assert stored["Cabin"].isna().all()


def test_features_equal_the_serving_encoding_of_the_raw_rows(
    titanic_preprocessed: Path, raw_train_csv: Path
) -> None:
    """The skew test: raw passengers through Spark's path and through serving's path give the same inputs."""
    features = pd.read_parquet(titanic_preprocessed / "features").sort_values(ID).reset_index(drop=True)
    raw = pd.read_csv(raw_train_csv).sort_values("PassengerId").reset_index(drop=True)
    encoder = FittedEncoder.load(titanic_preprocessed / preprocess_output.ENCODER_FILE)

    assert list(features.columns) == [ID, LABEL, "split", *FEATURE_NAMES]
    assert encoder.feature_names == FEATURE_NAMES
    assert all(features[name].dtype == np.float32 for name in FEATURE_NAMES)
    np.testing.assert_array_equal(features[ID].to_numpy(), raw["PassengerId"].to_numpy())
    np.testing.assert_array_equal(features[list(FEATURE_NAMES)].to_numpy(), encode(encoder, raw))
    np.testing.assert_array_equal(features[LABEL].to_numpy(), raw["Survived"].to_numpy())
    # The encoder is fitted on the train split only (and on the spec's input columns).
    train = raw[raw["PassengerId"].isin(features.loc[features["split"] == "train", ID])]
    refitted = fit(encoder.spec, train.reset_index(drop=True))
    assert encoder.to_dict() == refitted.to_dict()
    assert encoder.statistics.rows == (features["split"] == "train").sum() < len(raw)


def test_real_data_summary(titanic_preprocessed: Path, raw_train_csv: Path) -> None:
    summary = summary_of(titanic_preprocessed)
    train, holdout = summary["train"], summary["holdout"]
    assert isinstance(train, dict)
    assert isinstance(holdout, dict)
    assert summary["rows_in"] == summary["rows_out"] == train["rows"] + holdout["rows"] == 891
    assert train["positives"] + holdout["positives"] == 342
    assert 150 < holdout["rows"] < 230
    assert summary["inputs"] == [
        {
            "path": str(raw_train_csv),
            "md5": hashlib.md5(raw_train_csv.read_bytes()).hexdigest(),
            "rows": 891,
            "positive_rate": pytest.approx(342 / 891),
        },
    ]


def test_failed_run_keeps_the_previous_output_and_cleans_up(
    spark: object,
    preprocess_job: ModuleType,
    titanic_rows: pd.DataFrame,
    write_csv: WriteCsv,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw = write_csv(tmp_path / "raw.csv", titanic_rows.iloc[:100])
    out = tmp_path / "out"
    assert run_job(preprocess_job, capsys, raw, tmp_path / "none", out)[0] == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    stale = tmp_path / ".out.tmp-killedjob"  # what a killed run leaves behind
    (stale / "features").mkdir(parents=True)

    def disk_full(path: Path, data: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(preprocessing, "write_json", disk_full)
    write_csv(tmp_path / "raw.csv", titanic_rows.iloc[:110])
    code, _, err = run_job(preprocess_job, capsys, raw, tmp_path / "none", out)

    assert code == 1
    assert "No space left on device" in err
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not list(tmp_path.glob(".out.*"))


def test_spark_submit_runs_the_job_as_airflow_will(
    titanic_rows: pd.DataFrame, write_csv: WriteCsv, tmp_path: Path
) -> None:
    venv_bin = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYSPARK_PYTHON": sys.executable,
    }
    spark_submit = shutil.which("spark-submit", path=env["PATH"])
    assert spark_submit is not None, "spark-submit must be in the environment's bin/"
    raw = write_csv(tmp_path / "raw.csv", titanic_rows.iloc[:120])
    bad = titanic_rows.iloc[:20].copy()
    bad.iloc[4, bad.columns.get_loc("Pclass")] = "7"
    bad_raw = write_csv(tmp_path / "bad.csv", bad)

    def submit(raw_csv: Path, output: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                spark_submit,
                "--master",
                "local[2]",
                "--conf",
                "spark.ui.enabled=false",
                str(JOBS_DIR / "preprocess.py"),
                "--spec",
                str(TITANIC_SPEC),
                "--raw",
                str(raw_csv),
                "--incoming",
                str(tmp_path / "none"),
                "--output",
                str(output),
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    done = submit(raw, tmp_path / "out")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "preprocessed 1 file(s), 120 rows -> 120" in done.stdout
    assert summary_of(tmp_path / "out")["rows_out"] == 120
    assert len(pd.read_parquet(tmp_path / "out" / "features")) == 120
    for name in ("train_raw", "holdout_raw", "encoder.json"):
        assert (tmp_path / "out" / name).exists()

    failed = submit(bad_raw, tmp_path / "bad-out")
    assert failed.returncode == 2
    # spark-submit merges the Python driver's stderr into its stdout; Airflow's task log shows both.
    assert "bad.csv: row 5, column 'Pclass': impossible value '7'" in failed.stdout + failed.stderr
    assert not (tmp_path / "bad-out").exists()


SYNTH_SPEC = """
name: synth
label: {column: outcome, positive: "yes"}
columns:
  - {name: x, type: numeric, range: {min: -10, max: 10}}
  - {name: color, type: categorical, vocabulary: [red, green, blue]}
  - {name: outcome, type: categorical, role: label, vocabulary: ["no", "yes"]}
features:
  - {column: x}
  - {column: color, encoding: onehot, unknown: other}
example: {x: 0.5, color: red}
"""


def test_dataset_without_id_keeps_repeated_rows_and_maps_a_text_label(
    spark: object,
    preprocess_job: ModuleType,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without an id every row is its own example: identical rows are all kept (nothing says they are the
    same person), each gets a key from its file and position, and the label becomes 1 exactly for "yes"."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-5, 5, 300).round(3)
    colors = rng.choice(["red", "green", "blue"], 300)
    frame = pd.DataFrame({"x": x, "color": colors, "outcome": np.where(x > 0, "yes", "no")})
    frame = pd.concat([frame, frame.iloc[:40]], ignore_index=True)  # 40 rows repeated exactly
    raw = tmp_path / "synth.csv"
    frame.to_csv(raw, index=False)
    spec = tmp_path / "dataset.yaml"
    spec.write_text(SYNTH_SPEC)

    code, out, err = run_job(
        preprocess_job, capsys, raw, tmp_path / "none", tmp_path / "out", "--spec", str(spec)
    )

    assert code == 0, err
    summary = summary_of(tmp_path / "out")
    assert (summary["rows_in"], summary["rows_out"], summary["exact_duplicates_removed"]) == (340, 340, 0)
    assert summary["dataset"] == "synth"
    assert summary["id_column"] is None
    assert summary["feature_names"] == ["x", "color_red", "color_green", "color_blue", "color_other"]
    features = pd.read_parquet(tmp_path / "out" / "features")
    assert features[ID].is_unique
    assert len(features) == 340
    rows = raw_rows(tmp_path / "out")
    assert (rows[LABEL] == (rows["outcome"] == "yes").astype(int)).all()
    assert rows[LABEL].sum() == int((frame["outcome"] == "yes").sum())
    assert "340 rows -> 340" in out
