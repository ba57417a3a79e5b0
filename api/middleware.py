"""Cross-cutting request handling: request ids, authentication and authorisation.

The id is the client's (or nginx's) ``X-Request-Id``, else a new one; it goes back in
the response, where gunicorn's JSON access log reads it, and into every error log
line about the request.
"""

from __future__ import annotations

import hmac
from random import getrandbits
from typing import Any
from typing import NamedTuple

import falcon
import jwt
from jwt.algorithms import get_default_algorithms

from api.errors import APIError
from worker.errors import InvalidConfig

REQUEST_ID = "X-Request-Id"


class RequestContext:
    """Names every request (``X-Request-Id`` in and out) and notes its conversation."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        given = req.get_header(REQUEST_ID)
        # PERF: the process's generator (reseeded at fork), not a system call.
        req.context.request_id = given[:128] if given else f"{getrandbits(128):032x}"
        req.context.cid = None
        # Without authentication every caller may see everything; ``Auth`` narrows it.
        req.context.privileged = True
        resp.set_header(REQUEST_ID, req.context.request_id)

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict
    ) -> None:
        req.context.cid = params.get("cid")


class Principal(NamedTuple):
    """Who a request's credentials name: ``admin`` (the static token, or a JWT with
    role admin) may do everything; ``user`` only its own conversation."""

    role: str | None
    username: str | None = None

    @property
    def admin(self) -> bool:
        return self.role == "admin"


ADMIN = Principal("admin")


class Auth:
    """``--auth-token`` and ``--jwt-secret``, with Rasa's semantics: the static token
    (``?token=`` or ``Authorization: Bearer``) and a JWT of role ``admin`` may reach
    every route; a JWT of role ``user`` only the routes of the conversation named
    ``user.username`` in its payload (or a channel's body ``sender``). Missing or
    bad credentials are a 401, good ones that do not reach the route a 403. ``/``,
    ``/version``, ``/openapi.json`` and CORS preflights are open, and so are
    resources marked ``AUTH_OPEN`` (the inspector's static page); ``/status`` is
    open too (load balancers probe it), but shows its details to an admin only
    (``req.context.privileged``)."""

    OPEN = frozenset({"/", "/version", "/openapi.json"})
    STATUS = "/status"

    def __init__(
        self,
        token: str | None = None,
        jwt_secret: str | None = None,
        jwt_method: str = "HS256",
    ):
        self.token = token.encode() if token else None
        self.jwt_secret = jwt_secret or None
        self.jwt_method = jwt_method
        # NOTE: "none" would accept unsigned tokens; an algorithm PyJWT cannot run
        # (RS256 without ``cryptography``) would fail every request.
        if self.jwt_secret and (
            jwt_method not in get_default_algorithms() or jwt_method == "none"
        ):
            raise InvalidConfig(f"unsupported --jwt-method {jwt_method!r}")

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.privileged = False

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict
    ) -> None:
        if (
            req.path in self.OPEN
            or req.method == "OPTIONS"
            or getattr(resource, "AUTH_OPEN", False)
        ):
            return
        principal = self.authenticate(req)
        req.context.privileged = principal is not None and principal.admin
        if req.path == self.STATUS or req.context.privileged:
            return
        if principal is None:
            raise APIError(401, "NotAuthenticated", "User is not authenticated.")
        if principal.role == "user" and getattr(
            resource, "CONVERSATION_IN_BODY", False
        ):
            # NOTE: the channel resource checks the body's sender against it.
            req.context.only_conversation = principal.username or ""
            return
        cid = params.get("cid")
        if principal.role != "user" or cid is None or cid != principal.username:
            raise APIError(403, "NotAuthorized", "User has insufficient permissions.")

    def authenticate(self, req: falcon.Request) -> Principal | None:
        """The request's principal; None without credentials; a 401 for bad ones."""
        query = req.get_param("token")
        header = req.get_header("Authorization") or ""
        bearer = header[7:].strip() if header[:7].lower() == "bearer " else None
        if self.token is not None and any(
            given is not None and hmac.compare_digest(given.encode(), self.token)
            for given in (query, bearer)
        ):
            return ADMIN
        if self.jwt_secret and bearer:
            return self._jwt_principal(bearer)
        if query is not None or bearer is not None:
            raise APIError(401, "NotAuthenticated", "User is not authenticated.")
        return None

    def _jwt_principal(self, token: str) -> Principal:
        try:
            payload = jwt.decode(token, self.jwt_secret, algorithms=[self.jwt_method])
        except jwt.InvalidTokenError as err:
            raise APIError(
                401, "NotAuthenticated", f"User is not authenticated: {err}."
            ) from err
        user = payload.get("user")
        if not isinstance(user, dict):
            return Principal(None)
        role, username = user.get("role"), user.get("username")
        return Principal(
            role if isinstance(role, str) else None,
            username if isinstance(username, str) else None,
        )
