"""Cross-cutting request handling: the request id and the access log."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import falcon

access = logging.getLogger("dialogd.access")
REQUEST_ID = "X-Request-Id"


class RequestContext:
    """Names every request (``X-Request-Id`` in and out) and, if asked, logs it."""

    def __init__(self, access_log: bool = False):
        self.access_log = access_log

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        given = req.get_header(REQUEST_ID)
        req.context.request_id = given[:128] if given else uuid.uuid4().hex
        req.context.cid = None
        req.context.started = time.perf_counter()

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict
    ) -> None:
        req.context.cid = params.get("cid")

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, ok: bool
    ) -> None:
        resp.set_header(REQUEST_ID, req.context.request_id)
        if self.access_log:
            access.info(
                "%s %s %s",
                req.method,
                req.path,
                resp.status_code,
                extra={
                    "request_id": req.context.request_id,
                    "cid": req.context.cid,
                    "method": req.method,
                    "path": req.path,
                    "status": resp.status_code,
                    "duration_ms": round(
                        (time.perf_counter() - req.context.started) * 1000, 3
                    ),
                    "remote": req.remote_addr,
                },
            )


def log_context(req: falcon.Request) -> dict[str, Any]:
    """The fields an error log line about ``req`` carries."""
    return {
        "request_id": getattr(req.context, "request_id", None),
        "cid": getattr(req.context, "cid", None),
        "method": req.method,
        "path": req.path,
    }
