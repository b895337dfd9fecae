"""The seed's smoke client: post random passengers of a CSV to a running server and check every answer.

Usage::

    python tests/test_script.py --input data/titanic/raw/test.csv --rows 50 \
        --url http://127.0.0.1:8000 [--seed 1]

Each sampled row goes to ``POST <url>/predict`` as JSON (empty cells become null). Every answer must be a 200
with the contract ``{"survived": 0|1, "probability_survive": float in [0, 1], "drift_alerts": str, ...}`` and
``survived == (probability_survive >= 0.5)``. Prints a summary (ok/failed, latency p50/p99) and exits 1 if
anything failed, 2 for bad arguments.

This file is a script, not a test module: pytest collects nothing from it (``__test__ = False``).
"""

from __future__ import annotations

__test__ = False

if __name__ == "__main__":
    import argparse
    import csv
    import math
    import random
    import sys
    import time
    from pathlib import Path

    import httpx

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, required=True, help="passenger CSV (Kaggle test.csv columns)")
    parser.add_argument("--rows", type=int, default=20, help="how many random rows to send (default 20)")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="server base URL")
    parser.add_argument("--seed", type=int, default=None, help="random seed for the row sample")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    args = parser.parse_args()
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    if not args.input.is_file():
        parser.error(f"--input {args.input} is not a file")

    integer_columns = {"PassengerId", "Pclass", "SibSp", "Parch"}
    number_columns = {"Age", "Fare"}
    label_column = "Survived"

    with args.input.open(newline="", encoding="utf-8-sig") as handle:
        table = list(csv.DictReader(handle))
    if not table:
        parser.error(f"--input {args.input} has no data rows")

    def to_json(row: dict[str, str]) -> dict[str, object]:
        """A CSV row as the API's JSON: empty cells and NaN become null, numbers become numbers."""
        out: dict[str, object] = {}
        for key, raw in row.items():
            if key == label_column:
                continue
            cell = (raw or "").strip()
            if cell == "" or cell.lower() == "nan":
                out[key] = None
            elif key in integer_columns:
                out[key] = int(float(cell))
            elif key in number_columns:
                value = float(cell)
                out[key] = None if math.isnan(value) else value
            else:
                out[key] = cell
        return out

    def contract_problems(status: int, body: object) -> list[str]:
        """Everything wrong with one answer (empty when it honours the contract)."""
        if status != 200:
            return [f"HTTP {status}: {str(body)[:200]}"]
        if not isinstance(body, dict):
            return [f"the answer is not a JSON object: {body!r}"]
        problems = [
            f"missing key {key!r}"
            for key in ("survived", "probability_survive", "drift_alerts")
            if key not in body
        ]
        if problems:
            return problems
        survived, probability, alerts = body["survived"], body["probability_survive"], body["drift_alerts"]
        if type(survived) is not int or survived not in (0, 1):
            problems.append(f"survived is {survived!r}, not 0 or 1")
        if type(probability) not in (int, float) or not 0.0 <= float(probability) <= 1.0:
            problems.append(f"probability_survive is {probability!r}, not a number in [0, 1]")
        elif survived in (0, 1) and survived != int(float(probability) >= 0.5):
            problems.append(f"survived={survived} disagrees with probability_survive={probability}")
        if not isinstance(alerts, str):
            problems.append(f"drift_alerts is {alerts!r}, not a string")
        return problems

    sample = random.Random(args.seed).choices(table, k=args.rows)
    latencies: list[float] = []
    failures: list[str] = []
    failed_requests: set[int] = set()
    with httpx.Client(base_url=args.url, timeout=args.timeout) as client:
        for number, row in enumerate(sample, start=1):
            passenger = to_json(row)
            started = time.perf_counter()
            try:
                response = client.post("/predict", json=passenger)
            except httpx.HTTPError as exc:
                failed_requests.add(number)
                failures.append(f"request {number} (PassengerId {passenger.get('PassengerId')}): {exc!r}")
                continue
            latencies.append(time.perf_counter() - started)
            try:
                body: object = response.json()
            except ValueError:
                body = response.text
            for problem in contract_problems(response.status_code, body):
                failed_requests.add(number)
                failures.append(f"request {number} (PassengerId {passenger.get('PassengerId')}): {problem}")

    ok = args.rows - len(failed_requests)
    print(f"{args.url}/predict: {ok} ok, {len(failed_requests)} failed, of {args.rows} requests")
    if latencies:
        ordered = sorted(latencies)

        def percentile(q: float) -> float:
            return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)] * 1000

        print(f"latency p50 {percentile(0.50):.1f} ms, p99 {percentile(0.99):.1f} ms")
    for failure in failures[:20]:
        print(f"FAILED {failure}")
    if len(failures) > 20:
        print(f"... and {len(failures) - 20} more")
    sys.exit(1 if failures else 0)
