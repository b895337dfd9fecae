"""A tiny HTTP server on loopback for client-side tests: canned answers per (method, path), requests recorded.

It stands in for a remote service only where the test is about how lifeboat's client reacts (status codes,
timeouts, payloads); the real servers are exercised by the integration tests.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = tuple[int, Any]


@dataclass
class Stub:
    """Routes and the requests received (method, path, headers, parsed JSON body)."""

    routes: dict[tuple[str, str], Callable[[], Answer]] = field(default_factory=dict)
    received: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def answer(self, method: str, path: str, status: int, body: Any) -> None:
        """Always answer ``status`` + JSON ``body`` to ``method path``."""
        self.routes[(method, path)] = lambda: (status, body)


@contextmanager
def http_stub() -> Iterator[Stub]:
    """Run a :class:`Stub` on a free loopback port for the duration of the block."""
    stub = Stub()

    class Handler(BaseHTTPRequestHandler):
        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            stub.received.append(
                {"method": method, "path": self.path, "headers": dict(self.headers), "json": body}
            )
            route = stub.routes.get((method, self.path))
            status, answer = route() if route else (404, {"detail": "no such route"})
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
