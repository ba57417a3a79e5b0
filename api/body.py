"""Reading request bodies: bounded, strictly UTF-8, JSON whatever the content type.

The original server accepted JSON under any content type (Flask ``force=True``), and
its clients rely on that, so we do not dispatch on Content-Type.
"""

from __future__ import annotations

import json
from typing import Any

import falcon

from api.errors import APIError


def read_body(req: falcon.Request, limit: int) -> bytes:
    length = req.content_length
    if length is not None and length > limit:
        raise APIError(
            413, "PayloadTooLarge", f"the body is {length} bytes; the limit is {limit}"
        )
    data = req.bounded_stream.read(limit + 1)
    if len(data) > limit:
        raise APIError(413, "PayloadTooLarge", f"the body is over {limit} bytes")
    return data


def read_text(req: falcon.Request, limit: int) -> str:
    try:
        return read_body(req, limit).decode("utf-8")
    except UnicodeDecodeError as err:
        raise APIError(
            400, "InvalidEncoding", f"the body is not UTF-8 (byte {err.start})"
        ) from err


def read_json(req: falcon.Request, limit: int, *, required: bool = True) -> Any:
    text = read_text(req, limit)
    if not text.strip():
        if required:
            raise APIError(400, "InvalidJSON", "the body is empty; JSON expected")
        return None
    try:
        return json.loads(text)
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
