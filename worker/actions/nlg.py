"""Responses: the domain's ``utter_*`` variations rendered as Rasa 3.6 renders them,
or an external NLG server's answers (``nlg:`` in ``endpoints.yml``)."""

from __future__ import annotations

import copy
import json
import logging
import random
import re
import string
from collections.abc import Mapping
from typing import Any
from typing import Protocol

from worker.actions.context import Context
from worker.actions.errors import RemoteError
from worker.actions.http import HttpClient
from worker.actions.http import NLGEndpoint
from worker.events import BotUttered
from worker.jsonlimits import JSONLimitError
from worker.jsonlimits import loads

log = logging.getLogger(__name__)

#: the parts of a response Rasa fills with slot values and arguments
INTERPOLATED = ("text", "image", "custom", "buttons", "attachment", "quick_replies")
#: Rasa's placeholder: ``{name}``, a name without braces or newlines
_PLACEHOLDER = re.compile(r"{([^\n{}]+?)}")


class NLG(Protocol):
    def generate(
        self, name: str, context: Context, kwargs: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """The message of response ``name`` (a fresh dict), or None if there is none."""


class _Slots(string.Formatter):
    """``str.format`` reading ``{0[name]}`` as the value named ``name``, and
    nothing else: no attribute or index chains into a value."""

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> tuple[Any, str]:
        if not (field_name.startswith("0[") and field_name.endswith("]")):
            raise KeyError(field_name)
        return args[0][field_name[2:-1]], field_name


_FORMATTER = _Slots()


def interpolate_text(template: str, values: Mapping[str, Any]) -> str:
    """Rasa's rule: each ``{name}`` becomes the value's ``str``; ``{{`` and ``}}``
    are a literal brace; if any name has no value, the text stays as written (a
    warning says which)."""
    text = _PLACEHOLDER.sub(r"{0[\1]}", template)
    try:
        filled = _FORMATTER.vformat(text, (values,), {})
    except KeyError as err:
        log.warning(
            "response text %r: no slot or argument %s; sent without filling",
            template,
            err.args[0],
        )
        return template
    except (ValueError, IndexError, TypeError):
        return template
    if "0[" in filled:
        # NOTE: as Rasa: a doubled brace around a name (``{{name}}``) escapes it.
        try:
            return template.format({})
        except (KeyError, ValueError, IndexError):
            return template
    return filled


def interpolate(value: Any, values: Mapping[str, Any]) -> Any:
    """Strings anywhere inside ``value`` (dicts and lists), filled."""
    if isinstance(value, str):
        return interpolate_text(value, values)
    if isinstance(value, dict):
        return {k: interpolate(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, values) for v in value]
    return value


class TemplateNLG:
    """The domain's responses, one variation at random among the first non-empty
    of (Rasa 3's ``ResponseVariationFilter``): the conditional variations whose
    slot conditions hold, for this channel; the unconditioned ones for this
    channel; the conditional ones without a channel; the rest without a channel."""

    def __init__(
        self, responses: Mapping[str, list[dict[str, Any]]], rng: random.Random
    ):
        self.responses = responses
        self.rng = rng

    def variations(
        self, name: str, slots: Mapping[str, Any], channel: str | None
    ) -> list[dict[str, Any]]:
        default, conditional = [], []
        for variation in self.responses.get(name, ()):
            condition = variation.get("condition")
            if condition is None:
                default.append(variation)
            elif condition and all(
                slots.get(c["name"]) == c["value"] for c in condition
            ):
                conditional.append(variation)
        buckets = (
            [v for v in conditional if v.get("channel") == channel],
            [v for v in default if v.get("channel") == channel],
            [v for v in conditional if v.get("channel") is None],
            [v for v in default if v.get("channel") is None],
        )
        return next((b for b in buckets if b), [])

    def generate(
        self, name: str, context: Context, kwargs: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        slots = context.slots
        candidates = self.variations(name, slots, context.channel)
        if not candidates:
            return None
        message = copy.deepcopy(self.rng.choice(candidates))
        values = {**slots, **kwargs}
        if values:
            for key in INTERPOLATED:
                if key in message:
                    message[key] = interpolate(message[key], values)
        return message


class RemoteNLG:
    """An NLG server renders every response (Rasa's callback NLG): a POST of
    ``{response, template, arguments, tracker, channel: {name}}``, answered with a
    message (or null for none)."""

    def __init__(self, endpoint: NLGEndpoint, client: HttpClient):
        self.endpoint = endpoint
        self.client = client

    def generate(
        self, name: str, context: Context, kwargs: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        body = {
            "response": name,
            # NOTE: Rasa 1.x's name of the key; NLG servers written then read it.
            "template": name,
            "arguments": dict(kwargs),
            "tracker": context.tracker_json(),
            "channel": {"name": context.channel},
        }
        url = self.endpoint.safe_url
        reply = self.client.post_json(self.endpoint, json.dumps(body).encode())
        if reply.status != 200:
            raise RemoteError(
                "status", f"NLG server {url} answered {reply.status}", reply.status
            )
        try:
            message = loads(reply.body.decode()) if reply.body.strip() else None
        except (ValueError, UnicodeDecodeError, JSONLimitError) as err:
            raise RemoteError(
                "protocol", f"NLG server {url}: not JSON ({err})"
            ) from None
        if message is None or message == "":
            return None
        problem = _message_problem(message)
        if problem:
            raise RemoteError("protocol", f"NLG server {url}: {problem}")
        return dict(message)


def _message_problem(message: Any) -> str | None:
    """Rasa's ``nlg_response_format_spec``, checked."""
    if not isinstance(message, dict):
        return "the answer must be a message object"
    kinds: dict[str, tuple[type, ...]] = {
        "text": (str,),
        "buttons": (list, type(None)),
        "elements": (list, type(None)),
        "attachment": (dict, str, type(None)),
        "image": (str, type(None)),
        "custom": (dict,),
    }
    for key, types in kinds.items():
        if key in message and not isinstance(message[key], types):
            return f"'{key}' has the wrong type"
    for key in ("buttons", "elements"):
        if not all(isinstance(item, dict) for item in message.get(key) or ()):
            return f"'{key}' must be a list of objects"
    return None


def bot_uttered(message: dict[str, Any], timestamp: float) -> BotUttered:
    """Rasa's ``create_bot_utterance``: the content keys go to ``data`` (an image is
    the attachment too, if there is no other), everything else to ``metadata``."""
    message = dict(message)
    data = {
        "elements": message.pop("elements", None),
        "quick_replies": message.pop("quick_replies", None),
        "buttons": message.pop("buttons", None),
        "attachment": message.pop("attachment", None) or message.get("image"),
        "image": message.pop("image", None),
        "custom": message.pop("custom", None),
    }
    text = message.pop("text", None)
    return BotUttered(
        text=text if isinstance(text, str) or text is None else str(text),
        data=data,
        metadata=message,
        timestamp=timestamp,
    )
