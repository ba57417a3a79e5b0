"""Cross-cutting request handling: every request gets an id.

The id is the client's (or nginx's) ``X-Request-Id``, else a new one; it goes back in
the response, where gunicorn's JSON access log reads it, and into every error log
line about the request.
"""

from __future__ import annotations

import uuid
from typing import Any

import falcon

REQUEST_ID = "X-Request-Id"


class RequestContext:
    """Names every request (``X-Request-Id`` in and out) and notes its conversation."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        given = req.get_header(REQUEST_ID)
        req.context.request_id = given[:128] if given else uuid.uuid4().hex
        req.context.cid = None
        resp.set_header(REQUEST_ID, req.context.request_id)

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict
    ) -> None:
        req.context.cid = params.get("cid")


def log_context(req: falcon.Request) -> dict[str, Any]:
    """The fields an error log line about ``req`` carries."""
    return {
        "request_id": getattr(req.context, "request_id", None),
        "cid": getattr(req.context, "cid", None),
        "method": req.method,
        "path": req.path,
    }
