"""Benchmark of lifeboat's drift report: time for 1k, 100k and 1M current rows, and what sampling costs.

Run: ``.venv/bin/python benchmarks/bench_drift.py`` (``make bench``). Prints a markdown table and writes
``bench-results/drift.json``.

* Timing: the whole :func:`lifeboat.monitoring.drift.drift_report` (analysis frame, Evidently, HTML, JSON,
index) against
  the 891-row training reference, median of N rounds, with the default sampling (``drift_sample_rows``) and
  without any (``drift_sample_rows=0``). Building the batch is not timed; importing Evidently (once per
  process, 10-20 s on a busy 2-core machine) is measured separately.
* Sampling effect: on 1M-row batches (no drift and each drift spec) the per-column scores of the full data are
  compared with those of several deterministic samples of ``drift_sample_rows`` rows: largest score difference
  and whether any verdict changed.

Targets (the issue): <= 5 s at 100k rows, <= 30 s at 1M rows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from lifeboat.data.simulate import DriftSpec, make_batch
from lifeboat.monitoring.drift import drift_report, score_columns
from lifeboat.monitoring.drift_frames import analysis_frame, sample_rows
from lifeboat.monitoring.drift_plan import plan_of
from lifeboat.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
TRAIN_CSV = REPO_ROOT / "data" / "titanic" / "raw" / "train.csv"
DEFAULT_OUTPUT = REPO_ROOT / "bench-results" / "drift.json"
SIZES = (1_000, 100_000, 1_000_000)
TARGETS = {100_000: 5.0, 1_000_000: 30.0}
SPECS = (None, "Age+15", "Fare*3", "Sex=male:0.8", "Pclass=3:0.7", "missing=Age:0.3")
SAMPLE_SEEDS = (42, 1, 2, 3, 4)
START_ID = 10_000


def _time_reports(
    train: pd.DataFrame, rows: int, settings: Settings, rounds: int, out: Path
) -> dict[str, Any]:
    batch = make_batch(train, rows, None, seed=rows, start_id=START_ID)
    seconds = []
    summary = None
    for round_ in range(rounds):
        started = time.perf_counter()
        summary = drift_report(
            train,
            batch,
            out,
            f"bench-{rows}-{settings.drift_sample_rows}-{round_}",
            settings,
            current_source=f"make_batch({rows})",
        )
        seconds.append(time.perf_counter() - started)
    assert summary is not None
    return {
        "rows": rows,
        "sample_rows": settings.drift_sample_rows,
        "analysed_rows": summary.analysed_rows,
        "rounds": rounds,
        "seconds": seconds,
        "median_seconds": statistics.median(seconds),
        "status": summary.status,
        "html_bytes": Path(summary.html_path).stat().st_size,
    }


def _sampling_effect(train: pd.DataFrame, rows: int, settings: Settings) -> list[dict[str, Any]]:
    plan = plan_of(settings)
    reference = analysis_frame(train, "reference", plan)
    results = []
    for text in SPECS:
        batch = make_batch(train, rows, DriftSpec.parse(text) if text else None, seed=7, start_id=START_ID)
        full = score_columns(reference, analysis_frame(batch, "current", plan), settings, plan)
        worst = 0.0
        changed: set[str] = set()
        for seed in SAMPLE_SEEDS:
            sample = sample_rows(batch, settings.drift_sample_rows, seed)
            sampled = score_columns(reference, analysis_frame(sample, "current", plan), settings, plan)
            for column in plan.analysed:
                a, b = full[column].score, sampled[column].score
                if a is not None and b is not None:
                    worst = max(worst, abs(a - b))
                if full[column].drifted != sampled[column].drifted:
                    changed.add(column)
        results.append(
            {
                "spec": text or "none",
                "rows": rows,
                "sample_rows": settings.drift_sample_rows,
                "samples": len(SAMPLE_SEEDS),
                "drifted_full": [c for c, v in full.items() if v.drifted],
                "max_abs_score_diff": worst,
                "verdict_changed": sorted(changed),
            }
        )
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the markdown tables; write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per size (median reported)")
    parser.add_argument("--rounds-1m-full", type=int, default=1, help="rounds for 1M rows without sampling")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--skip-sampling-effect", action="store_true")
    args = parser.parse_args(argv)

    train = pd.read_csv(TRAIN_CSV)
    default = Settings()
    started = time.perf_counter()
    import evidently.presets  # noqa: F401  (the one-off import cost is reported on its own)

    import_seconds = time.perf_counter() - started
    timings = []
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        out = Path(tmp)
        # Warm-up: the first report of a process pays for lazy imports inside Evidently and plotly.
        drift_report(train, make_batch(train, 1000, None, seed=0, start_id=START_ID), out, "warm-up", default)
        for rows in args.sizes:
            for settings in (default, Settings(drift_sample_rows=0)):
                rounds = (
                    args.rounds_1m_full
                    if rows >= 1_000_000 and settings.drift_sample_rows == 0
                    else args.rounds
                )
                result = _time_reports(train, rows, settings, rounds, out)
                timings.append(result)
                print(
                    f"  {rows:>9,} rows, sample_rows={settings.drift_sample_rows}: "
                    f"{result['median_seconds']:.2f} s",
                    file=sys.stderr,
                    flush=True,
                )
    effect = [] if args.skip_sampling_effect else _sampling_effect(train, max(args.sizes), default)

    print(
        "\n## Drift report time (reference 891 rows; median of rounds; "
        f"Evidently import {import_seconds:.1f} s "
        "not included)\n"
    )
    print("| current rows | sampling | rows analysed | rounds | median s | target s | status |")
    print("|---:|---|---:|---:|---:|---:|---|")
    for r in timings:
        sampling = f"{r['sample_rows']:,} rows" if r["sample_rows"] else "off"
        target = TARGETS.get(r["rows"])
        print(
            f"| {r['rows']:,} | {sampling} | {r['analysed_rows']:,} | {r['rounds']} | "
            f"{r['median_seconds']:.2f} | "
            f"{target if target else '-'} | {r['status']} |"
        )
    if effect:
        print(
            f"\n## Sampling effect ({effect[0]['rows']:,} rows vs {effect[0]['samples']} samples of "
            f"{effect[0]['sample_rows']:,})\n"
        )
        print("| spec | drifted (full data) | max abs score diff | verdict changed |")
        print("|---|---|---:|---|")
        for e in effect:
            print(
                f"| {e['spec']} | {', '.join(e['drifted_full']) or '-'} | {e['max_abs_score_diff']:.4f} | "
                f"{', '.join(e['verdict_changed']) or 'no'} |"
            )

    args.output.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "drift_report",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "settings": {
            k: getattr(default, k)
            for k in (
                "drift_sample_rows",
                "drift_num_method",
                "drift_cat_method",
                "drift_num_threshold",
                "drift_cat_threshold",
            )
        },
        "evidently_import_seconds": import_seconds,
        "targets_seconds": {str(k): v for k, v in TARGETS.items()},
        "timings": timings,
        "sampling_effect": effect,
    }
    args.output.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
