"""Request ids: every scored row gets one, in the answer, the ``X-Request-ID`` header and the prediction log.

A client may send its own ``X-Request-ID``. A *valid* one (:data:`VALID_ID`: 1-128 characters of
``A-Z a-z 0-9 . _ : -``, which fits any header, log line or URL unescaped) is kept; an invalid one is
replaced by a generated id (uuid4 hex), never refused: the header is tracing metadata, and proxies such as
Heroku's router or Envoy replace a malformed one rather than fail the request. A single row's id is the
request's id; row ``i`` of a batch (0-based, as the batch errors count rows) gets ``<id>-<i>``, so every
logged row has its own id for joining late labels.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from starlette.requests import Request

#: The header that carries the request's id, both ways.
HEADER = "X-Request-ID"
#: What a client-sent id must look like to be kept.
VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
#: The OpenAPI description of the header (request and response).
DESCRIPTION = (
    "The request's id: a client-sent `X-Request-ID` of 1-128 characters of `A-Za-z0-9._:-` is kept, "
    "anything else is replaced by a generated one (uuid4 hex). A batch's rows get `<id>-<row>` (row from 0)."
)


def new_id() -> str:
    """A generated request id (uuid4 hex, 32 characters)."""
    return uuid.uuid4().hex


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
