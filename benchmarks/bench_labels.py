"""Throughput of ground-truth label ingestion (``lifeboat.monitoring.feedback``), in labels per second.

Run: ``.venv/bin/python benchmarks/bench_labels.py [--predictions 100000] [--labels 50000] [--batch 5000]
[--rounds 5]``. A Titanic prediction log of ``--predictions`` rows with generated request ids (UUIDv7, as the
server writes them) is built once; each round starts from a copy of it and ingests ``--labels`` labels
(90 % logged ids, 10 % unknown) in requests of ``--batch``, four ways: the ingestion alone (labels already
parsed), the server's worker-thread path (a CSV body parsed, then ingested), the same labels sent again
(every one a duplicate), and the whole endpoint in-process (``POST /v1/datasets/titanic/feedback`` with JSON
bodies through FastAPI's TestClient: auth, body, parsing, ingestion, answer; no network). Prints the median
labels/s per case and the load average before and after; writes ``bench-results/labels.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lifeboat.dataset.spec import load_spec
from lifeboat.monitoring.feedback import LabelIn, ingest_labels
from lifeboat.monitoring.label_input import labels_from_csv
from lifeboat.monitoring.prediction_log import PredictionLog, log_columns
from serving.request_ids import new_id

REPO = Path(__file__).resolve().parents[1]
SPEC = load_spec(REPO / "data" / "titanic" / "dataset.yaml")
TARGET = 5000.0
TOKEN = "bench-labels-feedback-token-0123456789"


def load_average() -> str:
    """The first three fields of /proc/loadavg ('' where there is none)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return ""


def build_log(path: Path, count: int) -> list[str]:
    """A prediction log of ``count`` rows; their request ids."""
    ids = [new_id() for _ in range(count)]
    record = {
        "PassengerId": 1,
        "Pclass": 3,
        "Sex": "male",
        "Age": 30.0,
        "SibSp": 0,
        "Parch": 0,
        "Embarked": "S",
    }
    log = PredictionLog(path, max_rows=count, max_pending_rows=count, columns=log_columns(SPEC))
    for start in range(0, count, 1000):
        chunk = ids[start : start + 1000]
        log.append([record] * len(chunk), [0.5] * len(chunk), [1] * len(chunk), "1", request_ids=chunk)
    log.close(timeout=120)
    return ids


def app_client(state_dir: Path) -> Any:
    """An in-process prediction server without a registry (the feedback endpoint needs no model)."""
    import os
    import socket

    from fastapi.testclient import TestClient

    from lifeboat.settings import Settings
    from serving.app import create_app

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        nobody = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = Settings(
        state_dir=state_dir,
        mlflow_tracking_uri=nobody,
        feedback_token=TOKEN,
        registry_poll_seconds=0,
        serving_datasets="titanic",
    )
    return TestClient(create_app(settings))


def timed(run: Callable[[], Any]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """Build the log, run the rounds, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=int, default=100_000)
    parser.add_argument("--labels", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "labels.json")
    args = parser.parse_args(argv)

    rng = random.Random(42)
    load_before = load_average()
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder) / "base.sqlite"
        logged = build_log(base, args.predictions)
        known = rng.sample(logged, int(args.labels * 0.9))
        ids = known + [f"unknown-{i}" for i in range(args.labels - len(known))]
        rng.shuffle(ids)
        pairs = [(rid, rng.randint(0, 1)) for rid in ids]
        requests = [pairs[s : s + args.batch] for s in range(0, len(pairs), args.batch)]
        parsed = [[LabelIn(rid, label, i) for i, (rid, label) in enumerate(r)] for r in requests]
        bodies = ["request_id,label\n" + "".join(f"{rid},{label}\n" for rid, label in r) for r in requests]
        times: dict[str, list[float]] = {
            "ingest": [],
            "CSV parse + ingest": [],
            "resend (every label a duplicate)": [],
            "HTTP endpoint (JSON, in-process)": [],
        }
        json_bodies = [
            json.dumps({"labels": [{"request_id": rid, "label": label} for rid, label in r]}).encode()
            for r in requests
        ]
        state = Path(folder) / "state"
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        for round_ in range(args.rounds):
            path = Path(folder) / f"round-{round_}.sqlite"
            shutil.copyfile(base, path)
            if round_ % 2:  # alternate the order, so a busy minute slows both cases alike
                times["CSV parse + ingest"].append(
                    timed(lambda p=path: [ingest_labels(p, SPEC, labels_from_csv(b)) for b in bodies])
                )
                copy = Path(folder) / f"round-{round_}b.sqlite"
                shutil.copyfile(base, copy)
                times["ingest"].append(timed(lambda p=copy: [ingest_labels(p, SPEC, r) for r in parsed]))
            else:
                times["ingest"].append(timed(lambda p=path: [ingest_labels(p, SPEC, r) for r in parsed]))
                copy = Path(folder) / f"round-{round_}b.sqlite"
                shutil.copyfile(base, copy)
                times["CSV parse + ingest"].append(
                    timed(lambda p=copy: [ingest_labels(p, SPEC, labels_from_csv(b)) for b in bodies])
                )
            times["resend (every label a duplicate)"].append(
                timed(lambda p=path: [ingest_labels(p, SPEC, r) for r in parsed])
            )
            served_log = state / "titanic" / "predictions.sqlite"
            served_log.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(base, served_log)
            with app_client(state) as client:

                def post_all(client: Any = client) -> None:
                    for body in json_bodies:
                        answer = client.post("/v1/datasets/titanic/feedback", content=body, headers=headers)
                        answer.raise_for_status()

                times["HTTP endpoint (JSON, in-process)"].append(timed(post_all))
            served_log.unlink()
    load_after = load_average()

    rates = {case: args.labels / statistics.median(values) for case, values in times.items()}
    print(
        f"{args.labels:,} labels in requests of {args.batch:,} against a log of {args.predictions:,} "
        f"predictions (90 % known ids), median of {args.rounds} rounds; "
        f"load average before {load_before}, after {load_after}"
    )
    print()
    print("| case | labels/s (median) | min–max | target 5,000/s |")
    print("|---|---:|---:|---|")
    for case, values in times.items():
        spread = f"{args.labels / max(values):,.0f}–{args.labels / min(values):,.0f}"
        print(f"| {case} | {rates[case]:,.0f} | {spread} | {'met' if rates[case] >= TARGET else 'MISSED'} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "predictions": args.predictions,
                "labels": args.labels,
                "batch": args.batch,
                "rounds": args.rounds,
                "seconds": times,
                "labels_per_second": rates,
                "load_before": load_before,
                "load_after": load_after,
            },
            indent=2,
        )
    )
    return 0 if all(rate >= TARGET for rate in rates.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
