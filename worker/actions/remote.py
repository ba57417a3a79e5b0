"""The action server client: Rasa's custom-action protocol, as rasa_sdk speaks it.

Request: ``POST <url>`` with ``{next_action, sender_id, tracker, domain, version}``
(the tracker with every event, the domain as Rasa 3 writes it). Answer: 200 with
``{events, responses}``; 400 with ``{error, action_name}`` is a rejection; any other
answer, and no answer in time, is a failure. The answer is hostile input: its size,
JSON depth and every event are checked before anything of it is used.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import cached_property
from typing import Any

import orjson

from worker.actions.context import Context
from worker.actions.errors import ActionFailed
from worker.actions.errors import ActionRejected
from worker.actions.errors import RemoteError
from worker.actions.http import ActionEndpoint
from worker.actions.http import HttpClient
from worker.actions.nlg import NLG
from worker.actions.nlg import bot_uttered
from worker.domain import Domain
from worker.errors import InvalidEvent
from worker.event_codec import events_from_dicts
from worker.events import Event
from worker.events import SlotSet
from worker.jsonlimits import JSONLimitError
from worker.jsonlimits import loads

log = logging.getLogger(__name__)

#: the Rasa version we speak for (rasa_sdk compares it with its own)
RASA_VERSION = "3.6.21"
#: Rasa 3's names of our slot types
_SLOT_TYPES = {"unfeaturized": "any"}


def domain_json(domain: Domain) -> dict[str, Any]:
    """The domain as Rasa 3's ``Domain.as_dict``: what rasa_sdk reads (slots with
    their ``mappings``, forms with ``required_slots``, ``responses``)."""
    slots: dict[str, Any] = {}
    for slot in domain.slots:
        spec: dict[str, Any] = {
            "type": _SLOT_TYPES.get(slot.type, slot.type),
            "initial_value": slot.initial_value,
            "influence_conversation": slot.influence,
            "mappings": [dict(m) for m in slot.mappings],
        }
        if slot.type == "categorical":
            spec["values"] = list(slot.values)
        if slot.type == "float":
            spec["max_value"] = slot.max_value
            spec["min_value"] = slot.min_value
        slots[slot.name] = spec
    intents = []
    for intent in domain.intents:
        use = intent.use_entities
        props: dict[str, Any] = {
            "use_entities": use if isinstance(use, bool) else list(use)
        }
        if intent.ignore_entities:
            props["ignore_entities"] = list(intent.ignore_entities)
        intents.append({intent.name: props})
    forms = {
        name: {
            "required_slots": list(spec.required_slots),
            "ignored_intents": list(spec.ignored_intents),
        }
        for name, spec in domain.form_specs.items()
    }
    for name in domain.forms:
        forms.setdefault(name, {"required_slots": []})
    out: dict[str, Any] = {
        "version": "3.1",
        "config": {"store_entities_as_slots": domain.store_entities_as_slots},
        "intents": intents,
        "entities": list(domain.entities),
        "slots": slots,
        "responses": domain.templates,
        "actions": list(domain.user_actions),
        "forms": forms,
    }
    config = domain.session_config
    if config is not None:
        out["session_config"] = {
            "session_expiration_time": config.session_expiration_time,
            "carry_over_slots_to_new_session": config.carry_over_slots_to_new_session,
        }
    return out


class RemoteActions:
    """Runs custom actions on the action server (one per model: its domain)."""

    def __init__(
        self,
        domain: Domain,
        endpoint: ActionEndpoint | None,
        client: HttpClient,
        nlg: NLG,
    ):
        self.domain = domain
        self.endpoint = endpoint
        self.client = client
        self.nlg = nlg

    @cached_property
    def _domain_bytes(self) -> bytes:
        """PERF: the domain is the same in every call; serialised once."""
        return orjson.dumps(domain_json(self.domain))

    def request_body(self, name: str, context: Context) -> bytes:
        head = {
            "next_action": name,
            "sender_id": context.tracker.sender_id,
            "tracker": context.tracker_json(),
            "version": RASA_VERSION,
        }
        try:
            encoded = orjson.dumps(head)
        except TypeError as err:
            raise ActionFailed(name, f"the tracker cannot be sent: {err}") from None
        return encoded[:-1] + b',"domain":' + self._domain_bytes + b"}"

    def run(self, name: str, context: Context) -> list[Event]:
        """The events of one call: the bot messages of its ``responses``, then its
        ``events``; all of them or none."""
        if self.endpoint is None:
            raise ActionFailed(
                name,
                "no action server is configured (action_endpoint in endpoints.yml)",
            )
        url = self.endpoint.safe_url
        try:
            reply = self.client.post_json(
                self.endpoint, self.request_body(name, context)
            )
        except RemoteError as err:
            raise ActionFailed(name, f"action server {url}: {err}") from None
        if reply.status == 400:
            raise _rejection(name, reply.body, url)
        if reply.status != 200:
            raise ActionFailed(
                name,
                f"action server {url} answered HTTP {reply.status}: "
                f"{_excerpt(reply.body)}",
            )
        answer = _json(name, reply.body, url)
        if not isinstance(answer, dict):
            raise ActionFailed(
                name, f"action server {url}: the answer is not an object"
            )
        items = answer.get("events") or []
        responses = answer.get("responses") or []
        if not isinstance(items, list) or not isinstance(responses, list):
            raise ActionFailed(
                name, f"action server {url}: 'events' and 'responses' must be lists"
            )
        if not all(isinstance(r, dict) for r in responses):
            raise ActionFailed(
                name, f"action server {url}: a response is not an object"
            )
        try:
            events = events_from_dicts(items, context.clock)
        except InvalidEvent as err:
            raise ActionFailed(name, f"action server {url}: {err}") from None
        for event in events:
            if (
                isinstance(event, SlotSet)
                and event.name not in self.domain.slot_by_name
            ):
                log.warning(
                    "action %r set slot %r, which the domain does not have: no effect",
                    name,
                    event.name,
                )
        messages = self.utter(responses, context)
        return [*messages, *events]

    def utter(self, responses: list[dict[str, Any]], context: Context) -> list[Event]:
        """Rasa's ``_utter_responses``: a ``{"response": "utter_x", ...}`` message is
        rendered with the rest as arguments; its other keys are laid over it."""
        out: list[Event] = []
        for response in responses:
            response = dict(response)
            name = response.pop("response", None)
            template = response.pop("template", None)  # rasa_sdk < 2.4's name
            name = name or template
            draft: dict[str, Any] = {}
            if name:
                if not isinstance(name, str):
                    raise ActionFailed(str(name), "a response name must be a string")
                rendered = self.nlg.generate(name, context, _kwargs(response))
                if not rendered:
                    log.warning("no response %r to send (asked by an action)", name)
                    continue
                draft = {**rendered, "utter_action": name}
            buttons = response.pop("buttons", None) or []
            if buttons:
                draft["buttons"] = [*(draft.get("buttons") or []), *buttons]
            draft.update({k: v for k, v in response.items() if v})
            out.append(bot_uttered(draft, context.clock()))
        return out


def _kwargs(response: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): v for k, v in response.items()}


def _json(name: str, body: bytes, url: str) -> Any:
    try:
        return loads(body.decode())
    except (ValueError, UnicodeDecodeError, JSONLimitError) as err:
        raise ActionFailed(
            name, f"action server {url} answered no JSON ({err}): {_excerpt(body)}"
        ) from None


def _rejection(name: str, body: bytes, url: str) -> ActionRejected | ActionFailed:
    """A 400 is a rejection when it says so (``{"error", "action_name"}``), as
    rasa_sdk's ``ActionExecutionRejection``; any other 400 is a failure."""
    try:
        answer = loads(body.decode())
    except (ValueError, UnicodeDecodeError, JSONLimitError):
        answer = None
    if isinstance(answer, dict) and isinstance(answer.get("action_name"), str):
        error = answer.get("error")
        return ActionRejected(name, error if isinstance(error, str) else None)
    return ActionFailed(
        name, f"action server {url} answered HTTP 400: {_excerpt(body)}"
    )


def _excerpt(body: bytes, size: int = 200) -> str:
    text = body[:size].decode("utf-8", "replace")
    return text + ("..." if len(body) > size else "")
