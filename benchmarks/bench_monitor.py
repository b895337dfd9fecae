"""Cost of live performance monitoring at ``--rows`` labelled predictions (default 100,000).

Run: ``.venv/bin/python benchmarks/bench_monitor.py [--rows 100000] [--rounds 5]``. A Titanic prediction
log of ``--rows`` rows, every one labelled, is built once. Each round times:

* ``read_window`` - the baseline: the newest ``--rows`` rows of the log as a frame (what a drift report of
  the request window reads);
* ``join`` - :func:`lifeboat.monitoring.live.labelled_predictions` (the same rows joined with their labels);
* ``figures`` - the join plus :func:`~lifeboat.monitoring.live.live_performance` (what one scrape of the
  server's live gauges costs when its cache is cold);
* ``report`` - :func:`lifeboat.monitoring.performance.performance_report` on the joined frame (Evidently's
  classification report, the calibration table, the files and the index).

Prints the median seconds of each and its ratio to the baseline, with the load average before and after;
writes ``bench-results/monitor.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lifeboat.dataset.models import PerformanceRule
from lifeboat.dataset.spec import load_spec
from lifeboat.monitoring.feedback import LabelIn, ingest_labels
from lifeboat.monitoring.live import labelled_predictions, live_performance
from lifeboat.monitoring.log_table import read_window
from lifeboat.monitoring.performance import performance_report
from lifeboat.monitoring.prediction_log import PredictionLog, log_columns
from serving.request_ids import new_id

REPO = Path(__file__).resolve().parents[1]
SPEC = load_spec(REPO / "data" / "titanic" / "dataset.yaml")
HOLDOUT = {"holdout_accuracy": 0.83, "holdout_roc_auc": 0.87}


def load_average() -> str:
    """The first three fields of /proc/loadavg ('' where there is none)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return ""


def build(path: Path, rows: int, seed: int = 0) -> None:
    """A log of ``rows`` scored passengers, every one with a label (80 % agreeing with the prediction)."""
    rng = random.Random(seed)
    ids = [new_id() for _ in range(rows)]
    log = PredictionLog(path, max_rows=rows, max_pending_rows=rows, columns=log_columns(SPEC))
    labels = []
    for start in range(0, rows, 1000):
        chunk = ids[start : start + 1000]
        probabilities = [rng.random() for _ in chunk]
        predictions = [int(p >= 0.5) for p in probabilities]
        records = [
            {"PassengerId": start + i, "Pclass": 1 + i % 3, "Sex": "male" if i % 2 else "female", "Age": 30.0}
            for i in range(len(chunk))
        ]
        log.append(records, probabilities, predictions, "1", request_ids=chunk)
        labels += [
            LabelIn(rid, p if rng.random() < 0.8 else 1 - p, n)
            for n, (rid, p) in enumerate(zip(chunk, predictions, strict=False))
        ]
    log.close()
    for start in range(0, rows, 50_000):
        ingest_labels(path, SPEC, labels[start : start + 50_000])


def timed(run: Callable[[], Any]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "monitor.json")
    args = parser.parse_args(argv)
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as tmp:
        path = Path(tmp) / "predictions.sqlite"
        build(path, args.rows)
        frame = labelled_predictions(path)
        assert len(frame) == args.rows, f"{len(frame)} joined rows, expected {args.rows}"
        cases: dict[str, Callable[[], Any]] = {
            "read_window": lambda: read_window(path, last_n=args.rows),
            "join": lambda: labelled_predictions(path, model_version="1", last_n=args.rows),
            "figures": lambda: live_performance(
                labelled_predictions(path, model_version="1", last_n=args.rows)
            ),
            "report": lambda: performance_report(
                frame,
                Path(tmp) / "reports",
                "bench",
                dataset="titanic",
                holdout=HOLDOUT,
                rule=PerformanceRule(),
                model_version="1",
                window="bench",
            ),
        }
        seconds: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, run in cases.items():  # interleaved, so load changes hit every case alike
                seconds[name].append(timed(run))
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    base = medians["read_window"]
    load_after = load_average()
    print(
        f"live performance monitoring, {args.rows} labelled rows, {args.rounds} rounds "
        f"(load {load_before} -> {load_after})"
    )
    print(f"  {'case':<12} {'median s':>9} {'x read_window':>14}")
    for name, median in medians.items():
        print(f"  {name:<12} {median:>9.3f} {median / base:>14.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "rows": args.rows,
                "rounds": args.rounds,
                "load_before": load_before,
                "load_after": load_after,
                "seconds": seconds,
                "median_seconds": medians,
                "ratio_to_read_window": {n: m / base for n, m in medians.items()},
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
