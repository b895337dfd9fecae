"""``lifeboat dataset``: usage errors, refused before anything is read or written."""

from __future__ import annotations

import pytest

from lifeboat import cli
from lifeboat.cli.dataset import INIT_USAGE

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["init", "shop"],
            INIT_USAGE,
        ),
        (
            ["init", "shop", "--from", "x.csv"],
            INIT_USAGE,
        ),
        (["validate", "--json"], "--json is an option of `lifeboat dataset list`, not validate"),
        (["list", "--label", "y"], "--label is an option of `lifeboat dataset init`, not list"),
        (["init", "shop", "--all"], "--all is an option of `lifeboat dataset validate`, not init"),
        (["validate", "titanic", "--all"], "give a NAME or --all, not both"),
        (["list", "titanic"], "`lifeboat dataset list` takes no NAME"),
    ],
)
def test_usage_errors_exit_2_with_one_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["dataset", *argv]) == cli.EXIT_BAD_DATA
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"lifeboat dataset: error: {message}\n"


def test_an_unknown_action_is_an_argparse_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["dataset", "create", "shop"]) == cli.EXIT_BAD_DATA
    assert "invalid choice: 'create'" in capsys.readouterr().err


def test_an_invalid_name_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["dataset", "validate", "../etc"]) == cli.EXIT_BAD_DATA
    assert "invalid dataset name '../etc'" in capsys.readouterr().err
