"""Structured logs: one JSON object per line, for gunicorn's own messages too.

Every record of a request carries its ``request_id`` (the client's ``X-Request-Id``
or a new one) and the conversation id ``cid`` when there is one, so the lines of
one turn can be found across instances.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import unquote_plus

#: LogRecord attributes that are not ours to copy into the JSON object.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


#: query parameters that are credentials (``?token=``, as the original took it)
SECRET_PARAMS = frozenset({"token"})
#: request headers that are credentials, as gunicorn's access log atoms name them
SECRET_HEADER_ATOMS = ("{authorization}i", "{cookie}i")
REDACTED = "[REDACTED]"


def redact_query(query: str) -> str:
    """``query`` with the value of every credential parameter replaced. Names are
    compared decoded (``%74oken=`` is the token to the app too) and without case."""
    parts = query.split("&")
    for i, part in enumerate(parts):
        name, sep, _ = part.partition("=")
        if sep and unquote_plus(name).strip().lower() in SECRET_PARAMS:
            parts[i] = f"{name}={REDACTED}"
    return "&".join(parts)


def redact_access_atoms(atoms: dict[str, Any]) -> dict[str, Any]:
    """gunicorn access log atoms without credentials: the query (``q``), the
    request line (``r``) and the credential headers. gunicorn's logger calls this
    (api/serving/access_log.py), so no log format can print a token."""
    query = atoms.get("q")
    if isinstance(query, str) and query:
        atoms["q"] = redact_query(query)
    line = atoms.get("r")
    if isinstance(line, str) and "?" in line:
        head, _, rest = line.partition("?")
        query, space, version = rest.rpartition(" ")
        if not space:  # no HTTP version: the rest is all query
            query, version = version, ""
        atoms["r"] = f"{head}?{redact_query(query)}{space}{version}"
    for key in SECRET_HEADER_ATOMS:
        if atoms.get(key) not in (None, "-"):
            atoms[key] = REDACTED
    return atoms


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        out.update(
            (key, value)
            for key, value in record.__dict__.items()
            if key not in _STANDARD and not key.startswith("_")
        )
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def logging_config(log_file: str | None, level: str = "INFO") -> dict[str, Any]:
    """A ``dictConfig`` for our loggers and gunicorn's (``logconfig_dict``)."""
    handler: dict[str, Any] = (
        {"class": "logging.FileHandler", "filename": log_file}
        if log_file
        else {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
    )
    handler["formatter"] = "json"
    logger = {"handlers": ["main"], "level": level, "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JSONFormatter}},
        "handlers": {"main": handler},
        "root": {"handlers": ["main"], "level": level},
        "loggers": {
            "dialogd": logger,
            # NOTE: gunicorn.access is left alone: its lines are JSON already
            # (api/serving/access_log.py) and go to stdout.
            "gunicorn.error": logger,
        },
    }
