"""The closed loop on the real stack: served predictions, labels that prove them wrong sent back to the
server's feedback endpoint, and the retraining run that this starts by itself (the server records an event on
the incoming asset as its own Airflow user): its performance report flags the drop, an alert reaches the
webhook receiver, and the run retrains.

After tests/orchestration/test_retrain_dag.py (file order): the labels stay in the stack's prediction log,
and the runs of that file must not see them.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from lifeboat.monitoring.log_table import TABLE
from lifeboat.stack import embedded as stack
from tests.conftest import REPO_ROOT
from tests.orchestration.conftest import RETRAIN, LiveStack

pytestmark = pytest.mark.integration

ROWS = 250


def logged(log: Path, ids: list[str]) -> int:
    """How many of ``ids`` the server's prediction log holds (read as any reader would)."""
    if not log.is_file():
        return 0
    query = f"SELECT COUNT(*) FROM {TABLE} WHERE request_id IN ({','.join('?' * len(ids))})"
    with closing(sqlite3.connect(f"file:{log}?mode=ro", uri=True)) as connection:
        return int(connection.execute(query, ids).fetchone()[0])


def test_labels_proving_the_champion_wrong_start_a_run_that_alerts_and_retrains(
    live_stack: LiveStack, first_run: dict[str, Any]
) -> None:
    rows = pd.read_csv(REPO_ROOT / "data" / "titanic" / "raw" / "test.csv").head(ROWS)
    passengers = json.loads(rows.to_json(orient="records"))
    answer = httpx.post(
        f"{live_stack.urls['serving']}/predict/batch", json={"passengers": passengers}, timeout=60
    )
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    served = answer.json()["model_version"]
    ids = [p["request_id"] for p in predictions]
    log = live_stack.settings.prediction_log_path
    deadline = time.monotonic() + 30  # the server writes its log in the background
    while logged(log, ids) < ROWS:
        assert time.monotonic() < deadline, f"{logged(log, ids)} of {ROWS} predictions in {log} after 30 s"
        time.sleep(0.5)

    before = live_stack.run_ids(RETRAIN)
    token = stack.load_secrets(live_stack.paths)["feedback_token"]
    sent = httpx.post(
        f"{live_stack.urls['serving']}/v1/datasets/titanic/feedback",
        json={"labels": [{"request_id": p["request_id"], "label": 1 - p["survived"]} for p in predictions]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )  # every label contradicts its prediction
    assert sent.status_code == 200, sent.text
    counts = {"dataset": "titanic", "received": ROWS, "matched": ROWS, "unknown": 0, "duplicate": 0}
    assert sent.json() == counts

    run = live_stack.wait_for_new_run(RETRAIN, before, "the server's asset event for the labels")
    assert run["state"] == "success", run
    events = live_stack.client.request(
        "GET", f"/api/v2/dags/{RETRAIN}/dagRuns/{run['dag_run_id']}/upstreamAssetEvents"
    ).json()["asset_events"]
    extra = {
        "dataset": "titanic",
        "source": "feedback",
        "labels": ROWS,
        "from_rest_api": True,
    }  # Airflow's mark
    assert [(e["name"], e["extra"]) for e in events] == [("titanic_incoming", extra)]

    performance = live_stack.client.xcom(RETRAIN, run["dag_run_id"], "monitor_performance")
    assert performance["status"] == "degraded", performance
    assert performance["model_version"] == served
    assert performance["labelled_rows"] == ROWS
    assert performance["accuracy"] == 0.0
    page = Path(performance["html_path"])
    assert page.is_file()
    assert "Calibration" in page.read_text(encoding="utf-8")

    decision = live_stack.client.xcom(RETRAIN, run["dag_run_id"], "decide_training", key="decision")
    assert (decision["train"], decision["rule"]) == (True, "performance")
    assert "live accuracy 0.0000 over 250 labelled rows" in decision["reason"]
    tasks = {t.task_id: t.state for t in live_stack.client.task_states(RETRAIN, run["dag_run_id"])}
    assert tasks["train"] == "success"
    assert tasks["evaluate_gate"] == "success"

    received = [r["json"] or {} for r in live_stack.alerts.received]
    drops = [alert for alert in received if alert.get("kind") == "performance_drop"]
    assert [(d["dataset"], json.loads(d["figures"])["labelled_rows"]) for d in drops] == [("titanic", ROWS)]
    assert "live performance dropped: live accuracy 0.0000 over 250 labelled rows" in drops[0]["text"]
