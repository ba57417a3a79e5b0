"""Cross-cutting request handling: request ids and the auth token.

The id is the client's (or nginx's) ``X-Request-Id``, else a new one; it goes back in
the response, where gunicorn's JSON access log reads it, and into every error log
line about the request.
"""

from __future__ import annotations

import hmac
from random import getrandbits
from typing import Any

import falcon

from api.errors import APIError

REQUEST_ID = "X-Request-Id"


class RequestContext:
    """Names every request (``X-Request-Id`` in and out) and notes its conversation."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        given = req.get_header(REQUEST_ID)
        # PERF: the process's generator (reseeded at fork), not a system call.
        req.context.request_id = given[:128] if given else f"{getrandbits(128):032x}"
        req.context.cid = None
        resp.set_header(REQUEST_ID, req.context.request_id)

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict
    ) -> None:
        req.context.cid = params.get("cid")


class TokenAuth:
    """``--auth-token``: every route but the health checks needs the token, as
    ``?token=`` (the original's way) or ``Authorization: Bearer <token>``."""

    OPEN = frozenset({"/", "/version", "/status"})

    def __init__(self, token: str):
        self.token = token.encode()

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.path in self.OPEN or req.method == "OPTIONS":
            return
        given = req.get_param("token") or ""
        header = req.get_header("Authorization") or ""
        if header.lower().startswith("bearer "):
            given = header[7:].strip()
        if not hmac.compare_digest(given.encode(), self.token):
            raise APIError(401, "NotAuthenticated", "User is not authenticated.")
