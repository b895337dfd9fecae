"""Benchmark of one retraining run (preprocess + train + gate) at 891, 100k and 1M rows, broken down by step.

Run: ``.venv/bin/python benchmarks/bench_training.py`` (``make bench-training``; part of ``make bench``).
``--sizes 891,100000`` picks the sizes. Prints markdown tables and writes ``bench-results/training.json``;
each job's own output goes to ``bench-results/training-logs/<rows>-<round>.log``.

**Data.** 891 rows is Kaggle's real ``data/titanic/raw/train.csv``, unchanged. Larger sizes are drawn from it
by
:func:`synthetic_passengers`:

* rows are drawn uniformly **with replacement** from the 891 real passengers
  (:func:`lifeboat.data.simulate.make_batch`, no drift spec, seeded), so every column's distribution and the
  joint
  distribution of features and label are those of the training data; each row keeps its own ``Survived``;
* every row gets a **unique PassengerId** (1..N). Preprocessing de-duplicates by PassengerId (one row per id,
  the latest file wins; exact duplicates are the special case of that), so with unique ids no row is dropped
  and the split (a hash of PassengerId) sends ~20 % of the rows to the holdout;
* numeric **jitter** so that 1M rows are not 1,100 copies of 891 rows: ``Age`` (when present) moves by a
  uniform ±0.5 year, ``Fare`` is scaled by a uniform 0.98-1.02; both are rounded (2 and 4 decimals) and
  clipped to the schema's ranges. Missing values stay missing, categorical columns are untouched.

**What runs** is the real pipeline, the same functions as ``lifeboat train``
(:mod:`lifeboat.orchestration.pipeline`):
``spark-submit jobs/preprocess.py``, ``spark-submit jobs/train.py``, then the gate + promotion in-process.
Every round uses a fresh state folder (its own MLflow SQLite store and artifacts), so every run is a first
run (no champion: floors + parity only) and nothing is shared between rounds. The settings are lifeboat's
defaults unless ``LIFEBOAT_*`` variables say otherwise (they are recorded in the JSON).

**Timing.** Wall time of each step as the caller sees it (spark-submit and JVM start included), plus the
jobs' own breakdowns: ``durations_seconds`` of the preprocess summary (validation, read, dedup, split, spec,
encode + write) and of ``train_summary.json`` (the ``step X took N s`` lines of
:mod:`lifeboat.training.train`:
load, CV per family, refit, holdout scoring, plots, ONNX export, parity, model logging, registration).
Rounds: the median of 3 for sizes below 1M and 1 round at 1M (a round there takes long on a 2-core machine,
and its spread is dominated by the machine's other load, recorded with each round as load averages).

Targets (issue #7): 1M rows end to end <= 15 minutes on a 2-core machine; cost growing no worse than linearly
from 100k to 1M (growth factor <= 10x). Nothing is asserted: the targets are reported as met or not.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
TRAIN_CSV = REPO_ROOT / "data" / "titanic" / "raw" / "train.csv"
DEFAULT_OUTPUT = REPO_ROOT / "bench-results" / "training.json"
DEFAULT_LOGS = REPO_ROOT / "bench-results" / "training-logs"
SIZES = (891, 100_000, 1_000_000)
TARGET_SECONDS = 15 * 60.0
TARGET_GROWTH = 10.0
LARGE_ROWS = 1_000_000
SEED = 2024
AGE_JITTER_YEARS = 0.5
FARE_JITTER_FRACTION = 0.02
#: The LIFEBOAT_* settings that change what a run does; recorded in the JSON.
RECORDED_SETTINGS = (
    "cv_folds",
    "model_families",
    "cv_sample_rows",
    "spark_master",
    "spark_driver_memory",
    "holdout_percent",
    "seed",
)


# --- Data ---------------------------------------------------------------------------------------------------


def synthetic_passengers(train: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """``rows`` passengers drawn with replacement from ``train``, unique ids 1..rows, jittered Age and Fare.

    See the module docstring. Same ``train``, ``rows`` and ``seed`` give the same frame.
    """
    from lifeboat.data.simulate import make_batch
    from lifeboat.dataset.schema import BY_NAME, ID_COLUMN

    batch = make_batch(train, rows, None, seed=seed, start_id=1)
    rng = np.random.default_rng(seed + 1)
    age_spec, fare_spec = BY_NAME["Age"], BY_NAME["Fare"]
    age = pd.to_numeric(batch["Age"], errors="coerce").to_numpy(dtype=np.float64)
    age = age + rng.uniform(-AGE_JITTER_YEARS, AGE_JITTER_YEARS, rows)
    batch["Age"] = np.round(np.clip(age, age_spec.minimum, age_spec.maximum), 2)
    fare = pd.to_numeric(batch["Fare"], errors="coerce").to_numpy(dtype=np.float64)
    fare = fare * rng.uniform(1 - FARE_JITTER_FRACTION, 1 + FARE_JITTER_FRACTION, rows)
    batch["Fare"] = np.round(np.clip(fare, fare_spec.minimum, fare_spec.maximum), 4)
    assert batch[ID_COLUMN].is_unique
    return batch


def dataset(rows: int, folder: Path) -> Path:
    """The CSV of ``rows`` passengers: the real file for its own size, else synthetic (written once)."""
    from lifeboat.data.simulate import write_batch

    train = pd.read_csv(TRAIN_CSV)
    if rows == len(train):
        return TRAIN_CSV
    path = folder / f"passengers-{rows}.csv"
    if not path.exists():
        started = time.perf_counter()
        write_batch(synthetic_passengers(train, rows, SEED + rows), path)
        log(f"generated {rows:,} rows in {time.perf_counter() - started:.1f} s -> {path}")
    return path


# --- Running the pipeline -----------------------------------------------------------------------------------


def log(message: str) -> None:
    """Progress on stderr (stdout carries the tables)."""
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def lifeboat_env(state: Path, raw: Path, incoming: Path) -> Iterator[Any]:
    """Point lifeboat's settings (this process and the spark-submit children) at one round's state folder."""
    from lifeboat.settings import get_settings

    values = {
        "LIFEBOAT_STATE_DIR": str(state),
        "LIFEBOAT_RAW_DATA": str(raw),
        "LIFEBOAT_INCOMING_DIR": str(incoming),
    }
    removed = ("MLFLOW_TRACKING_URI", "LIFEBOAT_MLFLOW_TRACKING_URI")
    saved = {k: os.environ.get(k) for k in (*values, *removed)}
    os.environ.update(values)
    for key in removed:
        os.environ.pop(key, None)
    get_settings.cache_clear()
    try:
        yield get_settings()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and of its finished children (the spark-submit jobs)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(step: str, walls: dict[str, float], cpus: dict[str, float], action: Any, *args: Any) -> Any:
    """Call ``action(*args)``; record its wall time and CPU time (process + children) under ``step``."""
    started, cpu_started = time.perf_counter(), cpu_seconds()
    try:
        return action(*args)
    finally:
        walls[step] = round(time.perf_counter() - started, 2)
        cpus[step] = round(cpu_seconds() - cpu_started, 2)
        log(f"  {step}: {walls[step]:.1f} s wall, {cpus[step]:.1f} s CPU")


def run_round(rows: int, csv: Path, workdir: Path, round_: int, logs: Path) -> dict[str, Any]:
    """One retraining run on ``csv`` in a fresh state folder: preprocess, train, gate; timed by step."""
    from lifeboat.orchestration import pipeline

    base = workdir / f"{rows}-{round_}"
    incoming = base / "incoming"
    incoming.mkdir(parents=True)
    run_id = f"bench__{rows}_{round_}"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{rows}-{round_}.log"
    walls: dict[str, float] = {}
    cpus: dict[str, float] = {}
    load_before = os.getloadavg()
    with (
        lifeboat_env(base / "state", csv, incoming) as settings,
        log_path.open("w") as job_log,
        contextlib.redirect_stdout(job_log),
    ):
        used = {name: getattr(settings, name, None) for name in RECORDED_SETTINGS}
        timed("preprocess", walls, cpus, pipeline.preprocess, settings, run_id)
        train_summary = timed("train", walls, cpus, pipeline.train, settings, run_id)
        gate = timed("gate", walls, cpus, pipeline.gate_and_promote, settings, run_id)
        preprocess_summary = json.loads(
            (pipeline.run_dir(settings, run_id) / "preprocess" / "summary.json").read_text()
        )
    walls["total"] = round(walls["preprocess"] + walls["train"] + walls["gate"], 2)
    cpus["total"] = round(cpus["preprocess"] + cpus["train"] + cpus["gate"], 2)
    load_after = os.getloadavg()
    shutil.rmtree(base, ignore_errors=True)
    return {
        "round": round_,
        "wall_seconds": walls,
        "cpu_seconds": cpus,
        "preprocess_steps": preprocess_summary.get("durations_seconds", {}),
        "preprocess_in_job_seconds": preprocess_summary.get("duration_seconds"),
        "train_steps": train_summary.durations_seconds,
        "rows_in": preprocess_summary["rows_in"],
        "rows_out": preprocess_summary["rows_out"],
        "train_rows": preprocess_summary["train"]["rows"],
        "holdout_rows": preprocess_summary["holdout"]["rows"],
        "family": train_summary.family,
        "params": train_summary.params,
        "cv": train_summary.cv,
        "cv_by_family": {
            f: {k: v[k] for k in ("cv_roc_auc", "cv_accuracy")} for f, v in train_summary.cv_by_family.items()
        },
        "cv_sample": train_summary.cv_sample,
        "holdout": train_summary.holdout,
        "parity_max_abs_diff": train_summary.parity.max_abs_diff,
        "gate_passed": gate.passed,
        "promoted": gate.promoted,
        "settings": used,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "log": str(log_path),
    }


def median_of(rounds: Sequence[dict[str, Any]], key: str) -> dict[str, float]:
    """Per step, the median over rounds of ``round[key][step]``."""
    steps = list(dict.fromkeys(s for r in rounds for s in r[key]))
    return {s: round(statistics.median(r[key].get(s, 0.0) for r in rounds), 2) for s in steps}


# --- Machine ------------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """Cores, memory, CPU model and versions (the docs describe the machine with these)."""
    import pyspark

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    java = subprocess.run(
        ["java", "-version"], capture_output=True, text=True, check=False
    ).stderr.splitlines()
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kb / 1024**2, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "java": java[0] if java else "unknown",
        "pyspark": pyspark.__version__,
    }


# --- Report -------------------------------------------------------------------------------------------------

TRAIN_STEP_ORDER = (
    "load", "cv_sample", "cv_lr", "cv_rf", "cv_gbt", "refit", "holdout", "plots", "onnx_export", "parity",
    "log_models", "register",
)  # fmt: skip


def fmt_seconds(value: float | None) -> str:
    """Seconds with one decimal (minutes added past 100 s)."""
    if value is None:
        return "-"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f} ({value / 60:.1f} min)"


def report(results: dict[str, Any]) -> str:
    """The markdown tables of a results dict."""
    sizes = results["sizes"]
    lines = [
        "**Retraining run by step** (wall seconds, median over rounds; spark-submit + JVM start included; "
        "CPU = user + system of the jobs and the gate)",
        "",
        "| rows | rounds | preprocess | train | gate | total | CPU s (pre / train / gate) "
        "| load avg (1 min, before → after) |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for size in sizes:
        wall, cpu = size["median_wall_seconds"], size["median_cpu_seconds"]
        loads = ", ".join(
            f"{r['load_average_before'][0]:.1f} → {r['load_average_after'][0]:.1f}" for r in size["rounds"]
        )
        lines.append(
            f"| {size['rows']:,} | {len(size['rounds'])} | {fmt_seconds(wall['preprocess'])} | "
            f"{fmt_seconds(wall['train'])} | {fmt_seconds(wall['gate'])} | "
            f"{fmt_seconds(wall['total'])} | {cpu['preprocess']:,.0f} / {cpu['train']:,.0f} / "
            f"{cpu['gate']:,.0f} | {loads} |"
        )
    steps = [s for s in TRAIN_STEP_ORDER if any(s in size["median_train_steps"] for size in sizes)]
    lines += [
        "",
        "**Inside the train job** (seconds, median over rounds; `step X took N s` of "
        "lifeboat.training.train)",
        "",
        "| rows | " + " | ".join(steps) + " | total |",
        "|---:|" + "---:|" * (len(steps) + 1),
    ]
    for size in sizes:
        train = size["median_train_steps"]
        cells = " | ".join(fmt_seconds(train.get(s)) for s in steps)
        lines.append(f"| {size['rows']:,} | {cells} | {fmt_seconds(train.get('total'))} |")
    pre_steps = list(dict.fromkeys(s for size in sizes for s in size["median_preprocess_steps"]))
    if pre_steps:
        lines += [
            "",
            "**Inside the preprocess job** (seconds, median over rounds)",
            "",
            "| rows | " + " | ".join(pre_steps) + " |",
            "|---:|" + "---:|" * len(pre_steps),
        ]
        for size in sizes:
            pre = size["median_preprocess_steps"]
            lines.append(
                f"| {size['rows']:,} | " + " | ".join(fmt_seconds(pre.get(s)) for s in pre_steps) + " |"
            )
    lines += [
        "",
        "**Model chosen** (first round of each size)",
        "",
        "| rows | family | params | CV ROC-AUC | CV accuracy | holdout ROC-AUC | holdout accuracy "
        "| parity | gate |",
        "|---:|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for size in sizes:
        r = size["rounds"][0]
        params = ", ".join(
            f"{k}={v}" for k, v in r["params"].items() if k in ("regParam", "maxDepth", "stepSize")
        )
        lines.append(
            f"| {size['rows']:,} | {r['family']} | {params} | {r['cv']['cv_roc_auc']:.4f} | "
            f"{r['cv']['cv_accuracy']:.4f} | {r['holdout']['holdout_roc_auc']:.4f} | "
            f"{r['holdout']['holdout_accuracy']:.4f} | {r['parity_max_abs_diff']:.1e} | "
            f"{'promoted' if r['promoted'] else 'rejected'} |"
        )
    growth = results.get("growth_100k_to_1m")
    if growth:
        lines += [
            "",
            "**Growth from 100k to 1M rows** (ratio of medians; linear = 10x)",
            "",
            "| step | 100k s | 1M s | growth | no worse than linear |",
            "|---|---:|---:|---:|---|",
        ]
        for step, g in growth.items():
            lines.append(
                f"| {step} | {g['100k']:.1f} | {g['1m']:.1f} | {g['factor']:.2f}x | "
                f"{'yes' if g['linear_or_better'] else 'NO'} |"
            )
    target = results.get("target_1m")
    if target:
        lines += [
            "",
            f"1M rows end to end: {fmt_seconds(target['seconds'])} — target ≤ 15 min "
            f"{'met' if target['met'] else 'MISSED'}.",
        ]
    return "\n".join(lines)


def growth_factors(by_rows: dict[int, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """100k → 1M growth of every step present in both (wall steps, then the train job's steps)."""
    small, large = by_rows.get(100_000), by_rows.get(LARGE_ROWS)
    if not small or not large:
        return {}
    out: dict[str, dict[str, Any]] = {}
    pairs: list[tuple[str, dict[str, float], dict[str, float], str]] = []
    for prefix, key, steps in (
        ("wall", "median_wall_seconds", ("preprocess", "train", "gate", "total")),
        ("CPU", "median_cpu_seconds", ("preprocess", "train", "gate", "total")),
        ("preprocess", "median_preprocess_steps", tuple(large["median_preprocess_steps"])),
        ("train", "median_train_steps", tuple(large["median_train_steps"])),
    ):
        pairs.extend((f"{prefix}: {s}", small[key], large[key], s) for s in steps)
    for name, a, b, step in pairs:
        if step in a and step in b and a[step] > 0:
            factor = b[step] / a[step]
            out[name] = {
                "100k": a[step],
                "1m": b[step],
                "factor": round(factor, 2),
                "linear_or_better": factor <= TARGET_GROWTH,
            }
    return out


# --- Main ---------------------------------------------------------------------------------------------------


def parse_sizes(text: str) -> tuple[int, ...]:
    """``891,100000,1000000`` (``100k`` and ``1m`` are accepted)."""
    sizes = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        factor = 1_000_000 if part.endswith("m") else 1_000 if part.endswith("k") else 1
        number = int(float(part.rstrip("km")) * factor)
        if number < 100:
            raise argparse.ArgumentTypeError(f"a size must be at least 100 rows, got {part!r}")
        sizes.append(number)
    if not sizes:
        raise argparse.ArgumentTypeError("no sizes given")
    return tuple(sizes)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the tables; write the JSON."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--sizes", type=parse_sizes, default=SIZES, help="comma-separated row counts (891,100k,1m)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds per size below 1M rows (median reported)"
    )
    parser.add_argument("--large-rounds", type=int, default=1, help="rounds at 1M rows and more")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results file")
    parser.add_argument("--logs", type=Path, default=DEFAULT_LOGS, help="folder for the jobs' output")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="folder for data and state (default: a temp dir)"
    )
    args = parser.parse_args(argv)

    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    load_start = os.getloadavg()
    log(f"machine load average {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}")
    sizes: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="lifeboat-bench-training-", dir=args.workdir) as tmp:
        workdir = Path(tmp)
        for rows in args.sizes:
            csv = dataset(rows, workdir)
            rounds_wanted = args.large_rounds if rows >= LARGE_ROWS else args.rounds
            rounds = []
            for round_ in range(rounds_wanted):
                log(f"{rows:,} rows, round {round_ + 1}/{rounds_wanted}")
                rounds.append(run_round(rows, csv, workdir / "runs", round_, args.logs))
            sizes.append(
                {
                    "rows": rows,
                    "source": "data/titanic/raw/train.csv (real)"
                    if csv == TRAIN_CSV
                    else "synthetic_passengers",
                    "csv_bytes": csv.stat().st_size,
                    "rounds": rounds,
                    "median_wall_seconds": median_of(rounds, "wall_seconds"),
                    "median_cpu_seconds": median_of(rounds, "cpu_seconds"),
                    "median_train_steps": median_of(rounds, "train_steps"),
                    "median_preprocess_steps": median_of(rounds, "preprocess_steps"),
                }
            )
            if csv != TRAIN_CSV:
                csv.unlink()
    by_rows = {s["rows"]: s for s in sizes}
    results: dict[str, Any] = {
        "benchmark": "training",
        "started_at": started_at,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "generator": {
            "function": "benchmarks/bench_training.py:synthetic_passengers",
            "seed": SEED,
            "age_jitter_years": AGE_JITTER_YEARS,
            "fare_jitter_fraction": FARE_JITTER_FRACTION,
        },
        "sizes": sizes,
        "growth_100k_to_1m": growth_factors(by_rows),
    }
    if LARGE_ROWS in by_rows:
        seconds = by_rows[LARGE_ROWS]["median_wall_seconds"]["total"]
        results["target_1m"] = {
            "seconds": seconds,
            "target_seconds": TARGET_SECONDS,
            "met": seconds <= TARGET_SECONDS,
        }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=str))
    print(report(results))
    print(f"\nresults: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
