"""The ``lifeboat`` command: the subcommand registry, output and exit codes (2 bad data, 1 other failure)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lifeboat import cli

FINGERPRINT = cli.COMMANDS["fingerprint"]

pytestmark = pytest.mark.unit

HEADER = "PassengerId,Survived,Pclass,Name,Sex,Age,SibSp,Parch,Ticket,Fare,Cabin,Embarked\n"
GOOD_ROW = '1,0,3,"Braund, Mr. Owen Harris",male,22,1,0,A/5 21171,7.25,,S\n'
BAD_ROW = '2,1,1,"Cumings, Mrs. John Bradley",female,38,1,0,PC 17599,71.28,C85,X\n'


@pytest.fixture
def bad_csv(tmp_path: Path) -> Path:
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + GOOD_ROW + BAD_ROW)
    return path


@pytest.fixture
def good_csv(tmp_path: Path) -> Path:
    path = tmp_path / "good.csv"
    path.write_text(HEADER + GOOD_ROW)
    return path


def test_data_commands_are_registered() -> None:
    assert {"pull", "validate", "add-batch", "fingerprint"} <= set(cli.COMMANDS)
    help_text = cli.build_parser().format_help()
    for name, registered in cli.COMMANDS.items():
        assert registered.help, name
        assert name in help_text


def test_registering_a_command_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        cli.command("validate", "again")(lambda args: 0)


def test_a_new_command_needs_only_a_decorated_function(capsys: pytest.CaptureFixture[str]) -> None:
    @cli.command("echo-test", "print its argument", cli.arg("word"))
    def _echo(args: object) -> int:
        print(f"said {getattr(args, 'word', None)}")
        return 0

    try:
        assert cli.main(["echo-test", "hello"]) == 0
        assert capsys.readouterr().out == "said hello\n"
    finally:
        del cli.COMMANDS["echo-test"]


def test_validate_bad_data_exits_2_naming_file_row_and_column(
    bad_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["validate", str(bad_csv)]) == cli.EXIT_BAD_DATA
    err = capsys.readouterr().err
    assert str(bad_csv) in err
    assert "row 2" in err
    assert "column 'Embarked'" in err


def test_validate_reports_every_file_and_fails_if_any_is_bad(
    good_csv: Path, bad_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["validate", str(bad_csv), str(good_csv)]) == cli.EXIT_BAD_DATA
    captured = capsys.readouterr()
    assert f"ok {good_csv}: 1 rows, 0.0% Survived = 1" in captured.out
    assert str(bad_csv) in captured.err


def test_validate_defaults_to_the_training_files(
    raw_train_csv: Path,
    good_csv: Path,
    tmp_path: Path,
    settings_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "batch-1.csv").write_bytes(good_csv.read_bytes())
    settings_env.setenv("LIFEBOAT_RAW_DATA", str(raw_train_csv))
    settings_env.setenv("LIFEBOAT_INCOMING_DIR", str(incoming))
    assert cli.main(["validate"]) == cli.EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"ok {raw_train_csv}: 891 rows, 38.4% Survived = 1",
        f"ok {incoming / 'batch-1.csv'}: 1 rows, 0.0% Survived = 1",
    ]


def test_validate_unlabelled(raw_test_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["validate", "--unlabelled", str(raw_test_csv)]) == cli.EXIT_OK
    assert "418 rows" in capsys.readouterr().out
    assert cli.main(["validate", str(raw_test_csv)]) == cli.EXIT_BAD_DATA
    assert "column 'Survived'" in capsys.readouterr().err


def test_validate_checks_another_dataset_against_its_own_spec(
    raw_train_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--dataset adult`` reads data/adult/dataset.yaml: Adult's file passes, Titanic's does not."""
    adult = raw_train_csv.parents[2] / "adult" / "raw" / "train.csv"
    assert cli.main(["validate", "--dataset", "adult", str(adult)]) == cli.EXIT_OK
    assert capsys.readouterr().out == f"ok {adult}: 48842 rows, 23.9% income_over_50k = 1\n"
    assert cli.main(["validate", "--dataset", "adult", str(raw_train_csv)]) == cli.EXIT_BAD_DATA
    assert "required column is missing from the header" in capsys.readouterr().err


def test_validate_with_a_broken_spec_exits_2_naming_file_and_key(
    good_csv: Path, tmp_path: Path, settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "dataset.yaml"
    spec.write_text("name: titanic\nlabel: {column: Survived}\ncolumns: []\nfeatures: []\n")
    settings_env.setenv("LIFEBOAT_DATASET_SPEC", str(spec))
    assert cli.main(["validate", str(good_csv)]) == cli.EXIT_BAD_DATA
    assert f"{spec}: columns:" in capsys.readouterr().err


def test_add_batch_of_bad_data_exits_2(
    bad_csv: Path, tmp_path: Path, settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    incoming = tmp_path / "incoming"
    settings_env.setenv("LIFEBOAT_INCOMING_DIR", str(incoming))
    assert cli.main(["add-batch", str(bad_csv)]) == cli.EXIT_BAD_DATA
    assert "column 'Embarked'" in capsys.readouterr().err
    assert not incoming.exists()


def test_add_batch_without_a_dvc_repository_exits_1(
    good_csv: Path, tmp_path: Path, settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings_env.setenv("LIFEBOAT_INCOMING_DIR", str(tmp_path / "incoming"))
    assert cli.main(["add-batch", str(good_csv)]) == cli.EXIT_FAILURE
    assert "lifeboat add-batch: error:" in capsys.readouterr().err


def test_fingerprint_prints_json(
    raw_train_csv: Path, tmp_path: Path, settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings_env.setenv("LIFEBOAT_RAW_DATA", str(raw_train_csv))
    settings_env.setenv("LIFEBOAT_INCOMING_DIR", str(tmp_path / "none"))
    assert cli.main(["fingerprint"]) == cli.EXIT_OK
    printed = json.loads(capsys.readouterr().out)
    assert [f["path"] for f in printed["files"]] == [str(raw_train_csv)]
    assert printed["total_rows"] == 891


def test_fingerprint_of_missing_data_exits_1(
    tmp_path: Path, settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings_env.setenv("LIFEBOAT_RAW_DATA", str(tmp_path / "absent.csv"))
    assert cli.main(["fingerprint"]) == cli.EXIT_FAILURE
    assert "absent.csv: file not found" in capsys.readouterr().err


def test_usage_errors_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().err
    assert cli.main(["no-such-command"]) == 2
    assert cli.main(["--help"]) == 0


def test_traceback_flag_reraises(bad_csv: Path, tmp_path: Path, settings_env: pytest.MonkeyPatch) -> None:
    from lifeboat.dataset.schema import DataValidationError

    settings_env.setenv("LIFEBOAT_INCOMING_DIR", str(tmp_path / "incoming"))
    with pytest.raises(DataValidationError):
        cli.main(["--traceback", "add-batch", str(bad_csv)])


def test_console_script_exit_code(bad_csv: Path) -> None:
    script = Path(sys.executable).parent / "lifeboat"
    done = subprocess.run(
        [str(script), "validate", str(bad_csv)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert "row 2" in done.stderr


def test_every_subcommand_takes_dataset() -> None:
    parser = cli.build_parser()
    for name in cli.COMMANDS:
        args = parser.parse_args([name, "--dataset", "titanic", *_required_arguments(name)])
        assert args.dataset == "titanic", name


def _required_arguments(name: str) -> list[str]:
    """Placeholder values for a subcommand's required arguments (parsing only, nothing runs)."""
    values: list[str] = []
    for argument in cli.COMMANDS[name].arguments:
        if argument.options.get("required"):
            values += [argument.flags[0], "x"]
        elif not argument.flags[0].startswith("-"):
            values.append(str(argument.options["choices"][0]) if "choices" in argument.options else "x")
    return values


def test_dataset_selects_the_dataset_of_the_command_and_its_children(
    settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings_env.delenv("LIFEBOAT_DATASET", raising=False)
    seen: list[str | None] = []
    cli.COMMANDS["fingerprint"] = dataclasses.replace(
        cli.COMMANDS["fingerprint"], handler=lambda _: seen.append(os.environ.get("LIFEBOAT_DATASET")) or 0
    )
    try:
        assert cli.main(["fingerprint", "--dataset", "adult"]) == cli.EXIT_OK
    finally:
        cli.COMMANDS["fingerprint"] = FINGERPRINT
    # The command (and the processes it starts) saw the dataset; the caller's environment is as it was.
    assert seen == ["adult"]
    assert "LIFEBOAT_DATASET" not in os.environ
    assert cli.main(["fingerprint", "--dataset", "titanic"]) == cli.EXIT_OK
    assert "data/titanic/raw/train.csv" in capsys.readouterr().out
    assert "LIFEBOAT_DATASET" not in os.environ


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("atlantis", "--dataset 'atlantis': no folder data/atlantis (datasets here: "),
        ("Bad Name", "--dataset 'Bad Name': a dataset name is lowercase letters"),
    ],
)
def test_an_unknown_dataset_is_bad_input_named_in_one_line(
    settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, message: str
) -> None:
    settings_env.setenv("LIFEBOAT_DATASET", "titanic")
    assert cli.main(["fingerprint", "--dataset", name]) == cli.EXIT_BAD_DATA
    err = capsys.readouterr().err
    assert f"lifeboat fingerprint: error: {message}" in err
    assert err.count("\n") == 1
