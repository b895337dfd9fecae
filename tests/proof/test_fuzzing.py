"""Property-based fuzzing of the prediction API from its own OpenAPI schema (schemathesis).

In process (the app as served, through ASGI, its lifespan run: the shared champion is loaded): thousands
of generated requests, schema-valid (positive) and schema-invalid (negative), for ``POST /predict``,
``POST /predict/batch`` (JSON, CSV and multipart bodies) and ``POST /admin/reload``. Then a smaller pass
against a live uvicorn over real sockets.

The verdicts are separate tests on one shared run (fuzzing once is the expensive part):

* no answer is a 5xx, and the server still answers afterwards (the issue's requirement);
* schema-valid passengers are scored, schema-invalid input is refused with a 4xx;
* every answer is what the OpenAPI description promises (documented status, content type, body schema).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lifeboat.registry.artifact import CANARY_PASSENGER
from tests.proof.fuzzing import FuzzTally, fuzz
from tests.proof.proof_support import prediction_problem
from tests.serving.serving_support import LiveServer, StoreRef, serving_settings

pytestmark = pytest.mark.integration

#: Cases per (operation, mode) in process: >= 2,000 for /predict and >= 500 for /predict/batch in all.
IN_PROCESS_CASES = {
    ("/predict", "positive"): 800,
    ("/predict", "negative"): 1300,
    ("/predict/batch", "positive"): 250,
    ("/predict/batch", "negative"): 300,
    ("/admin/reload", "positive"): 60,
    ("/admin/reload", "negative"): 60,
}
#: The smaller pass against a live uvicorn.
LIVE_CASES = {
    ("/predict", "positive"): 150,
    ("/predict", "negative"): 150,
    ("/predict/batch", "positive"): 50,
    ("/predict/batch", "negative"): 50,
}
CONFORMANCE = ("status_code_conformance", "content_type_conformance", "response_schema_conformance")


def _fuzz_all(schema: Any, plan: dict[tuple[str, str], int]) -> list[FuzzTally]:
    from schemathesis import GenerationMode

    tallies = []
    for (path, mode), examples in plan.items():
        operation = schema[path]["POST"]
        tallies.append(fuzz(operation, GenerationMode(mode), examples, lambda case: case.call()))
    return tallies


def _total(tallies: list[FuzzTally], operation: str) -> int:
    return sum(t.cases for t in tallies if t.operation == operation)


def _assert_alive(client: Any) -> None:
    assert client.get("/health").status_code == 200
    ready = client.get("/ready")
    assert ready.status_code == 200, ready.text
    answer = client.post("/predict", json=dict(CANARY_PASSENGER))
    assert answer.status_code == 200
    assert prediction_problem(answer.json(), {ready.json()["model_version"]}) is None


@pytest.fixture(scope="module")
def fuzzed_app(champion_store: StoreRef, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The app serving the shared champion; schemathesis runs its lifespan on the first request."""
    from schemathesis.python import asgi

    from serving.app import create_app

    app = create_app(serving_settings(tmp_path_factory.mktemp("fuzz-state"), champion_store.tracking_uri))
    yield app
    asgi.shutdown_lifespans()  # stops the app's registry follower and closes its prediction log


@pytest.fixture(scope="module")
def in_process(fuzzed_app: Any) -> list[FuzzTally]:
    """One fuzzing run over the app's own ``/openapi.json``, judged by the tests below."""
    import schemathesis

    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app)
    tallies = _fuzz_all(schema, IN_PROCESS_CASES)
    print("\nin-process fuzzing:\n  " + "\n  ".join(t.line() for t in tallies))
    return tallies


def test_fuzzing_in_process_finds_no_server_error(
    in_process: list[FuzzTally], fuzzed_app: Any, record_property: Any
) -> None:
    from fastapi.testclient import TestClient

    predict, batch = _total(in_process, "POST /predict"), _total(in_process, "POST /predict/batch")
    record_property("fuzz_predict_cases", predict)
    record_property("fuzz_batch_cases", batch)
    assert predict >= 2000
    assert batch >= 500
    assert {t.operation: t.server_errors() for t in in_process} == dict.fromkeys(
        {t.operation for t in in_process}, 0
    )
    assert [t.failed("not_a_server_error") for t in in_process if t.failed("not_a_server_error")] == []
    # Valid input really reached the model (the fuzzing did not stop at the validators).
    assert all(t.statuses[200] > 0 for t in in_process if t.mode == "positive" and "predict" in t.operation)
    # The server is still alive and well (the lifespan schemathesis started is still running).
    _assert_alive(TestClient(fuzzed_app))
    metrics = TestClient(fuzzed_app).get("/metrics").text
    requests = [line for line in metrics.splitlines() if line.startswith("lifeboat_http_requests_total{")]
    assert any('status="422"' in line for line in requests)
    assert [line for line in requests if 'status="5' in line] == []


def test_schema_valid_passengers_are_scored_and_invalid_input_refused(in_process: list[FuzzTally]) -> None:
    assert {f"{t.operation} {t.mode}": t.failed("positive_data_acceptance") for t in in_process} == {
        f"{t.operation} {t.mode}": {} for t in in_process
    }
    assert {f"{t.operation} {t.mode}": t.failed("negative_data_rejection") for t in in_process} == {
        f"{t.operation} {t.mode}": {} for t in in_process
    }


def test_fuzzed_answers_conform_to_the_openapi_description(in_process: list[FuzzTally]) -> None:
    found = {f"{t.operation} {t.mode}": t.failed(*CONFORMANCE) for t in in_process if t.failed(*CONFORMANCE)}
    assert found == {}, "\n".join(f"{k}: {v}" for k, v in found.items())


def test_fuzzing_a_live_server_finds_no_server_error(live_champion: LiveServer) -> None:
    import httpx
    import schemathesis

    schema = schemathesis.openapi.from_url(f"{live_champion.url}/openapi.json")
    tallies = _fuzz_all(schema, LIVE_CASES)
    print("\nlive fuzzing:\n  " + "\n  ".join(t.line() for t in tallies))
    assert sum(t.cases for t in tallies) >= 350
    assert [t.line() for t in tallies if t.server_errors() or t.failed("not_a_server_error")] == []
    assert live_champion.process.poll() is None
    with httpx.Client(base_url=live_champion.url, timeout=30) as client:
        _assert_alive(client)
    log = live_champion.log_text()
    assert "Traceback" not in log
    assert "unhandled error" not in log
