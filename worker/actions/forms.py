"""The form loop, run by the server as Rasa 3.6's ``FormAction`` runs it.

A run activates the form (``active_loop``) and validates the required slots filled
before it; on later runs, right after a user message, it takes the required slots
that message filled (the slot events since it), has ``validate_<form>`` on the
action server check them when the domain lists that action (rasa_sdk's
``FormValidationAction``), and rejects the message if it filled nothing the form
asked for. Then it asks for the next empty required slot (``requested_slot`` and
the first of ``action_ask_<form>_<slot>``, ``utter_ask_<form>_<slot>``,
``action_ask_<slot>``, ``utter_ask_<slot>`` the domain has), or, with every slot
filled, ends itself (``requested_slot: null``, ``active_loop: null``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from worker.actions.context import Context
from worker.actions.errors import ActionRejected
from worker.domain import ACTION_LISTEN
from worker.domain import REQUESTED_SLOT
from worker.domain import Domain
from worker.events import ActionExecuted
from worker.events import ActionExecutionRejected
from worker.events import ActiveLoop
from worker.events import Event
from worker.events import Form
from worker.events import SlotSet
from worker.events import UserUttered

#: runs another action (an ``utter_ask_*`` or ``validate_*``) in a given context
RunAction = Callable[[str, Context], list[Event]]


class FormLoop:
    """One form of a domain; ``run`` is stateless, the instance caches tables."""

    def __init__(self, name: str, domain: Domain, run_action: RunAction):
        self.name = name
        self.domain = domain
        self.run_action = run_action
        spec = domain.form_specs.get(name)
        self.required = list(spec.required_slots) if spec else []
        self.validator = f"validate_{name}"
        self.unique = _unique_entity_mappings(domain, self.required)

    def run(self, context: Context) -> list[Event]:
        """``LoopAction.run``: activate, do, and end when done."""
        events: list[Event] = []
        ts = context.clock()
        if context.tracker.active_form_name != self.name:
            events = [ActiveLoop(name=self.name, timestamp=ts)]
            events += self.activate(context)
        if not _is_done(events):
            events += self.do(context, events)
        if _is_done(events):
            events.append(ActiveLoop(name=None, timestamp=context.clock()))
        return events

    # ---- activation and validation -----------------------------------------------
    def activate(self, context: Context) -> list[Event]:
        """Validate the required slots set before the form started."""
        slots = context.slots
        prefilled = {s: slots.get(s) for s in self.required if slots.get(s) is not None}
        return self.validate_slots(prefilled, context) if prefilled else []

    def slot_to_fill(self, context: Context) -> Any:
        """The slot this form asked for (another form's request does not count)."""
        tracker = context.tracker
        if tracker.active_form_name != self.name:
            return None
        return tracker.slots.get(REQUESTED_SLOT)

    def validate_slots(
        self, candidates: dict[str, Any], context: Context
    ) -> list[Event]:
        """The candidates as slot events, through ``validate_<form>`` if the domain
        has it: its events, then the candidates it did not set (accepted)."""
        ts = context.clock()
        events: list[Event] = [
            SlotSet(name=k, value=v, timestamp=ts) for k, v in candidates.items()
        ]
        if self.validator not in self.domain.action_index:
            return events
        temporary = context.after(
            [
                SlotSet(
                    name=REQUESTED_SLOT, value=self.slot_to_fill(context), timestamp=ts
                ),
                ActionExecuted(name=self.name, timestamp=ts),
                *events,
            ]
        )
        validated = self.run_action(self.validator, temporary)
        names = {e.name for e in validated if isinstance(e, SlotSet)}
        return [
            *validated,
            *(e for e in events if isinstance(e, SlotSet) and e.name not in names),
        ]

    def extractions(self, context: Context) -> dict[str, Any]:
        """The required slots the latest user message set (Rasa: the slot events
        since it), except a slot set only by an entity that fills several of the
        form's slots, when the form did not ask for that one."""
        if not context.tracker.active_form:
            return {}
        required = set(self.required)
        asked = self.slot_to_fill(context)
        if asked:
            required.add(asked)
        values: dict[str, Any] = {}
        for event in _since_user_message(context):
            if event.name not in required:
                continue
            mappings = self.domain.slot_by_name[event.name].mappings
            if any(not self._ambiguous(m, event.name, asked) for m in mappings):
                values[event.name] = event.value
        return values

    def _ambiguous(self, mapping: dict[str, Any], slot: str, asked: Any) -> bool:
        if mapping.get("type") != "from_entity" or asked == slot:
            return False
        return _mapping_key(mapping) not in self.unique

    def validate(self, context: Context) -> list[Event]:
        events = self.validate_slots(self.extractions(context), context)
        filled = any(
            isinstance(e, SlotSet) and e.name != REQUESTED_SLOT for e in events
        )
        asked = self.slot_to_fill(context)
        if asked and not filled and not _rejected(events):
            raise ActionRejected(
                self.name, f"Failed to extract slot {asked} with action {self.name}"
            )
        return events

    # ---- asking ------------------------------------------------------------------
    def do(self, context: Context, so_far: list[Event]) -> list[Event]:
        tracker = context.tracker
        loop = tracker.active_loop
        needs_validation = not loop or (
            tracker.latest_action_name == ACTION_LISTEN and not loop["is_interrupted"]
        )
        if needs_validation:
            events = self.validate(context)
        else:
            # NOTE: back after an unhappy path: nothing to validate, but
            # validate_<form> may still decide what to ask.
            events = self.validate_slots({}, context)
        if not _rejected(events):
            events += self.request_next_slot(context, [*so_far, *events])
        return events

    def request_next_slot(self, context: Context, so_far: list[Event]) -> list[Event]:
        ts = context.clock()
        if _is_done(so_far):
            # validate_<form> ended the form early
            return [SlotSet(name=REQUESTED_SLOT, value=None, timestamp=ts)]
        to_request = next(
            (
                e.value
                for e in so_far
                if isinstance(e, SlotSet) and e.name == REQUESTED_SLOT
            ),
            None,
        )
        temporary = context.after(
            [
                SlotSet(
                    name=REQUESTED_SLOT, value=self.slot_to_fill(context), timestamp=ts
                ),
                ActionExecuted(name=self.name, timestamp=ts),
                *so_far,
            ]
        )
        events: list[Event] = []
        if not to_request:
            slots = temporary.slots
            to_request = next((s for s in self.required if slots.get(s) is None), None)
            events.append(SlotSet(name=REQUESTED_SLOT, value=to_request, timestamp=ts))
        if not to_request:
            return [SlotSet(name=REQUESTED_SLOT, value=None, timestamp=ts)]
        if not isinstance(to_request, str):
            return events
        ask = self.ask_action(to_request)
        return events + (self.run_action(ask, temporary) if ask else [])

    def ask_action(self, slot: str) -> str | None:
        """The first action of Rasa's search path that the domain has."""
        for name in (
            f"action_ask_{self.name}_{slot}",
            f"utter_ask_{self.name}_{slot}",
            f"action_ask_{slot}",
            f"utter_ask_{slot}",
        ):
            if name in self.domain.action_index or (
                name.startswith("utter_") and name in self.domain.templates
            ):
                return name
        return None


def _is_done(events: list[Event]) -> bool:
    """Rasa's ``FormAction.is_done``: the latest ``requested_slot`` event sets it to
    null, or the latest loop event ends the loop (never after a rejection)."""
    if _rejected(events):
        return False
    requested = next(
        (
            e
            for e in reversed(events)
            if isinstance(e, SlotSet) and e.name == REQUESTED_SLOT
        ),
        None,
    )
    loop = next((e for e in reversed(events) if isinstance(e, Form)), None)
    return (requested is not None and requested.value is None) or (
        loop is not None and loop.name is None
    )


def _rejected(events: list[Event]) -> bool:
    return any(isinstance(e, ActionExecutionRejected) for e in events)


def _since_user_message(context: Context) -> list[SlotSet]:
    """The slot events after the latest user message; from the tracker's recent
    events when they reach back to it, else from the log."""
    window = context.tracker.window
    if not any(isinstance(e, UserUttered) for e in window):
        window = context.log()
    start = 0
    for i in range(len(window) - 1, -1, -1):
        if isinstance(window[i], UserUttered):
            start = i
            break
    return [e for e in window[start:] if isinstance(e, SlotSet)]


def _mapping_key(mapping: dict[str, Any]) -> str:
    return json.dumps(mapping, sort_keys=True, default=str)


def _unique_entity_mappings(domain: Domain, required: list[str]) -> frozenset[str]:
    """The ``from_entity`` mappings that only one of the form's slots has."""
    seen: dict[str, int] = {}
    for slot in required:
        for mapping in domain.slot_by_name[slot].mappings:
            if mapping.get("type") == "from_entity":
                key = _mapping_key(mapping)
                seen[key] = seen.get(key, 0) + 1
    return frozenset(k for k, n in seen.items() if n == 1)
