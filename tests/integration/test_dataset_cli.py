"""``lifeboat dataset init|validate|list`` on a real git + DVC repository with a local remote."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from lifeboat.cli import main
from lifeboat.dataset.spec import check_against_data, load_spec
from tests.support.dvc_repo import DVC, init_repo, remote_object, run

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return init_repo(tmp_path_factory.mktemp("template") / "repo")


@pytest.fixture
def repo(template_repo: Path, tmp_path: Path, settings_env: pytest.MonkeyPatch) -> Path:
    """A fresh repository, the working directory of the test (so data/ is its data folder)."""
    root = tmp_path / "repo"
    shutil.copytree(template_repo, root, symlinks=True)
    settings_env.chdir(root)
    settings_env.delenv("LIFEBOAT_DATA_ROOT", raising=False)
    settings_env.delenv("LIFEBOAT_DATASET", raising=False)
    return root


@pytest.fixture
def shop_frame() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    n = 300
    spend = np.round(rng.uniform(5.0, 250.0, n), 2).astype(object)
    spend[::23] = None
    return pd.DataFrame(
        {
            "customer": np.arange(1, n + 1),
            "age": rng.integers(18, 90, n),
            "spend": spend,
            "channel": rng.choice(["web", "store", "phone"], n),
            "churned": rng.choice(["yes", "no"], n),
        }
    )


@pytest.fixture
def shop_csv(tmp_path: Path, shop_frame: pd.DataFrame) -> Path:
    path = tmp_path / "incoming" / "shop.csv"
    path.parent.mkdir()
    shop_frame.to_csv(path, index=False)
    return path


def lifeboat(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_init_drafts_the_spec_and_versions_the_data(
    repo: Path, shop_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = lifeboat(
        capsys, "dataset", "init", "shop", "--from", str(shop_csv), "--label", "churned", "--id", "customer"
    )
    assert (code, err) == (0, "")
    folder = repo / "data" / "shop"
    raw = folder / "raw" / "train.csv"
    assert raw.read_bytes() == shop_csv.read_bytes()
    pointer = folder / "raw" / "train.csv.dvc"
    assert f"md5: {md5(raw)}" in pointer.read_text()
    assert remote_object(repo / "remote", md5(raw)).read_bytes() == raw.read_bytes()
    assert "/train.csv" in (folder / "raw" / ".gitignore").read_text().splitlines()
    text = (folder / "dataset.yaml").read_text()
    assert text.startswith("# DRAFT written by `lifeboat dataset init`")
    spec = load_spec(folder / "dataset.yaml")
    assert (spec.name, spec.id_column, spec.label.column, spec.label.positive) == (
        "shop",
        "customer",
        "churned",
        "yes",
    )
    check_against_data(spec, pd.read_csv(raw))
    assert "ok shop: 300 rows, 7 features" in out  # age, spend, spend_missing, channel x 3 + other
    assert "lifeboat train --dataset shop" in out
    # the pointer restores the data: the workspace copy and the cache go, dvc pull brings both back
    raw.unlink()
    shutil.rmtree(repo / ".dvc" / "cache")
    run([DVC, "pull", "-q", "data/shop/raw/train.csv.dvc"], repo)
    assert raw.read_bytes() == shop_csv.read_bytes()

    code, out, _ = lifeboat(capsys, "dataset", "validate", "shop")
    assert code == 0
    assert out == f"ok shop: 300 rows, 7 features, fingerprint {spec.fingerprint()[:12]}\n"


def test_init_converts_parquet_to_csv(
    repo: Path, shop_frame: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "shop.parquet"
    shop_frame.assign(spend=shop_frame["spend"].astype(float)).to_parquet(source)
    code, _, err = lifeboat(capsys, "dataset", "init", "shop", "--from", str(source), "--label", "churned")
    assert (code, err) == (0, "")
    raw = repo / "data" / "shop" / "raw" / "train.csv"
    back = pd.read_csv(raw)
    assert list(back.columns) == list(shop_frame.columns)
    assert len(back) == 300
    assert back["spend"].isna().sum() == shop_frame["spend"].isna().sum()
    assert remote_object(repo / "remote", md5(raw)).is_file()
    spec = load_spec(repo / "data" / "shop" / "dataset.yaml")
    assert spec.columns_by_name["customer"].type == "integer"  # no --id: an ordinary integer feature


def _init(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run ``lifeboat dataset init``; a refusal prints nothing on stdout."""
    code, out, err = lifeboat(capsys, "dataset", "init", *argv)
    if code != 0:
        assert out == ""
    return code, err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["Shop", "--label", "churned"], "invalid dataset name 'Shop'"),
        (
            ["shop", "--label", "Churned"],
            "no label column 'Churned' in the data; its columns are: customer, age, ",
        ),
        (
            ["shop", "--label", "churned", "--id", "id"],
            "no id column 'id' in the data; its columns are: customer,",
        ),
        (
            ["shop", "--label", "channel"],
            "the label 'channel' must take exactly two values, found 3: ['phone',",
        ),
        (
            ["shop", "--label", "churned", "--positive", "maybe"],
            "--positive 'maybe' is not a value of the label",
        ),
    ],
)
def test_init_refusals_name_the_problem_and_write_nothing(
    repo: Path, shop_csv: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    name, *rest = argv
    code, err = _init(capsys, name, "--from", str(shop_csv), *rest)
    assert code == 2
    assert err.startswith("lifeboat dataset: error: ")
    assert message in err
    assert not (repo / "data").exists() or not any((repo / "data").iterdir())


def test_init_refuses_a_missing_or_unreadable_file(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _init(capsys, "shop", "--from", str(tmp_path / "nope.csv"), "--label", "y")
    assert (code, err) == (2, f"lifeboat dataset: error: {tmp_path / 'nope.csv'}: no such file\n")
    broken = tmp_path / "broken.parquet"
    broken.write_text("not a parquet file")
    code, err = _init(capsys, "shop", "--from", str(broken), "--label", "y")
    assert code == 2
    assert f"{broken}: cannot read it as a Parquet file" in err
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"name,y\ncaf\xe9,1\n")
    code, err = _init(capsys, "shop", "--from", str(latin), "--label", "y")
    assert code == 2
    assert f"{latin}: cannot read it as a CSV file" in err
    assert not (repo / "data" / "shop").exists()


def test_init_refuses_an_existing_folder_unless_forced(
    repo: Path, shop_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "data" / "shop").mkdir(parents=True)
    code, err = _init(capsys, "shop", "--from", str(shop_csv), "--label", "churned")
    assert code == 2
    assert "already exists: choose another name, or pass --force" in err
    code, out, err = lifeboat(
        capsys, "dataset", "init", "shop", "--from", str(shop_csv), "--label", "churned", "--force"
    )
    assert (code, err) == (0, "")
    assert "ok shop: 300 rows" in out
    assert (repo / "data" / "shop" / "raw" / "train.csv.dvc").is_file()


def test_init_undoes_everything_when_the_push_fails(
    repo: Path, shop_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run([DVC, "remote", "modify", "bundled", "url", "not-a-folder/remote"], repo)
    (repo / "not-a-folder").write_text("a file where the remote's parent folder should be")
    code, err = _init(capsys, "shop", "--from", str(shop_csv), "--label", "churned")
    assert code == 1
    assert "pushing " in err
    assert "the add was undone" in err
    assert not (repo / "data" / "shop").exists()


def test_validate_reports_a_spec_the_data_breaks(
    repo: Path, shop_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _init(capsys, "shop", "--from", str(shop_csv), "--label", "churned")[0] == 0
    spec_path = repo / "data" / "shop" / "dataset.yaml"
    data = yaml.safe_load(spec_path.read_text())
    age = next(c for c in data["columns"] if c["name"] == "age")
    age["range"]["max"] = 30
    spec_path.write_text(yaml.safe_dump(data, sort_keys=False))
    code, out, err = lifeboat(capsys, "dataset", "validate", "shop")
    assert (code, out) == (2, "")
    assert err.startswith("lifeboat dataset validate: error: ")
    assert "age" in err
    assert "above the maximum 30" in err

    spec_path.write_text(spec_path.read_text().replace("type: integer", "type: integr", 1))
    code, _, err = lifeboat(capsys, "dataset", "validate", "--dataset", "shop")
    assert code == 2
    assert f"{Path('data/shop/dataset.yaml')}: columns.customer.type: " in err

    code, _, err = lifeboat(capsys, "dataset", "validate", "nothing")
    assert code == 2
    assert "data/nothing/dataset.yaml: <top>: cannot read the file" in err


def test_validate_all_and_list(repo: Path, shop_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _init(capsys, "shop", "--from", str(shop_csv), "--label", "churned")[0] == 0
    assert _init(capsys, "store", "--from", str(shop_csv), "--label", "churned", "--id", "customer")[0] == 0
    code, out, _ = lifeboat(capsys, "dataset", "validate", "--all")
    assert code == 0
    assert [line.split(":")[0] for line in out.splitlines()] == ["ok shop", "ok store"]

    (repo / "data" / "store" / "raw" / "train.csv").unlink()
    code, out, _ = lifeboat(capsys, "dataset", "list")
    assert code == 0
    shop, store = out.splitlines()
    fingerprint = load_spec(repo / "data" / "shop" / "dataset.yaml").fingerprint()
    assert shop.split() == ["shop", "model", "shop", "300", "rows", "spec", fingerprint[:12]]
    assert "not pulled" in store

    code, out, _ = lifeboat(capsys, "dataset", "list", "--json")
    listed = json.loads(out)
    assert [(d["name"], d["registered_model"], d["rows"]) for d in listed] == [
        ("shop", "shop", 300),
        ("store", "store", None),
    ]
    assert listed[0]["fingerprint"] == fingerprint

    code, _, err = lifeboat(capsys, "dataset", "validate", "--all")
    assert code == 2
    assert "train.csv" in err
    assert "file not found" in err


def test_init_without_its_arguments_is_a_usage_error(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = lifeboat(capsys, "dataset", "init", "shop")
    assert (code, out) == (2, "")
    assert "usage: lifeboat dataset init NAME --from FILE --label COLUMN" in err
