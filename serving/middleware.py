"""Pure ASGI middleware: request body size limit and request metrics.

Pure ASGI (not ``BaseHTTPMiddleware``) so that streaming bodies can be counted as they arrive and nothing
buffers a whole request before the limit is checked.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.metrics import ServingMetrics

logger = logging.getLogger(__name__)


class RequestBodyTooLarge(Exception):  # noqa: N818 (reads as the condition)
    """Raised inside the app when the streamed body passes the limit (the middleware answers 413)."""


#: How much of an oversized body is read and discarded before its 413, and for how long (a lingering close, as
#: nginx does): clients that send the whole body before reading the answer (urllib, requests, many SDKs) see
#: a connection reset instead of the 413 when the server closes with their body unread. Past either bound
#: the server answers anyway and closes the connection.
DRAIN_MAX_BYTES = 32 * 1024 * 1024
DRAIN_SECONDS = 15.0


def _json_response(status: int, detail: str, close: bool = True) -> tuple[Message, Message]:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    start: Message = {"type": "http.response.start", "status": status, "headers": headers}
    return start, {"type": "http.response.body", "body": body}


async def _drain(receive: Receive, already: int) -> bool:
    """Read and discard the rest of the request body (``already`` bytes of it were read): True when it was
    read to its end within :data:`DRAIN_MAX_BYTES` and :data:`DRAIN_SECONDS`."""
    total = already
    with anyio.move_on_after(DRAIN_SECONDS):
        while total <= DRAIN_MAX_BYTES:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return False
            total += len(message.get("body", b""))
            if not message.get("more_body", False):
                return total <= DRAIN_MAX_BYTES
    return False


class BodySizeLimit:
    """Answer 413 when a request body is larger than ``max_bytes``.

    Checks ``Content-Length`` before the app runs, and counts the bytes of the streamed body (chunked
    requests, or a client that sends more than it declared); once over the limit, whatever the app would
    have answered is replaced by the 413.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> str:
        return f"request body too large: the limit is {self.max_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0:
                    await self._answer(send, 400, "invalid Content-Length header")
                    return
                if declared > self.max_bytes:
                    await self._refuse(receive, send, 0, body_done=False)
                    return
        received = 0
        exceeded = False
        response_started = False

        body_done = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded, body_done
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > self.max_bytes:
                    exceeded = True
                    raise RequestBodyTooLarge(self._too_large())
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if exceeded:
                if message["type"] == "http.response.start" and not response_started:
                    response_started = True
                    await self._refuse(receive, send, received, body_done)
                return  # drop the app's own answer to an oversized request
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except RequestBodyTooLarge:
            if not response_started:
                await self._refuse(receive, send, received, body_done)

    async def _refuse(self, receive: Receive, send: Send, already: int, body_done: bool = False) -> None:
        """The 413, once the rest of the body is read (bounded): the connection stays usable when it was."""
        complete = body_done or await _drain(receive, already)
        await self._answer(send, 413, self._too_large(), close=not complete)

    @staticmethod
    async def _answer(send: Send, status: int, detail: str, close: bool = True) -> None:
        start, body = _json_response(status, detail, close)
        await send(start)
        await send(body)


class RequestMetrics:
    """Count requests and time them by endpoint (the route's path template), method and status.

    The latency ends when the last byte of the answer is sent (work done after answering, such as a
    background task, is not counted).

    Paths that match no route are counted as ``unmatched`` (so scanners cannot create unbounded label sets).
    """

    def __init__(
        self, app: ASGIApp, metrics: ServingMetrics, known_paths: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.known_paths = known_paths
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}  # labels -> (counter, histogram)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        answered: float | None = None
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                answered = time.perf_counter()  # background work after the answer is not its latency

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route: Any = scope.get("route")
            endpoint = getattr(route, "path", None)
            if endpoint is None:  # answered before routing (e.g. 413): label known paths, lump the rest
                path = scope.get("path", "")
                endpoint = path if path in self.known_paths else "unmatched"
            finished = answered if answered is not None else time.perf_counter()
            key = (endpoint, scope.get("method", ""), str(status))
            children = self._children.get(key)
            if children is None:  # resolving label values costs more than the observation itself
                labels = dict(zip(("endpoint", "method", "status"), key, strict=True))
                children = (self.metrics.requests.labels(**labels), self.metrics.latency.labels(**labels))
                self._children[key] = children
            children[0].inc()
            children[1].observe(finished - started)
