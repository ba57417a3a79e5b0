"""``/conversations/{cid}/...``: the parse/continue loop and the tracker endpoints."""

from __future__ import annotations

import math
from typing import Any

import falcon

from api.body import json_object
from api.body import read_json
from api.errors import APIError
from worker.turn import KEY_HEADER
from worker.turn import Engine
from worker.turn import Turn

MODEL_HEADER = "X-Model-Fingerprint"


class _Base:
    def __init__(self, engine: Engine, max_body: int):
        self.engine = engine
        self.max_body = max_body

    def turn(self, resp: falcon.Response) -> Turn:
        """The request's one model set, named in a response header."""
        turn = self.engine.turn()
        resp.set_header(MODEL_HEADER, turn.fingerprint)
        return turn


def query_text(value: Any, parameter: str = "query") -> str:
    if value is None:
        raise APIError(
            400,
            "InvalidParameter",
            "Invalid parse parameter specified.",
            parameter=parameter,
            **{"in": "body"},
        )
    if not isinstance(value, str):
        raise APIError(
            400,
            "InvalidParameter",
            f"'{parameter}' must be a string",
            parameter=parameter,
            **{"in": "body"},
        )
    return value


def until(req: falcon.Request) -> float | None:
    """``until``: a timestamp, finite."""
    value = req.get_param_as_float("until")
    if value is not None and not math.isfinite(value):
        raise APIError(
            400,
            "InvalidParameter",
            "'until' must be a finite number of seconds",
            parameter="until",
            **{"in": "query"},
        )
    return value


def include_events(req: falcon.Request) -> str:
    """``include_events``, with the 0.9-era ``events``/``ignore_restarts`` flags."""
    verbosity = "AFTER_RESTART"
    if req.get_param("ignore_restarts", default="").lower() == "true":
        verbosity = "ALL"
    if req.get_param("events", default="true").lower() != "true":
        verbosity = "NONE"
    return req.get_param("include_events") or verbosity


class Parse(_Base):
    """Log the user's message and answer the next action (not logged unless listen)."""

    #: the legacy GET logs a message: no HEAD for it
    GET_WRITES = True

    def on_get(self, req: falcon.Request, resp: falcon.Response, cid: str) -> None:
        text = req.get_param("query") or req.get_param("q")
        key = req.get_header(KEY_HEADER)
        resp.media = self.turn(resp).parse(cid, query_text(text), key)

    def on_post(self, req: falcon.Request, resp: falcon.Response, cid: str) -> None:
        body = json_object(read_json(req, self.max_body))
        text = body.get("query", body.get("q"))
        key = req.get_header(KEY_HEADER)
        resp.media = self.turn(resp).parse(cid, query_text(text), key)


class Continue(_Base):
    """Log the action the client ran, with its events, and answer the next action."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, cid: str) -> None:
        body = json_object(read_json(req, self.max_body, required=False) or {})
        resp.media = self.turn(resp).continue_(
            cid,
            body.get("executed_action"),
            body.get("events", []),
            req.get_header(KEY_HEADER),
        )


class TrackerResource(_Base):
    """``GET`` the tracker; ``PUT`` (0.8-era path) replaces its events."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, cid: str) -> None:
        resp.media = self.turn(resp).tracker(cid, include_events(req), until(req))

    def on_put(self, req: falcon.Request, resp: falcon.Response, cid: str) -> None:
        items = read_json(req, self.max_body)
        resp.media = self.turn(resp).replace_events(cid, items, include_events(req))


class TrackerEvents(_Base):
    """``POST`` appends one event or a list; ``PUT`` replaces all events."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, cid: str) -> None:
        body = read_json(req, self.max_body)
        items = body if isinstance(body, list) else [body]
        resp.media = self.turn(resp).append_events(
            cid, items, include_events(req), req.get_header(KEY_HEADER)
        )

    def on_put(self, req: falcon.Request, resp: falcon.Response, cid: str) -> None:
        items = read_json(req, self.max_body)
        resp.media = self.turn(resp).replace_events(cid, items, include_events(req))


#: ``GET /conversations?limit=``: the default and the most a page may ask for
PAGE_LIMIT = 100
MAX_PAGE_LIMIT = 1000


class ConversationList(_Base):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Every id (as the original server); with ``limit`` or ``cursor``, one
        page: ``{"conversations": [...], "next_cursor": ...}``."""
        cursor = req.get_param("cursor")
        limit = req.get_param_as_int("limit", min_value=1, max_value=MAX_PAGE_LIMIT)
        if cursor is None and limit is None:
            resp.media = self.engine.conversation_ids()
            return
        resp.media = self.engine.conversation_page(cursor, limit or PAGE_LIMIT)
