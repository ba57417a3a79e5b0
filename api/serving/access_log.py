"""The JSON access log: one object per request, with the request id (the
X-Request-Id that nginx or the client sent, else the one dialogd made up: it is read
from the response) and the conversation id, so one turn can be followed from the load
balancer to Redis."""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from typing import Any

from gunicorn import glogging

from api.logs import redact_access_atoms

ACCESS_LOG_FORMAT = (
    '{"time": "%(time)s", "remote": "%(h)s", '
    '"forwarded_for": "%({x-forwarded-for}i)s", "request_id": "%({x-request-id}o)s", '
    '"method": "%(m)s", "path": "%(U)s", '
    '"query": "%(q)s", "status": %(s)s, "bytes": %(bytes)s, "duration_us": %(D)s, '
    '"conversation_id": "%(conversation_id)s", "pid": %(pid)s}'
)

_CONVERSATION_PATH = re.compile(r"^/conversations?/([^/]+)/")


def _json_text(value: str) -> str:
    """``value`` escaped to sit between double quotes in JSON."""
    return json.dumps(value, ensure_ascii=False)[1:-1]


class JsonAtoms(glogging.SafeAtoms):
    """gunicorn's atoms, every string escaped for JSON (gunicorn's own escaping only
    handles double quotes, so a backslash or a control character in a path or a header
    would break the line). A missing header is still ``-``."""

    def __init__(self, atoms: dict[str, Any]) -> None:
        dict.__init__(self)
        for key, value in atoms.items():
            self[key] = _json_text(value) if isinstance(value, str) else value


class JsonAccessLogger(glogging.Logger):
    """gunicorn's logger with JSON-safe atoms, the path (``U``) as UTF-8, and four more
    atoms: ``time`` (ISO 8601, UTC, milliseconds), ``bytes`` (always a number),
    ``pid`` and ``conversation_id``."""

    atoms_wrapper_class = JsonAtoms

    def _compute_access_log_enabled(self) -> bool:
        # NOTE: gunicorn counts a ``logconfig_dict`` as "access log on", and
        # ``dialogd serve`` always passes one (for the JSON error log); the access log
        # is on only when ``accesslog`` names a destination. Otherwise every request
        # would build its atoms for nothing (~4% of a turn's CPU).
        return bool(self.cfg.accesslog)

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict:
        atoms = super().atoms(resp, req, environ, request_time)
        now = time.time()
        atoms["time"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + (
            f".{int(now % 1 * 1000):03d}Z"
        )
        sent = getattr(resp, "sent", None)
        atoms["bytes"] = sent if isinstance(sent, int) else 0
        atoms["pid"] = os.getpid()
        # WSGI hands the path over as latin-1 text of the raw bytes: log it as UTF-8.
        path = environ.get("PATH_INFO") or ""
        with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
            path = path.encode("latin-1").decode("utf-8")
        atoms["U"] = path
        match = _CONVERSATION_PATH.match(path)
        atoms["conversation_id"] = match.group(1) if match else ""
        return redact_access_atoms(atoms)
