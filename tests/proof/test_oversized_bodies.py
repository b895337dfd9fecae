"""An oversized body gets its 413, even from clients that send the whole body before they read the answer
(issue 14, finding 2): Python's urllib and requests, and many SDKs, do that. Answering at once and closing
the connection with the body unread made the kernel reset it, and those clients saw "connection reset"
instead of the 413. The server now reads and discards the rest of the body, up to a bound, before answering.
Against a real uvicorn worker serving the champion, over loopback sockets."""

from __future__ import annotations

import json
import select
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import httpx
import pytest
import requests

from serving.middleware import DRAIN_MAX_BYTES
from tests.serving.serving_support import LiveServer

pytestmark = pytest.mark.integration

TWENTY_MB = 20 * 1024 * 1024
LIMIT = "request body too large: the limit is 2000000 bytes"


def chunks(total: int, size: int = 1024 * 1024) -> Iterator[bytes]:
    """``total`` bytes of a JSON-looking body, in pieces (urllib sends an iterable chunked)."""
    sent = 0
    while sent < total:
        piece = b" " * min(size, total - sent)
        sent += len(piece)
        yield piece


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/predict", "declared"),
        ("/predict/batch", "declared"),
        ("/v1/datasets/titanic/predict/batch", "declared"),
        ("/predict/batch", "chunked"),
    ],
)
def test_urllib_with_a_20_mb_body_reads_the_413(live_champion: LiveServer, path: str, body: str) -> None:
    """urllib sends a bytes body with its Content-Length, an iterable one chunked; either way it sends it all
    before it reads the answer."""
    headers = {"Content-Type": "application/json"}
    if body == "chunked":
        headers["Transfer-Encoding"] = "chunked"
    data = b" " * TWENTY_MB if body == "declared" else chunks(TWENTY_MB)
    request = urllib.request.Request(f"{live_champion.url}{path}", data=data, headers=headers, method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=60)
    assert caught.value.code == 413
    assert json.loads(caught.value.read()) == {"detail": LIMIT}


def test_requests_reads_the_413_and_the_connection_is_reused(live_champion: LiveServer) -> None:
    with requests.Session() as session:
        answer = session.post(
            f"{live_champion.url}/predict/batch",
            data=b"x" * TWENTY_MB,
            headers={"Content-Type": "text/csv"},
            timeout=60,
        )
        assert answer.status_code == 413
        assert answer.json() == {"detail": LIMIT}
        # The body was read to its end, so the connection stays usable for the next request.
        assert session.get(f"{live_champion.url}/health", timeout=10).status_code == 200


def test_a_body_beyond_the_drain_bound_is_answered_and_the_connection_closed(
    live_champion: LiveServer,
) -> None:
    """Past DRAIN_MAX_BYTES the server stops reading: it answers 413 with `Connection: close` (a client still
    sending then sees the reset: the bound keeps a hostile upload from holding a worker). A raw socket reads
    the answer while it sends."""
    host, port = live_champion.url.removeprefix("http://").split(":")
    declared = DRAIN_MAX_BYTES + TWENTY_MB
    answer = b""
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(
            f"POST /predict/batch HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {declared}\r\n\r\n".encode()
        )
        piece, sent = b" " * 65536, 0
        try:
            while sent < declared and not answer:
                if select.select([sock], [], [], 0)[0]:
                    answer = sock.recv(65536)
                    break
                sent += sock.send(piece[: declared - sent])
        except (BrokenPipeError, ConnectionResetError):
            pass
        deadline = time.monotonic() + 30
        while b"\r\n\r\n" not in answer and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 "), answer[:300]
    assert b"connection: close" in head.lower()
    assert LIMIT.encode() in body
    assert DRAIN_MAX_BYTES <= sent < declared  # it read the bound's worth, not everything
    assert httpx.get(f"{live_champion.url}/health", timeout=10).status_code == 200
