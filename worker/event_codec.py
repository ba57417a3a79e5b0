"""Events to and from their wire form: the JSON objects of the original server.

The same dicts go to the tracker store, which packs them with msgpack.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any

from worker.errors import InvalidEvent
from worker.events import EVENT_TYPES
from worker.events import ActionExecuted
from worker.events import ActionExecutionRejected
from worker.events import ActiveLoop
from worker.events import AgentUttered
from worker.events import BotUttered
from worker.events import EntitiesAdded
from worker.events import Event
from worker.events import FollowupAction
from worker.events import Form
from worker.events import FormValidation
from worker.events import LoopInterrupted
from worker.events import ReminderScheduled
from worker.events import SlotSet
from worker.events import StoryExported
from worker.events import UserUttered


def event_to_dict(event: Event) -> dict[str, Any]:  # noqa: C901 - one branch per type
    """The wire form: ``event``, ``timestamp`` and the type's own fields."""
    out: dict[str, Any] = {"event": event.type_name, "timestamp": event.timestamp}
    match event:
        case UserUttered():
            out["text"] = event.text
            out["parse_data"] = event.parse_data
            out["input_channel"] = event.input_channel
            if event.message_id is not None:
                out["message_id"] = event.message_id
            if event.metadata is not None:
                out["metadata"] = event.metadata
        case BotUttered():
            out["text"] = event.text
            out["data"] = event.data
            if event.metadata is not None:
                out["metadata"] = event.metadata
        case AgentUttered():
            out["text"] = event.text
            out["data"] = event.data
        case SlotSet():
            out["name"] = event.name
            out["value"] = event.value
        case ActionExecuted():
            out["name"] = event.name
            out["policy"] = event.policy
            out["confidence"] = event.confidence
            if event.action_text is not None:
                out["action_text"] = event.action_text
        case ActionExecutionRejected():
            out["name"] = event.name
            out["policy"] = event.policy
            out["confidence"] = event.confidence
        case FollowupAction() | Form():  # and ActiveLoop, a Form
            out["name"] = event.name
        case LoopInterrupted():
            out["is_interrupted"] = event.is_interrupted
        case EntitiesAdded():
            out["entities"] = list(event.entities)
        case FormValidation():
            out["validate"] = event.validate
        case ReminderScheduled():
            out["action"] = event.action
            out["date_time"] = event.date_time
            out["name"] = event.name
            out["kill_on_user_msg"] = event.kill_on_user_msg
        case StoryExported():
            pass
    return out


def _str(d: Mapping[str, Any], key: str, *, required: bool, null: bool = False) -> Any:
    value = d.get(key)
    if value is None:
        if required and not null:
            raise InvalidEvent(f"'{d.get('event')}' event needs a string '{key}'")
        return None
    if not isinstance(value, str) or (required and not value):
        raise InvalidEvent(f"'{d.get('event')}' event: '{key}' must be a string")
    return value


def _number(value: Any) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
    )


def _confidence(d: Mapping[str, Any], event: str, where: str = "") -> float | None:
    """An optional finite number; ``where`` names it inside a user message, where it
    is a probability the policies compare with thresholds."""
    value = d.get("confidence")
    if value is None:
        return None
    if not _number(value):
        raise InvalidEvent(f"'{event}' event: '{where}confidence' must be a number")
    if where and not 0 <= value <= 1:
        raise InvalidEvent(f"'{event}' event: '{where}confidence' must be 0 to 1")
    return float(value)


def _intent(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not isinstance(value.get("name"), str | None):
        raise InvalidEvent(
            f"'user' event: '{where}' must be an object with a string or null 'name'"
        )
    _confidence(value, "user", f"{where}.")
    return value


def _entity(
    value: Any, i: int, where: str = "'user' event: 'parse_data.entities"
) -> None:
    where = f"{where}[{i}]'"
    if not isinstance(value, dict) or not isinstance(value.get("entity"), str):
        raise InvalidEvent(f"{where} must be an object with a string 'entity'")
    for key in ("start", "end"):
        position = value.get(key)
        if position is not None and (
            isinstance(position, bool) or not isinstance(position, int) or position < 0
        ):
            raise InvalidEvent(f"{where}: '{key}' must be a character offset")
    if value.get("confidence") is not None and not _number(value["confidence"]):
        raise InvalidEvent(f"{where}: 'confidence' must be a finite number")
    if not isinstance(value.get("extractor"), str | None):
        raise InvalidEvent(f"{where}: 'extractor' must be a string")


def _parse_data(d: Mapping[str, Any]) -> dict[str, Any]:
    """Every field of a message the engine reads (intent, confidences, entities, the
    ranking, the text) is checked here, so a stored message can always be answered."""
    data = d.get("parse_data")
    if data is None:
        return {
            "intent": {"name": None, "confidence": 0.0},
            "entities": [],
            "text": d.get("text"),
        }
    if not isinstance(data, dict):
        raise InvalidEvent("'user' event: 'parse_data' must be an object")
    intent = _intent(data.get("intent", {}), "parse_data.intent")
    entities = data.get("entities", [])
    if not isinstance(entities, list):
        raise InvalidEvent(
            "'user' event: 'parse_data.entities' must be a list of entity objects"
        )
    for i, entity in enumerate(entities):
        _entity(entity, i)
    ranking = data.get("intent_ranking")
    if ranking is not None:
        if not isinstance(ranking, list):
            raise InvalidEvent("'user' event: 'parse_data.intent_ranking' is a list")
        for i, item in enumerate(ranking):
            _intent(item, f"parse_data.intent_ranking[{i}]")
    if not isinstance(data.get("text"), str | None):
        raise InvalidEvent("'user' event: 'parse_data.text' must be a string")
    return {**data, "intent": intent, "entities": entities}


def _timestamp(d: Mapping[str, Any], now: Callable[[], float]) -> float:
    value = d.get("timestamp")
    if value is None:
        return now()
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
    ):
        raise InvalidEvent("'timestamp' must be a number of seconds")
    return float(value)


def _metadata(d: dict[str, Any], kind: str) -> dict[str, Any] | None:
    metadata = d.get("metadata")
    if not isinstance(metadata, dict | None):
        raise InvalidEvent(f"'{kind}' event: 'metadata' must be an object")
    return metadata


def event_from_dict(d: Any, now: Callable[[], float]) -> Event:  # noqa: C901
    """Build an event from its wire form; anything malformed is ``InvalidEvent``."""
    if not isinstance(d, dict):
        raise InvalidEvent("an event must be a JSON object")
    type_name = d.get("event")
    cls = EVENT_TYPES.get(type_name) if isinstance(type_name, str) else None
    if cls is None:
        raise InvalidEvent(
            f"unknown event type {type_name!r}; known types: "
            + ", ".join(sorted(EVENT_TYPES))
        )
    ts = _timestamp(d, now)
    if cls is UserUttered:
        return UserUttered(
            text=_str(d, "text", required=False),
            parse_data=_parse_data(d),
            input_channel=_str(d, "input_channel", required=False),
            message_id=_str(d, "message_id", required=False),
            metadata=_metadata(d, "user"),
            timestamp=ts,
        )
    if cls is BotUttered:
        return BotUttered(
            text=_str(d, "text", required=False),
            data=d.get("data"),
            metadata=_metadata(d, "bot"),
            timestamp=ts,
        )
    if cls is AgentUttered:
        return AgentUttered(
            text=_str(d, "text", required=False), data=d.get("data"), timestamp=ts
        )
    if cls is SlotSet:
        return SlotSet(
            name=_str(d, "name", required=True), value=d.get("value"), timestamp=ts
        )
    if cls is ActionExecuted:
        return ActionExecuted(
            name=_str(d, "name", required=True),
            policy=_str(d, "policy", required=False),
            confidence=_confidence(d, cls.type_name),
            action_text=_str(d, "action_text", required=False),
            timestamp=ts,
        )
    if cls is ActionExecutionRejected:
        return ActionExecutionRejected(
            name=_str(d, "name", required=True),
            policy=_str(d, "policy", required=False),
            confidence=_confidence(d, cls.type_name),
            timestamp=ts,
        )
    if cls is FollowupAction:
        return FollowupAction(name=_str(d, "name", required=True), timestamp=ts)
    if cls in (Form, ActiveLoop):
        return cls(name=_str(d, "name", required=False), timestamp=ts)
    if cls is LoopInterrupted:
        interrupted = d.get("is_interrupted")
        if not isinstance(interrupted, bool):
            raise InvalidEvent(
                "'loop_interrupted' event: 'is_interrupted' must be a boolean"
            )
        return LoopInterrupted(is_interrupted=interrupted, timestamp=ts)
    if cls is EntitiesAdded:
        entities = d.get("entities")
        if not isinstance(entities, list):
            raise InvalidEvent(
                "'entities' event: 'entities' must be a list of entity objects"
            )
        for i, entity in enumerate(entities):
            _entity(entity, i, "'entities' event: 'entities")
        return EntitiesAdded(entities=tuple(entities), timestamp=ts)
    if cls is FormValidation:
        validate = d.get("validate", True)
        if not isinstance(validate, bool):
            raise InvalidEvent("'form_validation' event: 'validate' must be a boolean")
        return FormValidation(validate=validate, timestamp=ts)
    if cls is ReminderScheduled:
        kill = d.get("kill_on_user_msg", True)
        if not isinstance(kill, bool):
            raise InvalidEvent("'reminder' event: 'kill_on_user_msg' must be a boolean")
        return ReminderScheduled(
            action=_str(d, "action", required=True),
            date_time=_str(d, "date_time", required=True),
            name=_str(d, "name", required=False),
            kill_on_user_msg=kill,
            timestamp=ts,
        )
    if cls is StoryExported:
        # NOTE: the path is never taken from input: a server must not write files
        # named by its clients.
        return StoryExported(timestamp=ts)
    return cls(timestamp=ts)


def events_from_dicts(items: Iterable[Any], now: Callable[[], float]) -> list[Event]:
    """All or nothing: one bad item rejects the whole list, naming its index."""
    events = []
    for i, item in enumerate(items):
        try:
            events.append(event_from_dict(item, now))
        except InvalidEvent as err:
            raise InvalidEvent(f"event {i}: {err}") from err
    return events
