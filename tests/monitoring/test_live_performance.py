"""Live performance with the session's real champion: predictions served in-process, labels sent back
through the feedback endpoint, then the server's live gauges, `lifeboat monitor` (report, verdict, exit
code) and `lifeboat labels export` (the labelled rows as a new DVC batch, never exported twice)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from lifeboat import cli
from lifeboat.dataset.spec import load_spec
from lifeboat.dataset.validation import validate_csv
from lifeboat.monitoring.drift_index import read_index
from lifeboat.monitoring.labelled_batch import export_labelled_batch
from lifeboat.monitoring.live import labelled_predictions
from lifeboat.monitoring.performance import monitor
from tests.conftest import REPO_ROOT
from tests.serving.serving_support import StoreRef
from tests.support.dvc_repo import init_repo

pytestmark = pytest.mark.integration

TOKEN = "live-performance-tests-token-0123"
TITANIC = load_spec(REPO_ROOT / "data" / "titanic" / "dataset.yaml")


def gauge(metrics: str, name: str) -> float | None:
    found = re.search(rf'^{name}\{{dataset="titanic"\}} (\S+)$', metrics, re.MULTILINE)
    return float(found.group(1)) if found else None


@pytest.fixture
def labelled(
    make_client: Callable[..., Any], champion_store: StoreRef, test_rows: list[dict[str, Any]], tmp_path: Path
) -> dict[str, Any]:
    """300 Kaggle test rows served by the champion; labels sent back: the first 150 agree with the
    prediction, the other 150 contradict it (live accuracy exactly 0.5)."""
    repo = init_repo(tmp_path / "repo")
    app = make_client(
        champion_store.tracking_uri,
        state_dir=tmp_path / "state",
        feedback_token=TOKEN,
        incoming_dir=repo / "incoming",
    )
    answer = app.post("/v1/datasets/titanic/predict/batch", json={"records": test_rows[:300]})
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    serving = app.app.state.serving
    assert serving.prediction_log.flush()
    assert gauge(app.get("/metrics").text, "lifeboat_labelled_rows") == 0
    labels = [
        {"request_id": p["request_id"], "label": p["survived"] if i < 150 else 1 - p["survived"]}
        for i, p in enumerate(predictions)
    ]
    sent = app.post(
        "/v1/datasets/titanic/feedback", json={"labels": labels}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert sent.json()["matched"] == 300
    return {
        "app": app,
        "settings": serving.datasets["titanic"].settings,
        "predictions": predictions,
        "labels": labels,
        "repo": repo,
    }


def test_the_server_exports_live_gauges_of_the_served_version(labelled: dict[str, Any]) -> None:
    metrics = labelled["app"].get("/metrics").text
    joined = labelled_predictions(labelled["settings"].prediction_log_path)  # probabilities unrounded
    target, scores = joined["target"].tolist(), joined["probability"].tolist()
    assert gauge(metrics, "lifeboat_labelled_rows") == 300
    assert gauge(metrics, "lifeboat_live_accuracy") == 0.5
    assert gauge(metrics, "lifeboat_live_roc_auc") == pytest.approx(roc_auc_score(target, scores), abs=1e-6)


def test_monitor_reports_the_drop_beside_the_holdout_and_the_cli_fails_on_it(
    labelled: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = labelled["settings"]
    summary = monitor(settings, name="perf-test")
    assert summary.status == "degraded"
    assert summary.model_version == labelled["predictions"][0]["model_version"]
    assert summary.live.labelled_rows == 300
    assert summary.live.accuracy == 0.5
    holdout = summary.holdout["holdout_accuracy"]
    assert summary.drop == pytest.approx(holdout - 0.5, abs=1e-6)
    assert f"drop {holdout - 0.5:.4f} > max_drop 0.05" in summary.message
    page = Path(summary.html_path).read_text(encoding="utf-8")
    assert 'id="lifeboat-live"' in page
    assert "Calibration" in page
    assert "ROC AUC" in page
    assert "plotly" in page
    stored = json.loads(Path(summary.json_path).read_text())
    assert stored["status"] == "degraded"
    assert sum(b["rows"] for b in stored["live"]["calibration"]) == 300
    entries = {e["name"]: e for e in read_index(settings.resolved_reports_dir)}
    assert entries["perf-test"]["kind"] == "performance"
    assert entries["perf-test"]["labelled_rows"] == 300

    for key, value in {
        "LIFEBOAT_STATE_DIR": str(settings.state_dir),
        "LIFEBOAT_MLFLOW_TRACKING_URI": settings.tracking_uri,
        "LIFEBOAT_MODEL_NAME": settings.model_name,
    }.items():
        monkeypatch.setenv(key, value)
    from lifeboat.settings import get_settings

    get_settings.cache_clear()
    try:
        code = cli.main(["monitor", "--name", "perf-cli", "--fail-on-degraded"])
    finally:
        get_settings.cache_clear()
    out = capsys.readouterr().out
    assert code == 3, out
    assert re.search(rf"accuracy\s+0\.5000\s+{holdout:.4f}", out), out
    assert "verdict: degraded - live accuracy 0.5000 over 300 labelled rows" in out


def test_labelled_rows_become_one_valid_dvc_batch_with_fresh_ids(
    labelled: dict[str, Any], test_rows: list[dict[str, Any]]
) -> None:
    settings = labelled["settings"]
    assert export_labelled_batch(settings, min_rows=301).path is None  # 300 waiting < 301
    exported = export_labelled_batch(settings, min_rows=100, name="labelled")
    assert exported.rows == 300
    batch = exported.path
    assert batch is not None
    assert batch.name == "labelled.csv"
    assert (batch.parent / "labelled.csv.dvc").is_file()
    assert validate_csv(TITANIC, batch, require_label=True).rows == 300
    frame = pd.read_csv(batch)
    train = pd.read_csv(settings.raw_data)
    assert frame["PassengerId"].min() == train["PassengerId"].max() + 1
    assert frame["Survived"].tolist() == [label["label"] for label in labelled["labels"]]
    served = pd.DataFrame(test_rows[:300])
    assert frame["Sex"].tolist() == served["Sex"].tolist()  # the features as they were served
    assert frame["Age"].fillna(-1).tolist() == served["Age"].fillna(-1).tolist()
    assert export_labelled_batch(settings, min_rows=1).rows == 0  # nothing is exported twice
