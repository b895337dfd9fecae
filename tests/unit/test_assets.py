"""Asset events for new data: what `lifeboat add-batch` tells Airflow (a recording client here; the real
REST API and the run it starts are proven in tests/orchestration/test_retrain_dag.py)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from lifeboat.orchestration import assets
from lifeboat.settings import Settings

pytestmark = pytest.mark.unit


class RecordingClient:
    def __init__(self, known: dict[str, int]) -> None:
        self.known = known
        self.events: list[tuple[int, dict[str, Any]]] = []

    def asset_id(self, name: str) -> int | None:
        return self.known.get(name)

    def create_asset_event(self, asset_id: int, extra: Mapping[str, Any]) -> dict[str, Any]:
        self.events.append((asset_id, dict(extra)))
        return {"id": 40 + len(self.events), "asset_id": asset_id, "extra": dict(extra)}


def test_the_names_and_uris_are_per_dataset_and_outside_any_filesystem() -> None:
    incoming = assets.incoming_asset("adult")
    assert (incoming.name, incoming.uri, incoming.group) == (
        "adult_incoming",
        "x-lifeboat://adult/incoming",
        "lifeboat",
    )
    champion = assets.champion_asset("adult")
    assert (champion.name, champion.uri) == ("adult_champion", "x-lifeboat://adult/champion")


def test_a_new_batch_is_one_event_on_the_datasets_incoming_asset_with_its_lineage() -> None:
    client = RecordingClient({"titanic_incoming": 3, "adult_incoming": 7})
    extra = {"dataset": "adult", "batch": "b.csv", "md5": "abc", "rows": 12}
    done = assets.announce_new_data(client, "adult", extra)
    assert client.events == [(7, extra)]
    assert done.event_id == 41
    assert done.message == "asset event 41 on adult_incoming: adult_retrain starts a run"


def test_an_asset_airflow_does_not_know_yet_records_nothing_and_says_what_happens_next() -> None:
    client = RecordingClient({"titanic_incoming": 3})
    done = assets.announce_new_data(client, "shop", {"rows": 1})
    assert client.events == []
    assert done.event_id is None
    assert "no asset shop_incoming yet" in done.message


def test_without_a_running_embedded_airflow_the_batch_is_kept_and_the_message_says_so(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "state")
    done = assets.announce_to_embedded_stack(settings, {"rows": 1})
    assert done.event_id is None
    assert done.message == "the embedded Airflow is not running: the next scheduled run uses the data"


def test_the_extra_names_the_batch_its_dvc_md5_and_rows(tmp_path: Path) -> None:
    batch = tmp_path / "batch-1.csv"
    batch.write_text("a,b\n1,2\n3,4\n")
    (tmp_path / "batch-1.csv.dvc").write_text(
        "outs:\n- md5: 0123456789abcdef0123456789abcdef\n  path: batch-1.csv\n"
    )
    assert assets.batch_extra("titanic", batch) == {
        "dataset": "titanic",
        "batch": "batch-1.csv",
        "md5": "0123456789abcdef0123456789abcdef",
        "rows": 2,
    }
