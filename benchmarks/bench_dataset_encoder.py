"""Micro-benchmark of the spec-driven encoder against today's hand-written Titanic encoding (features.py).

Run: ``.venv/bin/python benchmarks/bench_dataset_encoder.py [--rounds 9]``. Prints a markdown table: for 1, 16
and 10,000 rows, the median time of ``encode`` and ``encode_with_alerts`` of each encoder and their ratio
(new / old). The two encoders are timed alternately within each round, so a busy machine slows both alike;
read the ratios rather than the absolute figures there. Inputs are what each caller passes today: a list of
records (the new encoder's serving input), a dict of columns (features.py's), a DataFrame for 10,000 rows.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from lifeboat.dataset import features
from lifeboat.dataset.encoder import encode, encode_with_alerts, fit
from lifeboat.dataset.spec import load_spec

REPO = Path(__file__).resolve().parents[1]


def _per_call(function: Callable[[], Any], number: int) -> float:
    return timeit.timeit(function, number=number) / number


def main(argv: list[str] | None = None) -> int:
    """Time both encoders and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="rounds per case (the median is reported)")
    parser.add_argument("--train", type=Path, default=REPO / "data" / "titanic" / "raw" / "train.csv")
    args = parser.parse_args(argv)

    train = pd.read_csv(args.train)
    new = fit(load_spec(REPO / "data" / "titanic" / "dataset.yaml"), train)
    old = features.fit_feature_spec(train)
    big = pd.concat([train] * (10_000 // len(train) + 1), ignore_index=True).head(10_000)

    print("| rows | call | spec encoder (µs) | features.py (µs) | new / old |")
    print("|---:|---|---:|---:|---:|")
    for n in (1, 16, 10_000):
        rows = big.head(n)
        new_input: Any = rows if n > 16 else rows.to_dict("records")
        old_input: Any = rows if n > 16 else {c: rows[c].tolist() for c in rows.columns}
        number = 3 if n > 16 else 500
        cases: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = [
            ("encode", lambda i=new_input: encode(new, i), lambda i=old_input: features.encode(i, old)),
            (
                "encode_with_alerts",
                lambda i=new_input: encode_with_alerts(new, i),
                lambda i=old_input: features.encode_with_alerts(i, old),
            ),
        ]
        for name, run_new, run_old in cases:
            times_new, times_old, ratios = [], [], []
            for _ in range(args.rounds):
                t_new, t_old = _per_call(run_new, number), _per_call(run_old, number)
                times_new.append(t_new)
                times_old.append(t_old)
                ratios.append(t_new / t_old)
            print(
                f"| {n:,} | {name} | {statistics.median(times_new) * 1e6:,.1f} "
                f"| {statistics.median(times_old) * 1e6:,.1f} | {statistics.median(ratios):.2f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
