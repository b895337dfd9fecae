"""Request ids: every scored row gets one, in the answer, the ``X-Request-ID`` header and the prediction log.

A client may send its own ``X-Request-ID``. A *valid* one (:data:`VALID_ID`: 1-128 characters of
``A-Z a-z 0-9 . _ : -``, which fits any header, log line or URL unescaped) is kept; an invalid one is
replaced by a generated id, never refused: the header is tracing metadata, and proxies such as Heroku's
router or Envoy replace a malformed one rather than fail the request. A single row's id is the
request's id; row ``i`` of a batch (0-based, as the batch errors count rows) gets ``<id>-<i>``, so every
logged row has its own id for joining late labels.

Generated ids are UUIDv7 (RFC 9562) as 32 hex digits: unique like a uuid4 (74 random bits), but they begin
with the time in milliseconds, so the prediction log's ``request_id`` index grows at its end like its
``logged_at`` index. Random uuid4 keys land on random pages of that index, so every group commit rewrites
pages all over it: on 150k single-row appends, the log's CPU per row was 29 us with uuid4 ids, 17 us with
UUIDv7 ids, 13 us without ids.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from starlette.requests import Request

#: The header that carries the request's id, both ways.
HEADER = "X-Request-ID"
#: What a client-sent id must look like to be kept.
VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
#: The OpenAPI description of the header (request and response).
DESCRIPTION = (
    "The request's id: a client-sent `X-Request-ID` of 1-128 characters of `A-Za-z0-9._:-` is kept, "
    "anything else is replaced by a generated one (UUIDv7, 32 hex digits). A batch's rows get `<id>-<row>` "
    "(row from 0)."
)


#: UUIDv7's version and variant bits, set over the time and the random bits.
_VERSION_7 = (0x7 << 76) | (0x2 << 62)
_NOT_VERSION = ~((0xF << 76) | (0x3 << 62))


def new_id() -> str:
    """A generated request id: a UUIDv7 (48-bit Unix time in ms, then random bits) as 32 hex digits."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10))
    return f"{value & _NOT_VERSION | _VERSION_7:032x}"


def is_valid(value: str | None) -> bool:
    """Whether ``value`` is an id a client may choose (see :data:`VALID_ID`)."""
    return value is not None and VALID_ID.fullmatch(value) is not None


def request_id(request: Request) -> str:
    """The request's id: its valid ``X-Request-ID``, else a generated one."""
    sent = request.headers.get(HEADER)
    return sent if sent is not None and VALID_ID.fullmatch(sent) else new_id()


def row_ids(base: str, count: int) -> list[str]:
    """The ids of a batch's rows: ``<base>-0`` ... ``<base>-<count-1>``."""
    prefix = base + "-"
    return [prefix + str(i) for i in range(count)]


#: The header as an OpenAPI parameter of the prediction routes.
OPENAPI_PARAMETER: dict[str, Any] = {
    "name": HEADER,
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": DESCRIPTION,
}
#: The header as an OpenAPI response header of the prediction routes' 200.
RESPONSE_HEADERS: dict[str, Any] = {HEADER: {"schema": {"type": "string"}, "description": DESCRIPTION}}


def openapi_extra(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A route's ``openapi_extra`` with the header parameter added."""
    extra = dict(extra or {})
    extra["parameters"] = [*extra.get("parameters", []), OPENAPI_PARAMETER]
    return extra
