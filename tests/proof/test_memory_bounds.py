"""Hostile batches cannot amplify memory (issue 14, finding 1): 20 concurrent requests, each a 2 MB body
built to make one error object per column or key, against a real uvicorn worker serving the champion. The
server's resident memory is sampled every 20 ms; its peak must stay below idle + 150 MB, and every answer is
a 422 that names the problem and lists at most MAX_LISTED_ERRORS errors.

Before the fix, a CSV header of about a million columns built one error per column (about 300 MB per request).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psutil
import pytest

from lifeboat.registry.artifact import CANARY_PASSENGER
from serving.batch_input import MAX_LISTED_ERRORS
from tests.serving.serving_support import LiveServer

pytestmark = pytest.mark.integration

BODY_BYTES = 1_990_000  # just under the default 2 MB body limit
CONCURRENT = 20
#: The issue's bound on the peak above idle.
MAX_GROWTH_MB = 150


def wide_csv_header() -> bytes:
    """A CSV whose header has ~1,000,000 columns (every one unknown), then one row."""
    columns = BODY_BYTES // 2
    return (",".join(["x"] * columns) + "\n" + ",".join(["1"] * 3) + "\n").encode()[:BODY_BYTES]


def unknown_keys_batch() -> bytes:
    """A JSON batch whose one row has ~150,000 unknown keys beside the known fields."""
    row = dict(CANARY_PASSENGER)
    count = BODY_BYTES // 14
    row.update({f"k{i}": 0 for i in range(count)})
    body = json.dumps({"passengers": [row]}, separators=(",", ":")).encode()
    while len(body) > BODY_BYTES:
        count = count * 9 // 10
        row = {**CANARY_PASSENGER, **{f"k{i}": 0 for i in range(count)}}
        body = json.dumps({"passengers": [row]}, separators=(",", ":")).encode()
    return body


def unknown_keys_single() -> bytes:
    """One /predict passenger with ~150,000 unknown keys."""
    batch = json.loads(unknown_keys_batch())
    return json.dumps(batch["passengers"][0], separators=(",", ":")).encode()


ATTACKS: dict[str, tuple[str, dict[str, str], Callable[[], bytes], str]] = {
    "csv-wide-header": ("/predict/batch", {"Content-Type": "text/csv"}, wide_csv_header, "header"),
    "json-unknown-keys": (
        "/predict/batch",
        {"Content-Type": "application/json"},
        unknown_keys_batch,
        "unknown",
    ),
    "predict-unknown-keys": ("/predict", {"Content-Type": "application/json"}, unknown_keys_single, "k0"),
}


def rss_mb(process: psutil.Process) -> float:
    """Resident memory of the server and its children, in MB."""
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 1e6


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_concurrent_hostile_batches_stay_within_the_memory_bound(
    live_champion: LiveServer, attack: str
) -> None:
    path, headers, make, names = ATTACKS[attack]
    body = make()
    assert len(body) <= BODY_BYTES
    server = psutil.Process(live_champion.process.pid)
    warm = httpx.post(f"{live_champion.url}{path}", content=body, headers=headers, timeout=120)
    assert warm.status_code == 422, warm.text[:300]  # once first: allocator arenas and caches are warm
    idle = rss_mb(server)
    peak = [idle]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_mb(server))
            stop.wait(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()

    def send(_: int) -> httpx.Response:
        return httpx.post(f"{live_champion.url}{path}", content=body, headers=headers, timeout=300)

    try:
        with ThreadPoolExecutor(CONCURRENT) as pool:
            answers = list(pool.map(send, range(CONCURRENT)))
    finally:
        stop.set()
        sampler.join()
    print(f"\n{attack}: idle {idle:.0f} MB, peak {peak[0]:.0f} MB (+{peak[0] - idle:.0f} MB)")
    for answer in answers:
        assert answer.status_code == 422, answer.text[:300]
        detail: Any = answer.json()
        errors = detail.get("errors", detail.get("detail"))
        assert isinstance(errors, list)
        assert len(errors) <= MAX_LISTED_ERRORS + 1  # the listed errors (+ one "more are not listed" line)
        assert names in answer.text[:5000]
    assert peak[0] - idle < MAX_GROWTH_MB, (
        f"peak {peak[0]:.0f} MB is more than idle {idle:.0f} + {MAX_GROWTH_MB} MB"
    )
    assert httpx.get(f"{live_champion.url}/health", timeout=10).status_code == 200
