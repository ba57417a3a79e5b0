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

#: LogRecord attributes that are not ours to copy into the JSON object.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


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
