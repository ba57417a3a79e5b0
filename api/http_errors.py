"""Errors that gunicorn answers itself, in the API's JSON error shape.

gunicorn refuses some requests before the app sees them (a request line over
``limit_request_line``, a malformed request line or header, a bad chunk) and
writes an HTML page for them. ``JsonErrors`` is a mixin for a gunicorn worker
class that keeps gunicorn's decision (status, log lines, access log) and only
writes the answer as JSON. This module imports nothing of the app: the gunicorn
settings file loads it.
"""

from __future__ import annotations

import json
import re
from http import HTTPStatus
from typing import Any

from gunicorn import util

from worker.version import __version__

#: statuses whose reason is not their phrase in CamelCase
STATUS_REASONS = {413: "PayloadTooLarge", 500: "ServerError"}


def status_reason(code: int) -> str:
    """A status's one spelling as a ``reason``: its phrase in CamelCase
    (``NotFound``, ``MethodNotAllowed``, ``RequestURITooLong``)."""
    if code in STATUS_REASONS:
        return STATUS_REASONS[code]
    words = re.split(r"[\s-]+", _phrase(code))
    return "".join(word[:1].upper() + word[1:] for word in words) or "Error"


def _phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return ""


def error_response(code: int, message: str) -> bytes:
    """A whole HTTP/1.1 response (the connection closes after it) with the JSON
    error body of ``api.errors.error_body``."""
    body = json.dumps(
        {
            "version": __version__,
            "status": "failure",
            "reason": status_reason(code),
            "message": message,
            "details": {},
            "help": None,
            "code": code,
        }
    ).encode()
    head = (
        f"HTTP/1.1 {code} {_phrase(code)}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class _Captured:
    """The client socket, except that what gunicorn writes is kept, not sent."""

    def __init__(self, sock: Any):
        self._sock = sock
        self.data = bytearray()

    def sendall(self, data: bytes) -> None:
        self.data += data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _status(response: bytes | bytearray) -> int | None:
    """The status code of the response gunicorn wrote (``HTTP/1.1 414 ...``)."""
    parts = bytes(response[:32]).split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


class JsonErrors:
    """Mixin for a gunicorn worker: its own error answers in the JSON shape."""

    def handle_error(self, req: Any, client: Any, addr: Any, exc: Exception) -> None:
        captured = _Captured(client)
        super().handle_error(req, captured, addr, exc)  # type: ignore[misc]
        code = _status(captured.data)
        if code is None:
            if captured.data:
                util.write_nonblock(client, bytes(captured.data))
            return
        message = str(exc) if code < 500 else "internal server error; see the log"
        try:
            util.write_nonblock(client, error_response(code, message or str(code)))
        except Exception:
            return
