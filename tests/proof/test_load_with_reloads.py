"""Load with reloads: concurrent clients on a real 2-worker uvicorn while the champion is promoted 3 times.

Client threads keep sending ``/predict`` (JSON) and ``/predict/batch`` (JSON and CSV) for a bounded time;
three times the ``champion`` alias moves to another servable version and ``POST /admin/reload`` follows. Zero
requests may fail, every answer must honour the contract and name one of the versions involved, and once the
last reload has answered every request is served by the last promoted version, on both workers.

Requests served, errors and p50/p99 latency are printed (and recorded as JUnit properties), never asserted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving.app import fleet_directory
from serving.fleet import FleetBoard
from tests.proof.proof_support import (
    batch_problem,
    csv_of,
    percentile,
    prediction_problem,
    register_artifact_copy,
)
from tests.serving.serving_support import (
    LiveServer,
    ServingVersions,
    StoreRef,
    auth,
    copy_store,
    live_server,
    serving_settings,
    set_champion,
)

pytestmark = pytest.mark.integration

#: How long the clients send requests at least (the last reload is followed by FINAL_SECONDS more).
LOAD_SECONDS = 24.0
#: When the three promotions start, in seconds after the clients.
PROMOTE_AT = (4.0, 10.0, 16.0)
#: Requests keep coming at least this long after the last reload answered.
FINAL_SECONDS = 4.0
SINGLE_CLIENTS = 3
BATCH_CLIENTS = 1
BATCH_ROWS = 25


@dataclass(frozen=True)
class Outcome:
    """One request a client sent."""

    client: int
    endpoint: str
    started: float
    seconds: float
    versions: tuple[str, ...]  # every model_version in the answer
    problem: str | None  # None: a 200 honouring the contract


@dataclass(frozen=True)
class Promotion:
    """One alias move and the reload that followed it."""

    version: str
    started: float
    answered: float
    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class PromotionPlan:
    """A store whose champion starts at ``initial`` and is promoted to each of ``promotions`` in turn."""

    store: StoreRef
    initial: str
    promotions: tuple[str, str, str]


@pytest.fixture(scope="module")
def plan(
    champion_store: StoreRef, serving_versions: ServingVersions, tmp_path_factory: pytest.TempPathFactory
) -> PromotionPlan:
    """The champion, then the alternate and two more servable versions (private artifact copies)."""
    root = tmp_path_factory.mktemp("load-store")
    store = copy_store(champion_store, root / "store")
    copy_of_champion = register_artifact_copy(store, champion_store.version, root / "copy-of-champion")
    copy_of_alternate = register_artifact_copy(store, serving_versions.alternate, root / "copy-of-alternate")
    return PromotionPlan(
        store, champion_store.version, (serving_versions.alternate, copy_of_champion, copy_of_alternate)
    )


@pytest.fixture(scope="module")
def server(plan: PromotionPlan, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """``uvicorn --workers 2`` serving the plan's store; no alias poll: only the reloads move the workers."""
    settings = serving_settings(tmp_path_factory.mktemp("load-state"), plan.store.tracking_uri)
    with live_server(settings, workers=2) as live:
        yield live


def _ready_versions(url: str, samples: int) -> set[str]:
    """The versions /ready reports over fresh connections (the kernel spreads them over the workers)."""
    versions: set[str] = set()
    for _ in range(samples):
        with httpx.Client(timeout=30) as client:
            versions.add(str(client.get(f"{url}/ready").json()["model_version"]))
    return versions


def test_three_promotions_under_load_fail_no_request(
    server: LiveServer,
    plan: PromotionPlan,
    test_rows: list[dict[str, Any]],
    record_property: Any,
    tmp_path: Path,
) -> None:
    involved = frozenset({plan.initial, *plan.promotions})
    assert len(involved) == 4  # four distinct versions: every swap is visible in the answers
    assert _ready_versions(server.url, 10) == {plan.initial}

    stop = threading.Event()
    lock = threading.Lock()
    outcomes: list[Outcome] = []
    origin = time.monotonic()

    def record(outcome: Outcome) -> None:
        with lock:
            outcomes.append(outcome)

    def send_singles(client_id: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            i = client_id
            while not stop.is_set():
                row = test_rows[i % len(test_rows)]
                i += SINGLE_CLIENTS
                started = time.monotonic()
                try:
                    response = client.post("/predict", json=row)
                    seconds = time.monotonic() - started
                    body = response.json()
                except (httpx.HTTPError, ValueError) as exc:
                    record(Outcome(client_id, "/predict", started - origin, 0.0, (), f"{exc!r}"))
                    continue
                problem = (
                    f"status {response.status_code}: {response.text[:200]}"
                    if response.status_code != 200
                    else prediction_problem(body, involved)
                )
                versions = (str(body.get("model_version")),) if isinstance(body, dict) else ()
                record(Outcome(client_id, "/predict", started - origin, seconds, versions, problem))

    def send_batches(client_id: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            i = 0
            while not stop.is_set():
                start = (i * BATCH_ROWS) % (len(test_rows) - BATCH_ROWS)
                rows = test_rows[start : start + BATCH_ROWS]
                as_csv = i % 2 == 1
                i += 1
                started = time.monotonic()
                try:
                    if as_csv:
                        response = client.post(
                            "/predict/batch", content=csv_of(rows), headers={"Content-Type": "text/csv"}
                        )
                    else:
                        response = client.post("/predict/batch", json={"passengers": rows})
                    seconds = time.monotonic() - started
                    body = response.json()
                except (httpx.HTTPError, ValueError) as exc:
                    record(Outcome(client_id, "/predict/batch", started - origin, 0.0, (), f"{exc!r}"))
                    continue
                problem = (
                    f"status {response.status_code}: {response.text[:200]}"
                    if response.status_code != 200
                    else batch_problem(body, len(rows), involved)
                )
                versions: tuple[str, ...] = ()
                if isinstance(body, dict) and isinstance(body.get("predictions"), list):
                    versions = (
                        str(body.get("model_version")),
                        *(str(p.get("model_version")) for p in body["predictions"] if isinstance(p, dict)),
                    )
                record(Outcome(client_id, "/predict/batch", started - origin, seconds, versions, problem))

    threads = [threading.Thread(target=send_singles, args=(k,)) for k in range(SINGLE_CLIENTS)]
    threads += [
        threading.Thread(target=send_batches, args=(SINGLE_CLIENTS + k,)) for k in range(BATCH_CLIENTS)
    ]
    for thread in threads:
        thread.start()
    promotions: list[Promotion] = []
    try:
        for at, version in zip(PROMOTE_AT, plan.promotions, strict=True):
            time.sleep(max(0.0, origin + at - time.monotonic()))
            started = time.monotonic()
            set_champion(plan.store, version)
            response = httpx.post(f"{server.url}/admin/reload", headers=auth(), timeout=120)
            promotions.append(
                Promotion(
                    version,
                    started - origin,
                    time.monotonic() - origin,
                    response.status_code,
                    response.json(),
                )
            )
        end = max(origin + LOAD_SECONDS, origin + promotions[-1].answered + FINAL_SECONDS)
        time.sleep(max(0.0, end - time.monotonic()))
    finally:
        stop.set()
        for thread in threads:
            thread.join(120)
    elapsed = time.monotonic() - origin

    # The report line (measured, not asserted).
    latencies = [o.seconds for o in outcomes if o.problem is None]
    singles = [o for o in outcomes if o.endpoint == "/predict"]
    batches = [o for o in outcomes if o.endpoint == "/predict/batch"]
    errors = [o for o in outcomes if o.problem is not None]
    p50_single = percentile([o.seconds for o in singles if o.problem is None], 0.50) * 1000
    p99_single = percentile([o.seconds for o in singles if o.problem is None], 0.99) * 1000
    p50_batch = percentile([o.seconds for o in batches if o.problem is None], 0.50) * 1000
    p99_batch = percentile([o.seconds for o in batches if o.problem is None], 0.99) * 1000
    reload_seconds = [round(p.answered - p.started, 2) for p in promotions]
    print(
        f"\nload with reloads: {len(outcomes)} requests in {elapsed:.1f} s ({len(singles)} /predict, "
        f"{len(batches)} /predict/batch x {BATCH_ROWS} rows), errors {len(errors)}, "
        f"/predict p50 {p50_single:.1f} ms p99 {p99_single:.1f} ms, "
        f"/predict/batch p50 {p50_batch:.1f} ms p99 {p99_batch:.1f} ms, "
        f"all p50 {percentile(latencies, 0.5) * 1000:.1f} ms "
        f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms; "
        f"promotions {[p.version for p in promotions]} reloaded in {reload_seconds} s"
    )
    for name, value in {
        "load_requests": len(outcomes),
        "load_errors": len(errors),
        "load_predict_p50_ms": round(p50_single, 2),
        "load_predict_p99_ms": round(p99_single, 2),
        "load_batch_p50_ms": round(p50_batch, 2),
        "load_batch_p99_ms": round(p99_batch, 2),
    }.items():
        record_property(name, value)

    assert errors == [], f"{len(errors)} failed requests, first: {errors[:5]}"
    assert len(singles) >= 100, "the clients sent too few requests to prove anything"
    assert len(batches) >= 10
    # Every reload swapped both workers before answering, to the version just promoted.
    assert [(p.status, p.body["new_version"], p.body["converged"]) for p in promotions] == [
        (200, version, True) for version in plan.promotions
    ]
    assert all(len(p.body["workers"]) == 2 for p in promotions)
    # Every version involved really served traffic, and nothing else did.
    served = {v for o in outcomes for v in o.versions}
    assert served == involved
    # Each batch was scored by one model, even when a swap happened while it was being scored.
    assert all(len(set(o.versions)) == 1 for o in batches)
    # After the last reload answered, only the last promoted version answers, on every worker.
    last = promotions[-1]
    after = [o for o in outcomes if o.started > last.answered]
    assert len(after) >= 10
    assert {v for o in after for v in o.versions} == {last.version}
    assert _ready_versions(server.url, 20) == {last.version}
    board = FleetBoard(fleet_directory(server.settings), "observer")
    assert [w.version for w in board.live_workers()] == [last.version, last.version]
    assert server.process.poll() is None
    assert "Traceback" not in server.log_text()
