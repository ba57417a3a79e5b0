"""The server runs the bot: the REST and callback channels and the conversation
routes of Rasa's server-side loop (``/messages``, ``/trigger_intent``,
``/execute``, ``/predict``, ``/respond``, ``/story``)."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Any

import falcon
import orjson

from api.body import json_object
from api.body import read_json
from api.errors import APIError
from api.request import check_id
from api.resources.conversations import MODEL_HEADER
from api.resources.conversations import include_events
from api.resources.conversations import until
from worker.actions.errors import RemoteError
from worker.actions.http import Endpoint
from worker.actions.http import HttpClient
from worker.event_codec import event_from_dict
from worker.loop import Bot
from worker.loop import MessageLoop
from worker.loop import check_entities
from worker.story import conversation_story
from worker.turn import Session
from worker.turn import check_verbosity

log = logging.getLogger("dialogd.channels")

#: Rasa's sender id of a REST message without one
DEFAULT_SENDER = "default"
MAX_CHANNEL_NAME = 64


class _Base:
    def __init__(self, bot: Bot, max_body: int):
        self.bot = bot
        self.max_body = max_body

    def loop(self, resp: falcon.Response) -> MessageLoop:
        """The request's one model set, named in a response header."""
        turn = self.bot.engine.turn()
        resp.set_header(MODEL_HEADER, turn.fingerprint)
        return self.bot.loop(turn)


def _string(body: dict[str, Any], *names: str, required: bool = True) -> str | None:
    """The first of ``names`` present in the body, which must be a string."""
    for name in names:
        value = body.get(name)
        if value is not None:
            if not isinstance(value, str):
                raise APIError(
                    400,
                    "InvalidParameter",
                    f"'{name}' must be a string",
                    parameter=name,
                    **{"in": "body"},
                )
            return value
    if required:
        raise APIError(
            400,
            "InvalidParameter",
            f"'{names[0]}' is missing: a string is required",
            parameter=names[0],
            **{"in": "body"},
        )
    return None


def _object(body: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = body.get(name)
    if value is not None and not isinstance(value, dict):
        raise APIError(
            400,
            "InvalidParameter",
            f"'{name}' must be an object",
            parameter=name,
            **{"in": "body"},
        )
    return value


def _verbosity(req: falcon.Request) -> str:
    """``include_events``, checked before anything is written: a request that
    would be refused for it must not run the loop first."""
    return check_verbosity(include_events(req))


class ChannelStatus:
    """``GET /webhooks/<channel>/``: the channel is there (Rasa's health answer)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok"}


class _Channel(_Base):
    """A user message from a channel: ``{"sender", "message", "metadata"}``."""

    #: the conversation is the body's ``sender``: a JWT of role user reaches it
    #: when it names its own (``api/middleware.py``)
    CONVERSATION_IN_BODY = True
    NAME = ""

    def message(self, req: falcon.Request) -> tuple[str, str, dict[str, Any]]:
        body = json_object(read_json(req, self.max_body))
        sender = body.get("sender", DEFAULT_SENDER)
        check_id(sender, "sender")
        only = getattr(req.context, "only_conversation", None)
        if only is not None and sender != only:
            raise APIError(403, "NotAuthorized", "User has insufficient permissions.")
        text = _string(body, "message")
        assert text is not None
        channel = _string(body, "input_channel", required=False) or self.NAME
        if len(channel) > MAX_CHANNEL_NAME:
            raise APIError(
                400,
                "InvalidParameter",
                f"'input_channel' is longer than {MAX_CHANNEL_NAME} characters",
                parameter="input_channel",
                **{"in": "body"},
            )
        extra = {"channel": channel, "metadata": _object(body, "metadata")}
        return sender, text, extra


class RestWebhook(_Channel):
    """Rasa's REST channel: the bot's messages as the answer; ``?stream=true``
    writes each as a line of JSON as soon as its action is logged."""

    NAME = "rest"

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        sender, text, extra = self.message(req)
        loop = self.loop(resp)
        if not req.get_param_as_bool("stream", default=False):
            resp.media = loop.handle_message(sender, text, **extra).messages
            return
        running = loop.start(sender, text, **extra)

        def lines() -> Iterator[bytes]:
            try:
                for messages in running:
                    for message in messages:
                        yield orjson.dumps(message) + b"\n"
            except Exception:
                # NOTE: the answer has begun; the error is logged, the stream ends.
                log.exception("%r: the message loop failed while streaming", sender)
            finally:
                running.close()

        resp.content_type = "text/event-stream"
        resp.stream = _Closing(lines(), running.close)


class _Closing:
    """A response body whose ``close`` (the server calls it, also when the client
    went away before the first byte) frees the conversation."""

    def __init__(self, chunks: Iterator[bytes], on_close: Any):
        self.chunks = chunks
        self.on_close = on_close

    def __iter__(self) -> Iterator[bytes]:
        return self.chunks

    def close(self) -> None:
        self.on_close()


class CallbackWebhook(_Channel):
    """Rasa's callback channel: answers ``success`` and POSTs each bot message to
    the ``callback`` url of the credentials file."""

    NAME = "callback"

    def __init__(self, bot: Bot, max_body: int, endpoint: Endpoint):
        super().__init__(bot, max_body)
        self.endpoint = endpoint
        self.http = HttpClient()

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        sender, text, extra = self.message(req)
        result = self.loop(resp).handle_message(sender, text, **extra)
        for message in result.messages:
            try:
                answer = self.http.post_json(self.endpoint, orjson.dumps(message))
                if answer.status >= 400:
                    log.error(
                        "%r: callback %s answered %d",
                        sender,
                        self.endpoint.safe_url,
                        answer.status,
                    )
            except RemoteError as err:
                log.error(
                    "%r: callback %s failed: %s", sender, self.endpoint.safe_url, err
                )
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "success"


class Messages(_Base):
    """Log a user message (NLU unless ``parse_data`` is given), predict nothing."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, cid: str) -> None:
        verbosity = _verbosity(req)
        body = json_object(read_json(req, self.max_body))
        sender = body.get("sender", "user")
        if sender != "user":
            raise APIError(
                400,
                "InvalidParameter",
                "Currently, only user messages can be passed to this endpoint. "
                f"Messages of sender {sender!r} cannot be handled.",
                parameter="sender",
                **{"in": "body"},
            )
        text = _string(body, "message", "text")
        assert text is not None
        parse_data = body.get("parse_data")
        if parse_data is not None:
            # NOTE: checked as a user event's parse data is, wherever it comes from.
            event = event_from_dict(
                {"event": "user", "text": text, "parse_data": parse_data}, lambda: 0.0
            )
            parse_data = event.parse_data  # type: ignore[attr-defined]
        loop = self.loop(resp)
        loop.log_message(cid, text, parse_data)
        resp.media = loop.turn.tracker(cid, verbosity)


class TriggerIntent(_Base):
    """Run the loop as if the user had sent the intent (with entities)."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, cid: str) -> None:
        verbosity = _verbosity(req)
        body = json_object(read_json(req, self.max_body))
        intent = _string(body, "name")
        assert intent is not None
        entities = check_entities(body.get("entities"))
        loop = self.loop(resp)
        if intent not in loop.turn.domain.intent_by_name:
            raise APIError(
                404,
                "NotFound",
                f"The intent {intent} does not exist in the domain.",
                parameter="name",
                **{"in": "body"},
            )
        result = loop.trigger_intent(cid, intent, entities)
        resp.media = {
            "tracker": loop.turn.tracker(cid, verbosity),
            "messages": result.messages,
        }


class Execute(_Base):
    """Run one named action; no prediction follows."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, cid: str) -> None:
        verbosity = _verbosity(req)
        body = json_object(read_json(req, self.max_body))
        action = _string(body, "name", "action")
        assert action is not None
        policy = _string(body, "policy", required=False)
        confidence = body.get("confidence")
        if confidence is not None and (
            isinstance(confidence, bool)
            or not isinstance(confidence, int | float)
            or not math.isfinite(confidence)
        ):
            raise APIError(
                400,
                "InvalidParameter",
                "'confidence' must be a number",
                parameter="confidence",
                **{"in": "body"},
            )
        loop = self.loop(resp)
        result = loop.execute(cid, action, policy, confidence)
        resp.media = {
            "tracker": loop.turn.tracker(cid, verbosity),
            "messages": result.messages,
        }


class Predict(_Base):
    """The policies' scores for the next action; runs and writes nothing."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, cid: str) -> None:
        loop = self.loop(resp)
        turn = loop.turn
        answer = turn.tracker(cid, include_events(req))
        prediction = turn.core.next_action(Session(turn, cid).tracker)
        ranked = sorted(
            zip(turn.domain.action_names, prediction.probabilities, strict=True),
            key=lambda item: (-float(item[1]), item[0]),
        )
        scores = [{"action": name, "score": float(p)} for name, p in ranked]
        resp.media = {
            "scores": scores,
            "policy": prediction.policy,
            "confidence": prediction.confidence,
            "tracker": answer,
        }


class Respond(_Base):
    """The 0.9+ ``respond``: the whole loop for ``query`` (or ``q``), the bot's
    messages as the answer."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, cid: str) -> None:
        text = req.get_param("query") or req.get_param("q")
        self.respond(resp, cid, text)

    def on_post(self, req: falcon.Request, resp: falcon.Response, cid: str) -> None:
        body = json_object(read_json(req, self.max_body))
        self.respond(resp, cid, _string(body, "query", "q", required=False))

    #: the GET runs the loop: no HEAD for it
    GET_WRITES = True

    def respond(self, resp: falcon.Response, cid: str, text: str | None) -> None:
        if text is None:
            raise APIError(
                400,
                "InvalidParameter",
                "Missing the message parameter.",
                parameter="query",
            )
        resp.media = self.loop(resp).handle_message(cid, text).messages


class Story(_Base):
    """The conversation as a story: Rasa 3's YAML, or Markdown
    (``?format=md`` or ``Accept: text/markdown``)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, cid: str) -> None:
        cut = until(req)
        fmt = req.get_param("format") or (
            "md" if "markdown" in (req.accept or "") else "yaml"
        )
        if fmt not in ("yaml", "md"):
            raise APIError(
                400,
                "InvalidParameter",
                "'format' must be yaml or md",
                parameter="format",
                **{"in": "query"},
            )
        all_sessions = req.get_param_as_bool("all_sessions", default=False)
        turn = self.loop(resp).turn
        events = turn.read_events(cid)
        if cut is not None:
            events = [e for e in events if e.timestamp <= cut]
        text = conversation_story(cid, events, fmt == "md", all_sessions)
        resp.content_type = "text/markdown" if fmt == "md" else "application/x-yaml"
        resp.text = text
