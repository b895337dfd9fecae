"""Pure pieces of the server: the input model's derivation from the schema, CSV cells, the body limit,
the model holder, the fleet board, and the serving image's files."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from pydantic import ValidationError

from lifeboat.dataset.schema import COLUMNS
from lifeboat.registry.artifact import CANARY_PASSENGER
from serving import middleware
from serving.batch_input import BatchInvalid, passenger_from_json_body, passengers_from_csv
from serving.champion_source import CHAMPION_ALIAS
from serving.fleet import FleetBoard
from serving.middleware import BodySizeLimit
from serving.model_holder import LoadedModel, ModelHolder, ModelMeta
from serving.schemas import PassengerIn, api_optional

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]


# --- the input model comes from lifeboat.dataset.schema
# -------------------------------------------------------------


def test_the_input_model_has_exactly_the_schema_columns_and_constraints() -> None:
    schema = PassengerIn.model_json_schema()
    assert list(schema["properties"]) == [c.name for c in COLUMNS]
    assert set(schema["required"]) == {c.name for c in COLUMNS if not api_optional(c)}
    assert set(schema["required"]) == {"Pclass", "Sex", "SibSp", "Parch"}
    for spec in COLUMNS:
        prop = schema["properties"][spec.name]
        branch = next((b for b in prop.get("anyOf", [prop]) if b.get("type") != "null"), prop)
        if spec.minimum is not None:
            assert branch["minimum"] == spec.minimum, spec.name
        if spec.maximum is not None:
            assert branch["maximum"] == spec.maximum, spec.name
        if spec.max_length is not None:
            assert branch["maxLength"] == spec.max_length, spec.name
        if spec.allowed is not None:
            assert (branch.get("enum") or prop.get("enum")) == list(spec.allowed), spec.name


def test_the_input_model_is_strict() -> None:
    good = {"Pclass": 1, "Sex": "female", "SibSp": 0, "Parch": 0, "Age": 30}
    assert PassengerIn.model_validate(good).model_dump()["Age"] == 30.0
    for bad in (
        {"Pclass": True},
        {"Pclass": 1.0},
        {"Pclass": "1"},
        {"SibSp": 1.0},
        {"Age": float("nan")},
        {"Age": float("inf")},
        {"Age": "30"},
        {"Sex": "Female"},
        {"extra": 1},
    ):
        with pytest.raises(ValidationError):
            PassengerIn.model_validate({**good, **bad})


_GOOD: dict[str, Any] = dict(CANARY_PASSENGER)
#: Bodies the fast lane of /predict must judge exactly as the input model does (same dict, or refused).
_PASSENGER_BODIES: list[Any] = [
    _GOOD,
    {"Pclass": 2, "Sex": "female", "SibSp": 1, "Parch": 2},
    {**_GOOD, "Age": 34, "Fare": 0},  # integers are fine for float fields
    {**_GOOD, "Age": None, "Embarked": None, "Cabin": None, "Name": None, "PassengerId": None},
    {**_GOOD, "Name": "  Kelly, Mr. James  ", "Ticket": ""},
    {**_GOOD, "Age": 0, "Fare": 1000, "SibSp": 20, "Parch": 20, "PassengerId": 2**53},
    *(
        {**_GOOD, field: value}
        for field, value in (
            ("Pclass", "3"),
            ("Pclass", 3.0),
            ("Pclass", True),
            ("Pclass", 4),
            ("Pclass", None),
            ("Sex", "Male"),
            ("Age", -1),
            ("Age", 120.5),
            ("Age", "34"),
            ("Age", False),
            ("Age", [34]),
            ("SibSp", 1.5),
            ("Parch", "0"),
            ("Fare", 1000.01),
            ("Fare", {"amount": 7}),
            ("Embarked", ""),
            ("Embarked", "s"),
            ("Name", "x" * 201),
            ("Name", 12),
            ("Cabin", "c" * 65),
            ("PassengerId", 0),
            ("PassengerId", 2**53 + 1),
            ("PassengerId", 10**30),
            ("Survived", 1),
        )
    ),
    {k: v for k, v in _GOOD.items() if k != "Age"},  # optional columns may be left out
    *({k: v for k, v in _GOOD.items() if k != field} for field in ("Pclass", "Sex", "SibSp", "Parch")),
    [],
    None,
    "a passenger",
    [_GOOD],
]
_RAW_BODIES: list[bytes] = [
    b"",
    b"   ",
    b"{",
    json.dumps(_GOOD).encode() + b" trailing",
    json.dumps(_GOOD).replace('"Age": 34.5', '"Age": NaN').encode(),
    json.dumps(_GOOD).replace('"Fare": 7.8292', '"Fare": Infinity').encode(),
    json.dumps(_GOOD).replace('"Fare": 7.8292', '"Fare": 1e400').encode(),
    json.dumps(_GOOD).replace('"Pclass": 3', '"Pclass": 1, "Pclass": 2').encode(),  # the last one counts
    json.dumps(_GOOD).replace('"Kelly, Mr. James"', '"Kelly, \\ud800"').encode(),
    json.dumps(_GOOD).replace('"Kelly, Mr. James"', '"K\\u00e9lly"').encode(),
    json.dumps(_GOOD, ensure_ascii=False).replace("Kelly", "Kélly").encode(),
    json.dumps(_GOOD).replace("Kelly", "K\xff").encode("latin-1"),  # not UTF-8
    b'{"Pclass": 1' + b"0" * 5000 + b"}",
    "\ufeff".encode() + json.dumps(_GOOD).encode(),  # a UTF-8 byte order mark
    json.dumps(_GOOD).encode("utf-16"),
]


def _reference(body: bytes) -> dict[str, Any] | None:
    """What the declared route makes of a JSON body: FastAPI's ``json.loads``, then ``PassengerIn``."""
    try:
        return PassengerIn.model_validate(json.loads(body)).model_dump()
    except ValueError:  # JSONDecodeError, ValidationError, Python's integer digit limit
        return None


def test_the_fast_passenger_lane_accepts_exactly_what_the_input_model_accepts() -> None:
    for payload in _PASSENGER_BODIES:
        body = json.dumps(payload).encode()
        expected = _reference(body)
        assert passenger_from_json_body(body) == expected, body
    accepted = [p for p in _PASSENGER_BODIES if _reference(json.dumps(p).encode()) is not None]
    assert len(accepted) == 7  # the first seven really are valid
    for body in _RAW_BODIES:
        fast, expected = passenger_from_json_body(body), _reference(body)
        # never accept what the model refuses; a refusal only sends the body to the reference path
        assert fast is None or fast == expected, body
        if expected is None:
            assert fast is None, body
    assert passenger_from_json_body(_RAW_BODIES[7]) == {**_reference(json.dumps(_GOOD).encode()), "Pclass": 2}


def test_the_served_alias_is_the_registry_champion() -> None:
    from lifeboat.registry.store import CHAMPION

    assert CHAMPION_ALIAS == CHAMPION


# --- CSV cells ----------------------------------------------------------------------------------------------


def test_csv_cells_are_typed_by_the_schema() -> None:
    csv = (
        b"\xef\xbb\xbfPassengerId,Pclass,Name,Sex,Age,SibSp,Parch,Ticket,Fare,Cabin,Embarked\r\n"
        b'7,2,"Doe, Mrs. Jane",female,4.5,1,2.0,0042,10,,C\r\n\r\n'
    )
    (row,) = passengers_from_csv(csv, max_rows=10)
    assert row == {
        "PassengerId": 7,
        "Pclass": 2,
        "Name": "Doe, Mrs. Jane",
        "Sex": "female",
        "Age": 4.5,
        "SibSp": 1,
        "Parch": 2,
        "Ticket": "0042",
        "Fare": 10.0,
        "Cabin": None,
        "Embarked": "C",
    }


def test_csv_problems_carry_row_and_field() -> None:
    csv = b"Pclass,Sex,SibSp,Parch,Age\n3,male,0,0,1e999\n1,female,x,0,\n"
    with pytest.raises(BatchInvalid) as caught:
        passengers_from_csv(csv, max_rows=10)
    assert [(p.row, p.field) for p in caught.value.problems] == [(0, "Age"), (1, "SibSp")]
    assert caught.value.body()["invalid_rows"] == [0, 1]


# --- the body limit (pure ASGI) -----------------------------------------------------------------------------


async def _echo_length(scope: Any, receive: Any, send: Any) -> None:
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = json.dumps({"size": size}).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": body})


def _call(app: Any, chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> tuple[int, dict[str, Any]]:
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/x", "headers": headers}
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body)


def test_the_body_limit_checks_declared_and_streamed_sizes() -> None:
    app = BodySizeLimit(_echo_length, max_bytes=100)
    assert _call(app, [b"x" * 60, b"x" * 40], []) == (200, {"size": 100})
    assert _call(app, [b"x" * 101], [(b"content-length", b"101")])[0] == 413
    streamed, body = _call(app, [b"x" * 60, b"x" * 60], [])  # chunked: no Content-Length
    assert streamed == 413
    assert "100 bytes" in body["detail"]
    assert _call(app, [b"x" * 60, b"x" * 60], [(b"content-length", b"50")])[0] == 413  # a lying header
    assert _call(app, [b"x"], [(b"content-length", b"many")])[0] == 400


def _drained(app: Any, chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> tuple[int, int, bool]:
    """(status, chunks the middleware read, whether it answered `Connection: close`)."""
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
    ]
    read = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        if not messages:
            raise AssertionError("receive() after the end of the body would wait for a disconnect")
        read += 1
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/x", "headers": headers}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], read, (b"connection", b"close") in start["headers"]


def test_an_oversized_body_is_read_to_its_end_before_the_413(monkeypatch: pytest.MonkeyPatch) -> None:
    """A client that sends everything before reading must find the 413, not a reset connection."""
    app = BodySizeLimit(_echo_length, max_bytes=100)
    declared = [(b"content-length", b"1000")]
    assert _drained(app, [b"x" * 100] * 10, declared) == (413, 10, False)  # all read; the connection lives
    assert _drained(app, [b"x" * 60] * 5, []) == (413, 5, False)  # chunked: the app read 2, the limit 3
    assert _drained(app, [b"x" * 150], []) == (413, 1, False)  # over in its last chunk: nothing to drain
    monkeypatch.setattr(middleware, "DRAIN_MAX_BYTES", 350)
    status, read, close = _drained(app, [b"x" * 100] * 10, declared)
    assert (status, close) == (413, True)  # past the bound: answered, and the connection closed
    assert read == 4  # 400 bytes > 350: it stopped reading there


# --- the model holder ---------------------------------------------------------------------------------------


def test_a_swap_leaves_requests_in_flight_with_their_model() -> None:
    holder = ModelHolder()
    first = LoadedModel(model=object(), meta=ModelMeta("m", "1"))  # type: ignore[arg-type]
    second = LoadedModel(model=object(), meta=ModelMeta("m", "2"))  # type: ignore[arg-type]
    assert holder.current() is None
    assert holder.swap(first) is None
    in_flight = holder.current()
    assert holder.swap(second) is first
    assert in_flight is first
    assert in_flight.version == "1"
    assert holder.current() is second
    assert holder.version == "2"


# --- the fleet board ----------------------------------------------------------------------------------------


def test_the_fleet_board_shares_targets_and_live_workers(tmp_path: Path) -> None:
    one, two = FleetBoard(tmp_path, "one", stale_after=0.5), FleetBoard(tmp_path, "two", stale_after=0.5)
    assert one.target() is None
    assert one.live_workers() == []
    published = one.publish_target("3")
    assert two.target() == published
    assert published.by == "one"
    one.heartbeat("3", None)
    two.heartbeat("2", "cannot download version 3")
    assert {(w.worker, w.version, w.error) for w in one.live_workers()} == {
        ("one", "3", None),
        ("two", "2", "cannot download version 3"),
    }
    two.leave()
    assert [w.worker for w in one.live_workers()] == ["one"]
    time.sleep(0.6)
    assert one.live_workers() == []  # a silent worker is gone after stale_after
    (tmp_path / "target.json").write_text("{not json")
    assert one.target() is None


# --- the serving image --------------------------------------------------------------------------------------


def _pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    return pins


def test_serving_requirements_are_a_pinned_subset_of_the_lock() -> None:
    serving = _pins(REPO_ROOT / "requirements-serving.txt")
    lock = _pins(REPO_ROOT / "constraints.txt")
    assert serving
    assert all(version for version in serving.values())
    assert {name: lock.get(name) for name in serving} == serving
    forbidden = {
        "pyspark",
        "pyspark-client",
        "py4j",
        "apache-airflow",
        "apache-airflow-core",
        "scikit-learn",
        "evidently",
        "dvc",
    }
    assert not forbidden & set(serving)


def test_the_serving_requirements_close_over_the_lock_without_spark_or_airflow() -> None:
    """Every package the serving requirements pull in (as installed here) is locked and JVM/Airflow-free."""
    lock = _pins(REPO_ROOT / "constraints.txt")
    todo = list(_pins(REPO_ROOT / "requirements-serving.txt"))
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:
            pytest.fail(f"{name} is not installed in this environment")
        for raw in requires:
            requirement = Requirement(raw)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            todo.append(canonicalize_name(requirement.name))
    assert sorted(seen - set(lock)) == []
    assert not {n for n in seen if n.startswith(("pyspark", "py4j", "apache-airflow"))}


def test_the_dockerfile_builds_a_jvm_free_non_root_server() -> None:
    text = (REPO_ROOT / "Dockerfile.serving").read_text()
    instructions = [line for line in text.splitlines() if line and not line.lstrip().startswith("#")]
    assert instructions[0].startswith("FROM python:3.11-slim")
    assert not re.search(r"java|jdk|jre|spark|airflow", "\n".join(instructions), re.IGNORECASE)
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users
    assert users[-1] not in ("root", "0")
    copies = [line for line in instructions if line.startswith("COPY ")]
    deps = next(i for i, line in enumerate(copies) if "requirements-serving.lock" in line)
    code = next(i for i, line in enumerate(copies) if "serving" in line.split()[1:-1] or " serving " in line)
    assert deps < code
    healthcheck = next(line for line in instructions if line.startswith("HEALTHCHECK"))
    full = text[text.index(healthcheck) :]
    assert "python" in full.split("\n\n")[0]
    assert "/health" in full.split("\n\n")[0]
    cmd = next(line for line in instructions if line.startswith("CMD"))
    assert "uvicorn --factory serving.app:create_app" in cmd
    assert "${LIFEBOAT_SERVING_WORKERS}" in cmd


def test_the_smoke_script_is_not_collected_by_pytest() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_script.py",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 5, result.stdout  # 5: no tests collected
    assert "no tests collected" in result.stdout
