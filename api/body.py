"""Reading request bodies: bounded, strictly UTF-8, JSON whatever the content type.

The original server accepted JSON under any content type (Flask ``force=True``), and
its clients rely on that, so we do not dispatch on Content-Type.

JSON bodies are read with ``worker.jsonlimits``: what breaks a limit is a 400 that
names it.
"""

from __future__ import annotations

import json
from typing import Any

import falcon
from gunicorn.http.errors import ParseException

from api.errors import APIError
from worker import jsonlimits


def loads(text: str) -> Any:
    """``jsonlimits.loads``; a value beyond a limit is a 400 naming the limit, bad
    syntax stays ``json.JSONDecodeError``."""
    try:
        return jsonlimits.loads(text)
    except jsonlimits.JSONLimitError as err:
        raise APIError(
            400,
            "InvalidJSON",
            f"the JSON body has {err}",
            limit=err.limit,
            allowed=err.value,
        ) from None


def read_body(req: falcon.Request, limit: int) -> bytes:
    """The whole body, at most ``limit`` bytes; a chunked body (no Content-Length)
    is read through the server's de-chunking stream, within the same limit."""
    length = req.content_length
    if length is not None and length > limit:
        raise APIError(
            413, "PayloadTooLarge", f"the body is {length} bytes; the limit is {limit}"
        )
    stream = req.stream if length is None and is_chunked(req) else req.bounded_stream
    try:
        data = stream.read(limit + 1)
    except (OSError, ParseException) as err:  # a malformed chunked body
        raise APIError(400, "MalformedBody", f"the body cannot be read: {err}") from err
    if len(data) > limit:
        raise APIError(413, "PayloadTooLarge", f"the body is over {limit} bytes")
    return data


def is_chunked(req: falcon.Request) -> bool:
    return "chunked" in (req.get_header("Transfer-Encoding") or "").lower()


def utf8(data: bytes, what: str = "the body") -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise APIError(
            400, "InvalidEncoding", f"{what} is not UTF-8 (byte {err.start})"
        ) from err


def read_text(req: falcon.Request, limit: int) -> str:
    return utf8(read_body(req, limit))


def read_json(req: falcon.Request, limit: int, *, required: bool = True) -> Any:
    text = read_text(req, limit)
    if not text.strip():
        if required:
            raise APIError(400, "InvalidJSON", "the body is empty; JSON expected")
        return None
    try:
        return loads(text)
    except json.JSONDecodeError as err:
        raise APIError(
            400,
            "InvalidJSON",
            f"invalid JSON: {err.msg} (line {err.lineno}, column {err.colno})",
        ) from err


def json_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise APIError(400, "InvalidParameter", "the body must be a JSON object")
    return value
