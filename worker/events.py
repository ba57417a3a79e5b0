"""Events: small immutable values; the conversation state is derived from them.

The JSON/msgpack wire form lives in ``worker/event_codec.py``; how each event changes
the state lives in ``worker/tracker.py``. Here only the values and their registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every event; ``timestamp`` is seconds since the epoch."""

    type_name: ClassVar[str] = ""
    timestamp: float = field(default=0.0, compare=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class UserUttered(Event):
    type_name: ClassVar[str] = "user"
    text: str | None = None
    parse_data: dict[str, Any] = field(default_factory=dict, compare=False)
    input_channel: str | None = field(default=None, compare=False)
    message_id: str | None = field(default=None, compare=False)
    #: Rasa 2+'s channel metadata of the message (an object), passed to actions
    metadata: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def intent(self) -> dict[str, Any]:
        return self.parse_data.get("intent") or {}

    @property
    def intent_name(self) -> str | None:
        return self.intent.get("name")

    @property
    def entities(self) -> list[dict[str, Any]]:
        return self.parse_data.get("entities") or []

    def __eq__(self, other: object) -> bool:
        # NOTE: as in the original, two user events are equal on text, intent and
        # entities; confidences and channels do not count.
        if not isinstance(other, UserUttered):
            return NotImplemented
        return (self.text, self.intent_name, self.entities) == (
            other.text,
            other.intent_name,
            other.entities,
        )

    def __hash__(self) -> int:
        return hash((self.text, self.intent_name))


@dataclass(frozen=True, slots=True)
class BotUttered(Event):
    type_name: ClassVar[str] = "bot"
    text: str | None = None
    data: Any = None
    #: Rasa 2+'s free-form metadata of a bot message (an object), kept for clients
    metadata: dict[str, Any] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class SlotSet(Event):
    type_name: ClassVar[str] = "slot"
    name: str = ""
    value: Any = None

    def __hash__(self) -> int:
        return hash((self.name, repr(self.value)))


@dataclass(frozen=True, slots=True)
class AllSlotsReset(Event):
    type_name: ClassVar[str] = "reset_slots"


@dataclass(frozen=True, slots=True)
class Restarted(Event):
    type_name: ClassVar[str] = "restart"


@dataclass(frozen=True, slots=True)
class UserUtteranceReverted(Event):
    type_name: ClassVar[str] = "rewind"


@dataclass(frozen=True, slots=True)
class ActionReverted(Event):
    type_name: ClassVar[str] = "undo"


@dataclass(frozen=True, slots=True)
class ReminderScheduled(Event):
    type_name: ClassVar[str] = "reminder"
    action: str = ""
    date_time: str = ""
    name: str | None = None
    kill_on_user_msg: bool = True


@dataclass(frozen=True, slots=True)
class StoryExported(Event):
    type_name: ClassVar[str] = "export"
    path: str | None = None


@dataclass(frozen=True, slots=True)
class ConversationPaused(Event):
    type_name: ClassVar[str] = "pause"


@dataclass(frozen=True, slots=True)
class ConversationResumed(Event):
    type_name: ClassVar[str] = "resume"


@dataclass(frozen=True, slots=True)
class ActionExecuted(Event):
    type_name: ClassVar[str] = "action"
    name: str = ""
    policy: str | None = field(default=None, compare=False)
    confidence: float | None = field(default=None, compare=False)
    #: Rasa 2+'s end-to-end bot text; stored for clients, never predicted
    action_text: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class AgentUttered(Event):
    type_name: ClassVar[str] = "agent"
    text: str | None = None
    data: Any = None


@dataclass(frozen=True, slots=True)
class FollowupAction(Event):
    type_name: ClassVar[str] = "followup"
    name: str = ""


@dataclass(frozen=True, slots=True)
class Form(Event):
    type_name: ClassVar[str] = "form"
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ActiveLoop(Form):
    """Rasa 2+'s name for ``form``: the loop (form) now active, or None. It is a
    ``Form``, so whatever reads form events reads these too; it keeps its own
    wire name (and an ``active_loop`` is not equal to a ``form``)."""

    type_name: ClassVar[str] = "active_loop"


@dataclass(frozen=True, slots=True)
class LoopInterrupted(Event):
    """Rasa 2+'s ``form_validation`` with the opposite sign: the active loop runs
    after an unhappy path (until the next action)."""

    type_name: ClassVar[str] = "loop_interrupted"
    is_interrupted: bool = False


@dataclass(frozen=True, slots=True)
class SessionStarted(Event):
    """Rasa 2+: a new session; the state starts afresh (carried-over slots follow
    as ``slot`` events)."""

    type_name: ClassVar[str] = "session_started"


@dataclass(frozen=True, slots=True)
class EntitiesAdded(Event):
    """Rasa 2+: entities added to the latest user message (by a policy or an
    action), as if NLU had found them."""

    type_name: ClassVar[str] = "entities"
    entities: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class FormValidation(Event):
    type_name: ClassVar[str] = "form_validation"
    validate: bool = True


@dataclass(frozen=True, slots=True)
class ActionExecutionRejected(Event):
    type_name: ClassVar[str] = "action_execution_rejected"
    name: str = ""
    policy: str | None = field(default=None, compare=False)
    confidence: float | None = field(default=None, compare=False)


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type_name: cls
    for cls in (
        UserUttered,
        BotUttered,
        SlotSet,
        AllSlotsReset,
        Restarted,
        UserUtteranceReverted,
        ActionReverted,
        ReminderScheduled,
        StoryExported,
        ConversationPaused,
        ConversationResumed,
        ActionExecuted,
        AgentUttered,
        FollowupAction,
        Form,
        FormValidation,
        ActionExecutionRejected,
        ActiveLoop,
        LoopInterrupted,
        SessionStarted,
        EntitiesAdded,
    )
}

#: Events whose effect depends on earlier events: applying them needs the log.
HISTORY_EVENTS: tuple[type[Event], ...] = (UserUtteranceReverted, ActionReverted)
