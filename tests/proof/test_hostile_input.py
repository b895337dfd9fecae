"""Hand-written hostile payloads: each is a 4xx with a message naming the problem, never a 5xx, and the server
still answers /health afterwards.

This module covers what tests/serving/test_serving_input.py does not already:

=====================================  =====================================================================
already in test_serving_input.py       bad fields by name; NaN/Infinity/1e400 in /predict fields and NaN in a
                                       batch row; empty, blank, ``{``, ``[]``, ``null`` and string bodies on
                                       /predict; a 4300+ digit number; non-UTF-8 bytes; text/plain,
                                       urlencoded and missing Content-Type; a body over a small limit
                                       (declared and streamed); batches over a small row limit; bad CSV
                                       cells, headers and encodings; multipart without the ``file`` field
added here                             batches over the DEFAULT row limit (JSON and CSV) and a 10 MB batch;
                                       JSON nested 10,000 levels deep (top level and inside a field);
                                       10 MB bodies at the default limit (JSON, CSV, multipart; declared
                                       and streamed, in process and over real sockets); NaN/Infinity as
                                       the whole body and ±Infinity in batch rows; unicode (emoji, RTL,
                                       NUL, lone surrogates, zero-width and homoglyphs) in text and
                                       categorical fields, kept intact in the prediction log; XML and
                                       multipart on /predict, XML and a boundary-less multipart on
                                       /predict/batch; empty JSON batch; numbers, booleans and arrays as
                                       the whole body; duplicate keys (last wins); 100,000 unknown keys
=====================================  =====================================================================
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from lifeboat.monitoring.prediction_log import read_window
from lifeboat.registry.artifact import CANARY_PASSENGER
from serving.batch_input import MAX_LISTED_ERRORS
from tests.proof.proof_support import prediction_problem
from tests.serving.serving_support import LiveServer, StoreRef

pytestmark = pytest.mark.integration

GOOD: dict[str, Any] = dict(CANARY_PASSENGER)
JSON = {"Content-Type": "application/json"}
CSV = {"Content-Type": "text/csv"}
HEADER = "PassengerId,Pclass,Name,Sex,Age,SibSp,Parch,Ticket,Fare,Cabin,Embarked\n"
CSV_ROW = '1,3,"A, Mr. B",male,22,0,0,T,7.25,,S\n'
TEN_MB = 10 * 1024 * 1024
DEFAULT_MAX_ROWS = 1000
DEFAULT_MAX_BYTES = 2_000_000


def deeply_nested(levels: int, kind: str) -> bytes:
    """``[[[...]]]`` or ``{"a": {"a": ... 1}}``, ``levels`` deep."""
    if kind == "array":
        return b"[" * levels + b"]" * levels
    return b'{"a": ' * levels + b"1" + b"}" * levels


def in_a_field(field: str, raw: bytes) -> bytes:
    """GOOD as JSON text with ``field``'s value replaced by raw JSON text."""
    return json.dumps({**GOOD, field: "__X__"}).encode().replace(b'"__X__"', raw)


def batch_of(*rows_json: bytes) -> bytes:
    return b'{"passengers": [' + b", ".join(rows_json) + b"]}"


def message(response: Any) -> str:
    """The answer's text (every 4xx names its problem in the JSON ``detail``)."""
    return str(response.text)


def assert_4xx(response: Any, status: int | tuple[int, ...], *says: str) -> None:
    statuses = (status,) if isinstance(status, int) else status
    assert response.status_code in statuses, f"{response.status_code}: {response.text[:500]}"
    assert response.headers["content-type"].startswith("application/json")
    for words in says:
        assert words in message(response), f"{words!r} not in {response.text[:500]}"


@pytest.fixture
def served_default(served: Any) -> Iterator[Any]:
    """The module's in-process app (default limits); /health must answer after every test."""
    yield served
    assert served.get("/health").status_code == 200


# --- size ---------------------------------------------------------------------------------------------------


def test_batches_over_the_default_row_limit_are_refused_by_count(served_default: Any) -> None:
    rows = [GOOD] * (DEFAULT_MAX_ROWS + 1)
    assert_4xx(served_default.post("/predict/batch", json={"passengers": rows}), 422, "maximum is 1000")
    csv = (HEADER + CSV_ROW * (DEFAULT_MAX_ROWS + 1)).encode()
    assert_4xx(served_default.post("/predict/batch", content=csv, headers=CSV), 422, "maximum is 1000")
    exactly = served_default.post("/predict/batch", json={"passengers": rows[:DEFAULT_MAX_ROWS]})
    assert exactly.status_code == 200
    assert exactly.json()["count"] == DEFAULT_MAX_ROWS


def test_a_10_mb_batch_is_refused_by_size(served_default: Any) -> None:
    rows = [GOOD] * (TEN_MB // len(json.dumps(GOOD)) + 1)  # 10 MB of valid passengers
    body = json.dumps({"passengers": rows}).encode()
    assert len(body) >= TEN_MB
    assert_4xx(served_default.post("/predict/batch", content=body, headers=JSON), 413, str(DEFAULT_MAX_BYTES))


@pytest.mark.parametrize(
    ("path", "body", "headers", "files"),
    [
        ("/predict", in_a_field("Name", json.dumps("x" * TEN_MB).encode()), JSON, None),
        ("/predict/batch", (HEADER + CSV_ROW * (TEN_MB // len(CSV_ROW))).encode(), CSV, None),
        ("/predict/batch", None, {}, {"file": ("big.csv", b"x" * TEN_MB, "text/csv")}),
    ],
    ids=["json", "csv", "multipart"],
)
def test_10_mb_bodies_are_413_declared_or_streamed(
    served_default: Any, path: str, body: bytes | None, headers: dict[str, str], files: Any
) -> None:
    if files is not None:
        declared = served_default.post(path, files=files)
        assert_4xx(declared, 413, f"the limit is {DEFAULT_MAX_BYTES} bytes")
        return
    assert body is not None
    assert len(body) >= TEN_MB - len(CSV_ROW)
    assert_4xx(served_default.post(path, content=body, headers=headers), 413, f"{DEFAULT_MAX_BYTES} bytes")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while the body streams in
        for start in range(0, len(body), 256 * 1024):
            yield body[start : start + 256 * 1024]

    streamed = served_default.post(path, content=chunks(), headers=headers)
    assert_4xx(streamed, 413, f"{DEFAULT_MAX_BYTES} bytes")


def test_an_invalid_passenger_answer_is_bounded(served_default: Any) -> None:
    """100,000 unknown keys (1.3 MB) must not be answered with 100,000 listed errors (about 9 MB).

    Batches list at most MAX_LISTED_ERRORS errors; /predict must be bounded too (one more entry may say how
    many were left out), or a bad request is amplified several times over in the answer.
    """
    body = json.dumps({**GOOD, **{f"k{i}": 0 for i in range(100_000)}}).encode()
    assert len(body) < DEFAULT_MAX_BYTES
    response = served_default.post("/predict", content=body, headers=JSON)
    assert_4xx(response, 422, "extra_forbidden", "k0")
    assert len(response.json()["detail"]) <= MAX_LISTED_ERRORS + 1
    assert len(response.content) < len(body)


# --- structure ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize("where", ["whole body", "in a field"])
def test_json_nested_10000_levels_is_refused(served_default: Any, kind: str, where: str) -> None:
    nested = deeply_nested(10_000, kind)
    single = nested if where == "whole body" else in_a_field("Name", nested)
    batch = nested if where == "whole body" else batch_of(in_a_field("Name", nested))
    # /predict answers FastAPI's own 400 for a body it cannot parse; the batch parser names the recursion.
    assert_4xx(served_default.post("/predict", content=single, headers=JSON), (400, 422), "pars")
    assert_4xx(served_default.post("/predict/batch", content=batch, headers=JSON), 422, "not valid JSON")


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_or_infinity_as_the_whole_body_is_refused(served_default: Any, literal: bytes) -> None:
    assert_4xx(served_default.post("/predict", content=literal, headers=JSON), 422, "body")
    assert_4xx(served_default.post("/predict/batch", content=literal, headers=JSON), 422, '{\\"passengers\\"')


def test_infinity_in_batch_rows_is_refused_by_row_and_field(served_default: Any) -> None:
    body = batch_of(
        json.dumps(GOOD).encode(),
        in_a_field("Age", b"Infinity"),
        json.dumps(GOOD).encode(),
        in_a_field("Fare", b"-Infinity"),
        in_a_field("SibSp", b"Infinity"),
    )
    response = served_default.post("/predict/batch", content=body, headers=JSON)
    assert_4xx(response, 422, "nothing was scored")
    assert {(e["row"], e["field"]) for e in response.json()["errors"]} == {
        (1, "Age"),
        (3, "Fare"),
        (4, "SibSp"),
    }


@pytest.mark.parametrize(
    ("body", "batch_says"),
    [
        (b"42", '{\\"passengers\\"'),
        (b"true", '{\\"passengers\\"'),
        (b"null", '{\\"passengers\\"'),
        (json.dumps([GOOD]).encode(), '{\\"passengers\\"'),
        (b"", "empty"),
    ],
    ids=["number", "boolean", "null", "array", "empty"],
)
def test_bodies_that_are_not_a_passenger_object_are_422(
    served_default: Any, body: bytes, batch_says: str
) -> None:
    assert_4xx(served_default.post("/predict", content=body, headers=JSON), 422, '"loc":["body"]')
    assert_4xx(served_default.post("/predict/batch", content=body, headers=JSON), 422, batch_says)


def test_a_duplicate_key_takes_the_last_value_as_documented(served_default: Any) -> None:
    """``{"Pclass": 3, ..., "Pclass": 1}``: the API follows Python's json (and RFC 8259's common reading):
    the last value wins. Checked by comparing with the same passenger written once with the last value
    (refusing duplicates would cost a second JSON parse per request: ~30 us per passenger, ~13 ms per
    1,000-row batch)."""
    body = json.dumps(GOOD)[:-1].encode() + b', "Pclass": 1}'
    written_once = {**GOOD, "Pclass": 1}
    twice = served_default.post("/predict", content=body, headers=JSON)
    once = served_default.post("/predict", json=written_once)
    assert twice.status_code == once.status_code == 200
    assert twice.json()["probability_survive"] == once.json()["probability_survive"]
    batch = served_default.post("/predict/batch", content=batch_of(body, body), headers=JSON)
    assert batch.status_code == 200
    assert [r["probability_survive"] for r in batch.json()["predictions"]] == [
        once.json()["probability_survive"]
    ] * 2


# --- content types ------------------------------------------------------------------------------------------


def test_xml_and_multipart_are_415_on_predict(served_default: Any) -> None:
    xml = b"<passenger><Pclass>1</Pclass></passenger>"
    assert_4xx(
        served_default.post("/predict", content=xml, headers={"Content-Type": "application/xml"}),
        415,
        "application/json",
        "application/xml",
    )
    multipart = served_default.post(
        "/predict", files={"file": ("p.json", json.dumps(GOOD).encode(), "application/json")}
    )
    assert_4xx(multipart, 415, "multipart/form-data")
    csv = served_default.post("/predict", content=(HEADER + CSV_ROW).encode(), headers=CSV)
    assert_4xx(csv, 415, "text/csv")


def test_xml_and_broken_multipart_are_4xx_on_batches(served_default: Any) -> None:
    xml = b"<passengers><passenger/></passengers>"
    assert_4xx(
        served_default.post("/predict/batch", content=xml, headers={"Content-Type": "application/xml"}),
        415,
        "text/csv",
        "application/xml",
    )
    no_boundary = served_default.post(
        "/predict/batch", content=b"x", headers={"Content-Type": "multipart/form-data"}
    )
    assert_4xx(no_boundary, 400, "boundary")
    empty = served_default.post(
        "/predict/batch", content=b"--b--\r\n", headers={"Content-Type": "multipart/form-data; boundary=b"}
    )
    assert_4xx(empty, 422, "'file'")


# --- unicode ------------------------------------------------------------------------------------------------

TEXTS = {
    "emoji": "Ride, Mrs. Sally 👩\u200d🚀",
    "right-to-left": "\u202eylla S ,ediR\u202c مرحبا",
    "NUL": "Kelly\x00, Mr. James",
    "combining": "Zoe\u0308 Ame\u0301lie",
}


def test_unicode_text_is_scored_and_logged_intact(make_client: Any, champion_store: StoreRef) -> None:
    """Free-text fields take any Unicode text (a name is not a vocabulary); what is sent is what is logged."""
    client = make_client(champion_store.tracking_uri)
    for text in TEXTS.values():
        passenger = {**GOOD, "Name": text, "Ticket": text[:60], "Cabin": text[:60]}
        response = client.post("/predict", json=passenger)
        assert response.status_code == 200, response.text
        assert prediction_problem(response.json(), {champion_store.version}) is None
    batch = client.post("/predict/batch", json={"passengers": [{**GOOD, "Name": t} for t in TEXTS.values()]})
    assert batch.status_code == 200
    csv = ("\ufeff" + HEADER + "".join(f'1,3,"{t}",male,22,0,0,T,7.25,,S\n' for t in TEXTS.values())).encode()
    from_csv = client.post("/predict/batch", content=csv, headers=CSV)
    assert from_csv.status_code == 200, from_csv.text
    assert client.app.state.serving.prediction_log.flush()
    names = read_window(client.app.state.serving.settings.prediction_log_path)["Name"].tolist()
    assert names == list(TEXTS.values()) * 3


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("Sex", "male\x00"),
        ("Sex", "m\u0430le"),  # Cyrillic a
        ("Sex", "ma\u200ble"),  # zero-width space
        ("Sex", "\u202emale"),  # right-to-left override
        ("Embarked", "S\x00"),
        ("Embarked", "Ｓ"),  # fullwidth S
        ("Sex", "👩"),
    ],
)
def test_unicode_tricks_in_categorical_fields_are_422_naming_the_field(
    served_default: Any, field: str, value: str
) -> None:
    response = served_default.post("/predict", json={**GOOD, field: value})
    assert_4xx(response, 422, f'"{field}"')
    batch = served_default.post("/predict/batch", json={"passengers": [GOOD, {**GOOD, field: value}]})
    assert_4xx(batch, 422)
    assert [(e["row"], e["field"]) for e in batch.json()["errors"]] == [(1, field)]


@pytest.mark.parametrize("field", ["Name", "Sex", "Cabin"])
def test_lone_surrogates_are_422_naming_the_field(served_default: Any, field: str) -> None:
    """``"\\ud800"`` is legal JSON text but no Unicode character: it can be neither scored nor logged."""
    body = in_a_field(field, b'"\\ud800"')
    assert_4xx(served_default.post("/predict", content=body, headers=JSON), 422, f'"{field}"', "unicode")
    batch = served_default.post("/predict/batch", content=batch_of(body), headers=JSON)
    assert_4xx(batch, 422)
    assert {(e["row"], e["field"]) for e in batch.json()["errors"]} == {(0, field)}


def test_no_hostile_payload_produced_a_5xx(served: Any) -> None:
    """Runs last in this module: the module's app counted every request the tests above sent."""
    text = served.get("/metrics").text
    lines = [line for line in text.splitlines() if line.startswith("lifeboat_http_requests_total{")]
    assert any('status="413"' in line for line in lines)
    assert any('status="415"' in line for line in lines)
    assert [line for line in lines if 'status="5' in line] == []
    assert served.get("/health").status_code == 200


# --- over real sockets --------------------------------------------------------------------------------------


def test_hostile_payloads_over_real_sockets_leave_the_server_answering(live_champion: LiveServer) -> None:
    big = in_a_field("Name", json.dumps("x" * TEN_MB).encode())
    with httpx.Client(base_url=live_champion.url, timeout=60) as client:
        assert_4xx(client.post("/predict", content=big, headers=JSON), 413, str(DEFAULT_MAX_BYTES))
        streamed = client.post(
            "/predict",
            content=iter([big[i : i + 65536] for i in range(0, len(big), 65536)]),
            headers=JSON,
        )
        assert_4xx(streamed, 413, str(DEFAULT_MAX_BYTES))
        assert_4xx(client.post("/predict/batch", content=big, headers=JSON), 413)
        assert_4xx(client.post("/predict", content=deeply_nested(10_000, "array"), headers=JSON), (400, 422))
        assert_4xx(client.post("/predict/batch", content=deeply_nested(10_000, "object"), headers=JSON), 422)
        assert_4xx(client.post("/predict", content=b"NaN", headers=JSON), 422)
        assert_4xx(client.post("/predict", content=b"<p/>", headers={"Content-Type": "application/xml"}), 415)
        assert client.get("/health").status_code == 200
        answer = client.post("/predict", json=GOOD)
        assert answer.status_code == 200
    assert live_champion.process.poll() is None
    assert "Traceback" not in live_champion.log_text()
