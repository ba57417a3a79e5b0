"""The conversation state, derived from events (Rasa Core 0.14 docs, "Events").

``Tracker.update`` folds one event into the state; ``applied_events`` is the one place
where ``restart``, ``undo`` and ``rewind`` are resolved. A tracker round-trips through
a snapshot, so a turn never replays the conversation's whole log.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from collections.abc import Sequence
from typing import Any

from worker.domain import ACTION_LISTEN
from worker.domain import Domain
from worker.event_codec import event_from_dict
from worker.event_codec import event_to_dict
from worker.events import HISTORY_EVENTS
from worker.events import ActionExecuted
from worker.events import ActionExecutionRejected
from worker.events import ActionReverted
from worker.events import AllSlotsReset
from worker.events import BotUttered
from worker.events import ConversationPaused
from worker.events import ConversationResumed
from worker.events import EntitiesAdded
from worker.events import Event
from worker.events import FollowupAction
from worker.events import Form
from worker.events import FormValidation
from worker.events import LoopInterrupted
from worker.events import Restarted
from worker.events import SessionStarted
from worker.events import SlotSet
from worker.events import UserUtteranceReverted
from worker.events import UserUttered

SNAPSHOT_VERSION = 3
#: the most recent events a snapshot keeps, whatever the actions in them
MAX_WINDOW = 32
EMPTY_MESSAGE: dict[str, Any] = {"intent": {}, "entities": [], "text": None}
State = dict[str, float]


def applied_events(events: Iterable[Event]) -> list[Event]:
    """The events that define the state, after restarts, session starts (Rasa 2+),
    undos and rewinds."""
    out: list[Event] = []

    def undo_till(kind: type[Event]) -> None:
        while out:
            if isinstance(out.pop(), kind):
                return

    for event in events:
        if isinstance(event, Restarted | SessionStarted):
            out.clear()
        elif isinstance(event, ActionReverted):
            undo_till(ActionExecuted)
        elif isinstance(event, UserUtteranceReverted):
            undo_till(UserUttered)
            undo_till(ActionExecuted)
        else:
            out.append(event)
    return out


def events_after_restart(events: Sequence[Event]) -> list[Event]:
    for i in range(len(events) - 1, -1, -1):
        if isinstance(events[i], Restarted):
            return list(events[i + 1 :])
    return list(events)


def _no_clock() -> float:
    raise AssertionError("stored events always carry a timestamp")


class NeedsHistory(Exception):
    """An event's effect depends on the whole log; the caller must replay it."""


class Tracker:
    """Mutable state of one conversation; only events change it."""

    __slots__ = (
        "_window",
        "_window_events",
        "active_form",
        "domain",
        "event_count",
        "followup_action",
        "history",
        "latest_action_name",
        "latest_bot_utterance",
        "latest_event_time",
        "latest_input_channel",
        "latest_message",
        "latest_user_time",
        "past_states",
        "paused",
        "sender_id",
        "slots",
        "unanswered",
    )

    def __init__(self, sender_id: str, domain: Domain, history: int = 5):
        self.sender_id = sender_id
        self.domain = domain
        #: how many past states (and actions' worth of recent events) are kept
        self.history = max(1, history)
        self.event_count = 0
        self.latest_event_time: float | None = None
        #: when the latest user message came: a session expires after its silence
        self.latest_user_time: float | None = None
        self.latest_input_channel: str | None = None
        self._reset()

    def _reset(self) -> None:
        self.slots: dict[str, Any] = {
            s.name: s.initial_value for s in self.domain.slots
        }
        self.latest_message: dict[str, Any] = dict(EMPTY_MESSAGE)
        self.paused = False
        self.followup_action: str | None = ACTION_LISTEN
        self.latest_action_name: str | None = None
        self.latest_bot_utterance: dict[str, Any] | None = None
        self.active_form: dict[str, Any] = {}
        self.past_states: deque[State] = deque(maxlen=self.history)
        #: no action has run since the latest user message
        self.unanswered = False
        # PERF: the recent events are kept in their wire form and decoded only when
        # a policy asks (``window``): most turns never need them.
        self._window: list[dict[str, Any]] = []
        self._window_events: list[Event] | None = None

    # ---- folding events ----------------------------------------------------------
    def update(self, event: Event) -> None:
        """Log one event: count it and apply it. Undo/rewind raise ``NeedsHistory``."""
        if isinstance(event, HISTORY_EVENTS):
            raise NeedsHistory(event.type_name)
        self.event_count += 1
        self.latest_event_time = event.timestamp
        if isinstance(event, UserUttered):
            self.latest_input_channel = event.input_channel
            self.latest_user_time = event.timestamp
        self._apply(event)

    def _apply(self, event: Event) -> None:  # noqa: C901 - one branch per event type
        match event:
            case UserUttered():
                self.latest_message = {**event.parse_data, "text": event.text}
                if event.metadata is not None:
                    self.latest_message["metadata"] = event.metadata
                self.followup_action = None
                self.unanswered = True
            case ActionExecuted():
                self.past_states.append(self.current_state())
                self.latest_action_name = event.name
                self.unanswered = False
                self.followup_action = None
                if self.active_form:
                    self.active_form["validate"] = True
                    if event.name == self.active_form.get("name"):
                        self.active_form["rejected"] = False
            case SlotSet():
                if event.name in self.slots:
                    self.slots[event.name] = event.value
            case AllSlotsReset():
                self.slots = {s.name: s.initial_value for s in self.domain.slots}
            case Restarted() | SessionStarted():
                self._reset()
                return
            case ConversationPaused():
                self.paused = True
            case ConversationResumed():
                self.paused = False
            case FollowupAction():
                self.followup_action = event.name
            case BotUttered():
                self.latest_bot_utterance = {"text": event.text, "data": event.data}
            case Form():  # and ActiveLoop, a Form
                self.active_form = (
                    {
                        "name": event.name,
                        "validate": True,
                        "rejected": False,
                        "trigger_message": self.latest_message,
                    }
                    if event.name
                    else {}
                )
            case FormValidation():
                if self.active_form:
                    self.active_form["validate"] = event.validate
            case LoopInterrupted():
                if self.active_form:
                    self.active_form["validate"] = not event.is_interrupted
            case EntitiesAdded():
                have = list(self.latest_message.get("entities") or [])
                have += [e for e in event.entities if e not in have]
                self.latest_message = {**self.latest_message, "entities": have}
            case ActionExecutionRejected():
                if event.name == self.active_form.get("name"):
                    self.active_form["rejected"] = True
        self._remember(event)

    def _remember(self, event: Event) -> None:
        """Keep the events of the last ``history`` actions for augmented memoization
        (and at most ``MAX_WINDOW`` events, however long a turn gets)."""
        window = self._window
        record = event_to_dict(event)
        if isinstance(event, UserUttered):
            # PERF: states need only the intent's name and the entities; the rest of
            # the parse (ranking, text, confidences) would triple the snapshot that
            # every turn reads and writes.
            record["parse_data"] = {
                "intent": {"name": event.intent_name},
                "entities": event.entities,
            }
        window.append(record)
        self._window_events = None
        if isinstance(event, ActionExecuted):
            actions = [i for i, e in enumerate(window) if e["event"] == "action"]
            if len(actions) > self.history + 1:
                del window[: actions[0] + 1]
        if len(window) > MAX_WINDOW:
            del window[: len(window) - MAX_WINDOW]

    @property
    def window(self) -> list[Event]:
        """The applied events of the last ``history`` + 1 actions, oldest first."""
        if self._window_events is None:
            self._window_events = [event_from_dict(d, _no_clock) for d in self._window]
        return self._window_events

    @property
    def last_event(self) -> Event | None:
        """The latest applied event (within the window)."""
        return event_from_dict(self._window[-1], _no_clock) if self._window else None

    @property
    def rejected_action(self) -> str | None:
        """The action whose rejection is the latest event, if it is one.

        PERF: the policies ask on every turn; read from the wire form, without
        decoding the event as ``last_event`` would."""
        record = self._window[-1] if self._window else None
        if record is None or record["event"] != ActionExecutionRejected.type_name:
            return None
        return record["name"]

    @classmethod
    def from_events(
        cls, sender_id: str, domain: Domain, events: Sequence[Event], history: int = 5
    ) -> Tracker:
        """Replay a whole log; for undo/rewind, ``until`` and a changed model only."""
        tracker = cls(sender_id, domain, history)
        for event in applied_events(events):
            tracker._apply(event)
        tracker.event_count = len(events)
        if events:
            tracker.latest_event_time = events[-1].timestamp
        for event in reversed(events):
            if isinstance(event, UserUttered):
                tracker.latest_input_channel = event.input_channel
                tracker.latest_user_time = event.timestamp
                break
        return tracker

    # ---- reading -----------------------------------------------------------------
    @property
    def active_form_name(self) -> str | None:
        return self.active_form.get("name")

    @property
    def latest_intent(self) -> str | None:
        return (self.latest_message.get("intent") or {}).get("name")

    def current_state(self) -> State:
        return self.domain.state(
            self.latest_message,
            self.slots,
            self.latest_action_name,
            self.active_form_name,
        )

    def states(self, max_history: int) -> list[State]:
        """The last ``max_history`` states, the current one last (unpadded)."""
        past = list(self.past_states)[-(max_history - 1) :] if max_history > 1 else []
        return [*past, self.current_state()]

    @property
    def active_loop(self) -> dict[str, Any]:
        """The active form in Rasa 2+'s shape (``active_loop`` of its tracker JSON):
        ``is_interrupted`` is 0.x's ``validate`` negated."""
        form = self.active_form
        if not form.get("name"):
            return {}
        return {
            "name": form["name"],
            "is_interrupted": not form.get("validate", True),
            "rejected": form.get("rejected", False),
            "trigger_message": form.get("trigger_message"),
        }

    def dump(self) -> dict[str, Any]:
        """The tracker JSON of Rasa Core 0.14's HTTP API, without ``events``, plus
        Rasa 2+'s ``active_loop`` and ``latest_action``."""
        return {
            "sender_id": self.sender_id,
            "slots": dict(self.slots),
            "latest_message": self.latest_message,
            "latest_event_time": self.latest_event_time,
            "followup_action": self.followup_action,
            "paused": self.paused,
            "latest_input_channel": self.latest_input_channel,
            "active_form": self.active_form,
            "active_loop": self.active_loop,
            "latest_action_name": self.latest_action_name,
            "latest_action": (
                {"action_name": self.latest_action_name}
                if self.latest_action_name is not None
                else None
            ),
        }

    # ---- snapshot ----------------------------------------------------------------
    def to_snapshot(self) -> dict[str, Any]:
        return {
            "v": SNAPSHOT_VERSION,
            "domain": self.domain.fingerprint,
            "history": self.history,
            "count": self.event_count,
            "time": self.latest_event_time,
            "user_time": self.latest_user_time,
            "channel": self.latest_input_channel,
            "slots": dict(self.slots),
            "message": self.latest_message,
            "paused": self.paused,
            "followup": self.followup_action,
            "action": self.latest_action_name,
            "bot": self.latest_bot_utterance,
            "form": dict(self.active_form),
            "states": list(self.past_states),
            "unanswered": self.unanswered,
            "window": self._window,
        }

    @classmethod
    def from_snapshot(
        cls,
        sender_id: str,
        domain: Domain,
        snap: dict[str, Any],
        history: int,
    ) -> Tracker | None:
        """The tracker a snapshot holds, or None if it was made for another model."""
        if (
            snap.get("v") != SNAPSHOT_VERSION
            or snap.get("domain") != domain.fingerprint
            or snap.get("history") != max(1, history)
        ):
            return None
        # NOTE: built by __init__ (a microsecond more than cls.__new__), so a field
        # added to the tracker is never left unset here.
        tracker = cls(sender_id, domain, history)
        tracker.event_count = snap["count"]
        tracker.latest_event_time = snap["time"]
        tracker.latest_user_time = snap["user_time"]
        tracker.latest_input_channel = snap["channel"]
        tracker.slots = dict(snap["slots"])
        tracker.latest_message = snap["message"]
        tracker.paused = snap["paused"]
        tracker.followup_action = snap["followup"]
        tracker.latest_action_name = snap["action"]
        tracker.latest_bot_utterance = snap["bot"]
        tracker.active_form = dict(snap["form"])
        tracker.past_states = deque(snap["states"], maxlen=tracker.history)
        tracker.unanswered = snap["unanswered"]
        tracker._window = list(snap["window"])
        return tracker
