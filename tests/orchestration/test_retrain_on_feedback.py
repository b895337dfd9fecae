"""The closed loop on the real stack: served predictions, labels that prove them wrong sent back with
`lifeboat labels add`, and the retraining run that this starts by itself (an event on the incoming asset):
its performance report flags the drop, an alert reaches the webhook receiver, and the run retrains.

After tests/orchestration/test_retrain_dag.py (file order): the labels stay in the stack's prediction log,
and the runs of that file must not see them.
"""

from __future__ import annotations

import csv
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from tests.conftest import REPO_ROOT
from tests.orchestration.conftest import RETRAIN, LiveStack

pytestmark = pytest.mark.integration

ROWS = 250


def test_labels_proving_the_champion_wrong_start_a_run_that_alerts_and_retrains(
    live_stack: LiveStack, first_run: dict[str, Any], tmp_path: Path
) -> None:
    rows = pd.read_csv(REPO_ROOT / "data" / "titanic" / "raw" / "test.csv").head(ROWS)
    passengers = json.loads(rows.to_json(orient="records"))
    answer = httpx.post(
        f"{live_stack.urls['serving']}/predict/batch", json={"passengers": passengers}, timeout=60
    )
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    served = answer.json()["model_version"]
    labels = tmp_path / "labels.csv"
    with labels.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["request_id", "label"])
        writer.writerows([p["request_id"], 1 - p["survived"]] for p in predictions)  # every one wrong

    before = live_stack.run_ids(RETRAIN)
    deadline = time.monotonic() + 30  # the server writes its log in the background
    while True:
        added = live_stack.lifeboat("labels", "add", str(labels))
        assert added.returncode == 0, added.stderr[-3000:]
        if f"{ROWS} matched" in added.stdout or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert f"{ROWS} label(s) for dataset titanic: {ROWS} matched (stored)" in added.stdout, added.stdout
    assert re.search(r"asset event \d+ on titanic_incoming: titanic_retrain starts a run", added.stdout), (
        added.stdout
    )

    run = live_stack.wait_for_new_run(RETRAIN, before, "the labels' asset event")
    assert run["state"] == "success", run

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
