"""The registry pools: their names, the document `airflow pools import` reads, and how `lifeboat up` makes
sure they exist (against a recording client; the real REST calls run in tests/orchestration and the
compose-on-host test)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from lifeboat.orchestration import pools
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit


class RecordingClient:
    """Pools by name, and every put."""

    def __init__(self, existing: dict[str, int]) -> None:
        self.pools = {name: {"name": name, "slots": slots} for name, slots in existing.items()}
        self.puts: list[tuple[str, int]] = []

    def pool(self, name: str) -> dict[str, Any] | None:
        return self.pools.get(name)

    def put_pool(self, name: str, slots: int, description: str) -> None:
        assert description
        self.puts.append((name, slots))
        self.pools[name] = {"name": name, "slots": slots}


def test_each_dataset_has_its_own_pool_of_one_slot() -> None:
    assert pools.registry_pool("titanic") == "lifeboat_titanic_registry"
    document = pools.pools_document(["titanic", "adult"])
    assert list(document) == ["lifeboat_titanic_registry", "lifeboat_adult_registry"]
    assert {d["slots"] for d in document.values()} == {1}
    assert all(d["description"] and d["include_deferred"] is False for d in document.values())


def test_ensure_pools_creates_the_missing_fixes_the_wrong_and_leaves_the_right_alone() -> None:
    client = RecordingClient({"lifeboat_titanic_registry": 1, "lifeboat_adult_registry": 4})
    changed = pools.ensure_pools(client, ["titanic", "adult", "churn"])
    assert changed == ["lifeboat_adult_registry", "lifeboat_churn_registry"]
    assert client.puts == [("lifeboat_adult_registry", 1), ("lifeboat_churn_registry", 1)]
    assert pools.ensure_pools(client, ["titanic", "adult", "churn"]) == []  # idempotent


def test_the_module_writes_the_pools_of_every_spec_for_airflow_pools_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("titanic", "adult"):
        (tmp_path / "data" / name).mkdir(parents=True)
        shutil.copy(REPO_ROOT / "data" / name / "dataset.yaml", tmp_path / "data" / name / "dataset.yaml")
    monkeypatch.setenv("LIFEBOAT_DATA_ROOT", str(tmp_path / "data"))
    out = tmp_path / "pools.json"
    assert pools.main([str(out)]) == 0
    assert json.loads(out.read_text()) == pools.pools_document(["adult", "titanic"])
    assert "2 registry pool(s)" in capsys.readouterr().out
