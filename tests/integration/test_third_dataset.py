"""A third dataset from nothing, with no code change: a synthetic CSV -> ``lifeboat dataset init`` ->
``lifeboat train`` (preprocess, train, gate, promote) -> the prediction server -> predictions.

The data is made up in the test (a telecom churn table: numbers, categories, missing values, a yes/no label
and no id column), in a fresh git + DVC repository; training runs the real Spark jobs and the real MLflow
registry on SQLite; the server is the real app, in-process.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lifeboat.cli import main
from lifeboat.settings import Settings
from tests.support.dvc_repo import init_repo

pytestmark = pytest.mark.integration

ROWS = 2_000


def churn_frame(rows: int, seed: int) -> pd.DataFrame:
    """Customers whose cancelling depends (logistically, with noise) on tenure, fee, calls and contract."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, rows)
    fee = np.round(rng.uniform(15.0, 120.0, rows), 2)
    calls = rng.poisson(1.5, rows)
    contract = rng.choice(["monthly", "yearly", "two_year"], rows, p=[0.5, 0.3, 0.2])
    region = rng.choice(["north", "south", "east", "west"], rows)
    # strong enough a signal that a fair model clears the default gate floors (ROC-AUC 0.80, accuracy 0.75)
    score = -0.08 * tenure + 0.04 * fee + 1.0 * calls - 3.0 * (contract != "monthly") - 0.5
    cancelled = rng.random(rows) < 1 / (1 + np.exp(-score))
    fee_column = fee.astype(object)
    fee_column[::37] = None  # some fees unknown: the spec makes the column nullable and imputes it
    return pd.DataFrame(
        {
            "tenure_months": tenure,
            "monthly_fee": fee_column,
            "support_calls": calls,
            "contract": contract,
            "region": region,
            "cancelled": np.where(cancelled, "yes", "no"),
        }
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Settings]]:
    """A repository with the telco dataset initialised and trained once (the champion promoted)."""
    base = tmp_path_factory.mktemp("third")
    repo = init_repo(base / "repo")
    csv = base / "export" / "telco.csv"
    csv.parent.mkdir()
    churn_frame(ROWS, seed=5).to_csv(csv, index=False)
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.chdir(repo)
    for name in ("LIFEBOAT_DATA_ROOT", "LIFEBOAT_DATASET", "LIFEBOAT_MODEL_NAME", "LIFEBOAT_DATASET_SPEC"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LIFEBOAT_STATE_DIR", str(base / "state"))
    monkeypatch.setenv("LIFEBOAT_MODEL_FAMILIES", '["lr"]')
    monkeypatch.setenv("LIFEBOAT_CV_FOLDS", "3")
    from lifeboat.settings import get_settings, settings_for

    get_settings.cache_clear()
    settings_for.cache_clear()
    try:
        assert (
            main(
                ["dataset", "init", "telco", "--from", str(csv), "--label", "cancelled", "--positive", "yes"]
            )
            == 0
        )
        assert main(["train", "--dataset", "telco"]) == 0
        settings = Settings(dataset="telco", state_dir=base / "state", registry_poll_seconds=0)
        yield repo, settings
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        settings_for.cache_clear()


def test_the_new_dataset_trains_and_its_champion_records_the_spec(trained: tuple[Path, Settings]) -> None:
    from mlflow import MlflowClient

    from lifeboat.dataset.spec import load_spec

    repo, settings = trained
    spec = load_spec(repo / "data" / "telco" / "dataset.yaml")
    assert spec.id_column is None
    assert spec.label.column == "cancelled"
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    champion = client.get_model_version_by_alias("telco", "champion")
    assert str(champion.version) == "1"
    assert champion.tags["dataset"] == "telco"
    assert champion.tags["dataset_spec_fingerprint"] == spec.fingerprint()
    assert float(champion.tags["holdout_roc_auc"]) >= 0.8  # the default gate floor it passed
    assert champion.tags["gate.decision"] == "promote"


def test_the_server_answers_for_the_new_dataset(trained: tuple[Path, Settings]) -> None:
    from fastapi.testclient import TestClient

    from serving.app import create_app

    repo, settings = trained
    records = churn_frame(20, seed=11).drop(columns=["cancelled"])
    records = records.astype(object).where(records.notna(), None).to_dict("records")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.chdir(repo)
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            one = client.post("/v1/datasets/telco/predict", json=records[0])
            batch = client.post("/v1/datasets/telco/predict/batch", json={"records": records})
            bad = client.post("/v1/datasets/telco/predict", json={**records[0], "contract": "weekly"})
    finally:
        monkeypatch.undo()
    assert one.status_code == 200, one.text
    (answer,) = one.json()["predictions"]
    assert set(answer) == {"prediction", "probability", "drift_alerts", "model_version", "request_id"}
    assert answer["model_version"] == "1"
    assert answer["prediction"] == (1 if answer["probability"] >= 0.5 else 0)
    assert batch.status_code == 200, batch.text
    assert batch.json()["count"] == 20
    assert batch.json()["predictions"][0]["probability"] == answer["probability"]
    assert bad.status_code == 422
    assert "contract" in bad.text
