"""Fixtures of the proof tests (issue #7, the prediction-server part).

The champion, the store copies and the in-process apps are the serving tests' fixtures
(tests/support/serving_fixtures.py, loaded for every folder by tests/conftest.py): one session trains one
champion whichever folders run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serving.serving_support import LiveServer, StoreRef, live_server, serving_settings


@pytest.fixture(scope="session", autouse=True)
def _hypothesis_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Hypothesis (under schemathesis) keeps its files in a temporary folder, not in the repository."""
    from hypothesis.configuration import set_hypothesis_home_dir

    home = tmp_path_factory.mktemp("hypothesis")
    set_hypothesis_home_dir(home)
    yield home
    set_hypothesis_home_dir(None)


@pytest.fixture(scope="session")
def live_champion(champion_store: StoreRef, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One uvicorn worker serving the shared champion (read-only tests: fuzzing, hostile payloads)."""
    settings = serving_settings(tmp_path_factory.mktemp("live-champion"), champion_store.tracking_uri)
    with live_server(settings) as server:
        yield server
