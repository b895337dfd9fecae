"""Promote, reject and roll back with MLflow's backend store on PostgreSQL (the production configuration).

Needs LIFEBOAT_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1:5432/postgres): a fresh, uniquely
named database is created there for the module and dropped at the end. Artifacts go to a temporary folder
through the experiment's artifact location.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pandas as pd
import pytest
from mlflow import MlflowClient

from lifeboat.registry.promotion import promote_if_better, rollback
from lifeboat.registry.store import CHAMPION, PREVIOUS_CHAMPION, version_by_alias
from lifeboat.registry.summary import model_summary
from lifeboat.settings import Settings
from tests.support.models import mlflow_store, register_sklearn_version, split_by_passenger_id

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture(scope="module")
def postgres_database() -> Iterator[str]:
    """The URL of a new, empty database on the test server; dropped (connections closed) afterwards."""
    import psycopg2
    from psycopg2 import sql

    server_url = os.environ["LIFEBOAT_TEST_POSTGRES_URL"]
    name = f"lifeboat_registry_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(server_url)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        yield urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    finally:
        with admin.cursor() as cursor:
            # FORCE (PostgreSQL 13+) closes MLflow's pooled connections.
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


@pytest.fixture(scope="module")
def settings(postgres_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings whose tracking and registry store is the fresh PostgreSQL database."""
    state = tmp_path_factory.mktemp("registry-postgres")
    settings = Settings(state_dir=state, mlflow_tracking_uri=postgres_database, experiment_name="gate-pg")
    with mlflow_store(settings):
        yield settings


def alias(model_name: str, name: str) -> str | None:
    found = version_by_alias(model_name, name)
    return None if found is None else str(found.version)


def test_promote_reject_and_roll_back_on_postgres(settings: Settings, raw_train_csv: Path) -> None:
    name = "gate-postgres"
    train, holdout = split_by_passenger_id(pd.read_csv(raw_train_csv))
    client = MlflowClient()
    database = str(settings.mlflow_tracking_uri).rsplit("/", 1)[-1]
    assert client.tracking_uri.startswith("postgresql")
    assert client.tracking_uri.endswith(f"/{database}")

    def register(noise: float) -> str:
        return register_sklearn_version(name, train, noise=noise, seed=0, parity_rows=holdout)

    # First run: the medium model passes the floors and becomes champion.
    v1 = register(0.5)
    first = promote_if_better(name, v1, holdout, settings)
    assert first.passed, first.reasons
    assert alias(name, CHAMPION) == v1

    # A bad challenger is rejected; the champion stays; the decision is recorded on the bad version.
    v2 = register(0.9)
    bad = promote_if_better(name, v2, holdout, settings)
    assert not bad.passed
    assert alias(name, CHAMPION) == v1
    v2_tags = client.get_model_version(name, v2).tags
    assert v2_tags["gate.decision"] == "reject"
    assert json.loads(v2_tags["gate.reasons"]) == bad.reasons
    assert float(v2_tags["gate.champion.roc_auc"]) == pytest.approx(first.challenger["roc_auc"], abs=1e-12)

    # A better challenger is promoted; the old champion becomes previous_champion.
    v3 = register(0.0)
    better = promote_if_better(name, v3, holdout, settings)
    assert better.passed, better.reasons
    assert better.deltas["roc_auc"] >= settings.gate_min_improvement
    assert (alias(name, CHAMPION), alias(name, PREVIOUS_CHAMPION)) == (v3, v1)
    assert "promoted_at" in client.get_model_version(name, v3).tags

    # Rollback swaps them back and records who and why on both versions.
    assert rollback(name, reason="postgres drill", actor="pytest") == (v3, v1)
    assert (alias(name, CHAMPION), alias(name, PREVIOUS_CHAMPION)) == (v1, v3)
    for version in (v1, v3):
        tags = client.get_model_version(name, version).tags
        assert (tags["rollback.by"], tags["rollback.reason"]) == ("pytest", "postgres drill")

    summary = model_summary(name)
    assert [v["version"] for v in summary["versions"]] == [v3, v2, v1]
    assert summary["versions"][1]["gate_decision"] == "reject"
    assert summary[CHAMPION]["version"] == v1
