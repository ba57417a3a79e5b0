"""The built-in actions, with Rasa 3.6's events (rasa/core/actions/action.py,
two_stage_fallback.py). Each takes the runner (to utter a response or call the
action server) and the action's context, and returns the action's events."""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any
from typing import Protocol

from worker.actions.context import Context
from worker.actions.errors import ActionFailed
from worker.actions.errors import ActionRejected
from worker.actions.forms import FormLoop
from worker.actions.nlg import bot_uttered
from worker.domain import ACTION_LISTEN
from worker.domain import REQUESTED_SLOT
from worker.domain import Domain
from worker.events import ActionExecuted
from worker.events import ActiveLoop
from worker.events import BotUttered
from worker.events import Event
from worker.events import Form
from worker.events import Restarted
from worker.events import SessionStarted
from worker.events import SlotSet
from worker.events import UserUtteranceReverted
from worker.events import UserUttered
from worker.tracker import events_after_restart

log = logging.getLogger(__name__)

NLU_FALLBACK = "nlu_fallback"
OUT_OF_SCOPE = "out_of_scope"
ASK_AFFIRMATION = "action_default_ask_affirmation"
ASK_REPHRASE = "action_default_ask_rephrase"
VALIDATE_SLOT_MAPPINGS = "action_validate_slot_mappings"


class Runner(Protocol):
    domain: Domain
    forms: dict[str, FormLoop]

    def utter(self, name: str, context: Context, silent: bool = False) -> list[Event]:
        """The response ``name`` as bot events (none if the domain lacks it)."""

    def run_in(self, name: str, context: Context) -> list[Event]:
        """Any action, in the given context."""

    def remote(self, name: str, context: Context) -> list[Event]:
        """A custom action on the action server."""


Builtin = Callable[[Runner, Context], list[Event]]


def session_start_events(
    domain: Domain, slots: Mapping[str, Any], ts: float
) -> list[Event]:
    """``action_session_start``'s events (not its own ``action``): the
    ``session_started`` that resets the state, the slots carried over (those that
    differ from their initial value), then the listen."""
    config = domain.session_config
    carried: list[Event] = []
    if config is not None and config.carry_over_slots_to_new_session:
        carried = [
            SlotSet(name=slot.name, value=slots.get(slot.name), timestamp=ts)
            for slot in domain.slots
            if slots.get(slot.name) != slot.initial_value
        ]
    return [
        SessionStarted(timestamp=ts),
        *carried,
        ActionExecuted(name=ACTION_LISTEN, timestamp=ts),
    ]


def action_listen(runner: Runner, context: Context) -> list[Event]:
    return []


def action_restart(runner: Runner, context: Context) -> list[Event]:
    return [
        *runner.utter("utter_restart", context, True),
        Restarted(timestamp=context.clock()),
    ]


def action_session_start(runner: Runner, context: Context) -> list[Event]:
    return session_start_events(runner.domain, context.slots, context.clock())


def action_default_fallback(runner: Runner, context: Context) -> list[Event]:
    events = runner.utter("utter_default", context, True)
    return [*events, UserUtteranceReverted(timestamp=context.clock())]


def action_deactivate_loop(runner: Runner, context: Context) -> list[Event]:
    ts = context.clock()
    return [
        ActiveLoop(name=None, timestamp=ts),
        SlotSet(name=REQUESTED_SLOT, value=None, timestamp=ts),
    ]


def action_deactivate_form(runner: Runner, context: Context) -> list[Event]:
    """rasa_core 0.x's name, with 0.x's event (``form``, which ``active_loop`` is)."""
    ts = context.clock()
    return [
        Form(name=None, timestamp=ts),
        SlotSet(name=REQUESTED_SLOT, value=None, timestamp=ts),
    ]


def action_back(runner: Runner, context: Context) -> list[Event]:
    ts = context.clock()
    return [
        *runner.utter("utter_back", context, True),
        UserUtteranceReverted(timestamp=ts),
        UserUtteranceReverted(timestamp=ts),
    ]


def action_unlikely_intent(runner: Runner, context: Context) -> list[Event]:
    return []


# ---- two-stage fallback ------------------------------------------------------------
def action_default_ask_affirmation(runner: Runner, context: Context) -> list[Event]:
    """ "Did you mean '<intent>'?" with Yes/No buttons (the runner-up intent when
    NLU's is the fallback intent)."""
    message = context.tracker.latest_message
    intent = (message.get("intent") or {}).get("name")
    ranking = message.get("intent_ranking") or []
    if intent == NLU_FALLBACK and len(ranking) > 1:
        intent = ranking[1].get("name")
    return [
        bot_uttered(
            {
                "text": f"Did you mean '{intent}'?",
                "buttons": [
                    {"title": "Yes", "payload": f"/{intent}"},
                    {"title": "No", "payload": f"/{OUT_OF_SCOPE}"},
                ],
                "utter_action": ASK_AFFIRMATION,
            },
            context.clock(),
        )
    ]


def action_default_ask_rephrase(runner: Runner, context: Context) -> list[Event]:
    return runner.utter("utter_ask_rephrase", context, True)


def _last_intents(context: Context, n: int) -> list[str | None]:
    """The intents of the latest ``n`` user messages since the restart, a reverted
    one counting as a message without an intent (Rasa's ``_last_n_intent_names``)."""
    out: list[str | None] = []
    found = 0
    for event in reversed(events_after_restart(context.log())):
        if found == n:
            break
        if isinstance(event, UserUttered | UserUtteranceReverted):
            found += 1
            if isinstance(event, UserUttered):
                out.append(event.intent_name)
    return out


def action_two_stage_fallback(runner: Runner, context: Context) -> list[Event]:
    """A loop: ask to affirm the intent, then to rephrase, then give up with the
    default fallback; a clarified message replaces the unclear one."""
    tracker = context.tracker
    ts = context.clock()
    events: list[Event] = []
    just_activated = tracker.active_form_name != "action_two_stage_fallback"
    if just_activated:
        events.append(ActiveLoop(name="action_two_stage_fallback", timestamp=ts))
    intent = tracker.latest_intent
    two_fallbacks = _last_intents(context, 2) == [NLU_FALLBACK, NLU_FALLBACK]
    affirmation_failed = _last_intents(context, 3) == [
        OUT_OF_SCOPE,
        NLU_FALLBACK,
        OUT_OF_SCOPE,
    ]
    done = (
        intent not in (NLU_FALLBACK, OUT_OF_SCOPE)
        or two_fallbacks
        or affirmation_failed
    )
    if not done:
        if just_activated or intent == NLU_FALLBACK:
            return events + runner.run_in(ASK_AFFIRMATION, context)
        return events + runner.run_in(ASK_REPHRASE, context)
    events.append(ActiveLoop(name=None, timestamp=ts))
    if two_fallbacks or affirmation_failed:
        return events + runner.run_in("action_default_fallback", context)
    message = dict(tracker.latest_message)
    message["intent"] = {**(message.get("intent") or {}), "confidence": 1.0}
    return [
        *events,
        UserUtteranceReverted(timestamp=ts),
        ActionExecuted(name=ACTION_LISTEN, timestamp=ts),
        UserUttered(
            text=message.get("text"),
            parse_data=message,
            input_channel=tracker.latest_input_channel,
            timestamp=ts,
        ),
    ]


def _last_action_was(context: Context, name: str, skip: int = 0) -> bool:
    """Rasa's ``last_executed_action_has``: the latest action but listens (after
    ``skip`` of them) is ``name``."""
    actions = [
        e
        for e in events_after_restart(context.log())
        if isinstance(e, ActionExecuted) and e.name != ACTION_LISTEN
    ]
    return len(actions) > skip and actions[-1 - skip].name == name


def _latest_user(context: Context) -> UserUttered:
    for event in reversed(context.log()):
        if isinstance(event, UserUttered):
            return event
    raise ActionFailed("action_revert_fallback_events", "no user message to revert to")


def action_revert_fallback_events(runner: Runner, context: Context) -> list[Event]:
    """Undo the fallback's questions once the user rephrased or affirmed."""
    ts = context.clock()

    def rephrasing() -> list[Event]:
        return [
            UserUtteranceReverted(timestamp=ts),
            UserUtteranceReverted(timestamp=ts),
            UserUtteranceReverted(timestamp=ts),
            ActionExecuted(name=ACTION_LISTEN, timestamp=ts),
        ]

    if _last_action_was(context, ASK_REPHRASE):
        return [*rephrasing(), _latest_user(context)]
    if _last_action_was(context, ASK_AFFIRMATION):
        events: list[Event] = [
            UserUtteranceReverted(timestamp=ts),
            UserUtteranceReverted(timestamp=ts),
            ActionExecuted(name=ACTION_LISTEN, timestamp=ts),
        ]
        if _last_action_was(context, ASK_REPHRASE, skip=1):
            events += rephrasing()
        last = _latest_user(context)
        parse = {**last.parse_data, "intent": {**last.intent, "confidence": 1.0}}
        return [
            *events,
            UserUttered(
                text=last.text,
                parse_data=parse,
                input_channel=last.input_channel,
                timestamp=ts,
            ),
        ]
    return []


# ---- slot mappings ---------------------------------------------------------------
def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _intent_is_desired(
    mapping: Mapping[str, Any], context: Context, domain: Domain
) -> bool:
    """Rasa's ``SlotMapping.intent_is_desired``, with the active form's
    ``ignored_intents`` when the mapping belongs to it."""
    intents = _as_list(mapping.get("intent"))
    not_intents = _as_list(mapping.get("not_intent"))
    loop = context.tracker.active_form_name
    if loop:
        conditions = mapping.get("conditions") or []
        if not conditions or any(c.get("active_loop") == loop for c in conditions):
            spec = domain.form_specs.get(loop)
            not_intents += list(spec.ignored_intents) if spec else []
    intent = context.tracker.latest_intent
    return (not intents and intent not in not_intents) or intent in intents


def _conditions_hold(mapping: Mapping[str, Any], context: Context, slot: str) -> bool:
    """Rasa's ``_matches_mapping_conditions`` (``from_trigger_intent`` is exempt)."""
    conditions = mapping.get("conditions")
    if not conditions or mapping.get("type") == "from_trigger_intent":
        return True
    tracker = context.tracker
    requested = tracker.slots.get(REQUESTED_SLOT)
    if tracker.active_form.get("rejected") and requested == slot:
        return False
    loop = tracker.active_form_name
    for condition in conditions:
        active = condition.get("active_loop")
        if active and active == loop:
            wanted = condition.get(REQUESTED_SLOT)
            if not wanted or wanted == requested:
                return True
        if active is None and loop is None:
            return True
    return False


def _entity_values(mapping: Mapping[str, Any], context: Context) -> list[Any]:
    """The values of the latest message's entities of the mapping's type, role
    and group (a mapping without a role takes only entities without one)."""
    entities = context.tracker.latest_message.get("entities") or []
    wanted = (mapping.get("entity"), mapping.get("role"), mapping.get("group"))
    if not any(
        (e.get("entity"), e.get("role"), e.get("group")) == wanted for e in entities
    ):
        return []
    return [
        e.get("value")
        for e in entities
        if e.get("entity") == wanted[0]
        and (wanted[1] is None or e.get("role") == wanted[1])
        and (wanted[2] is None or e.get("group") == wanted[2])
    ]


def _mapping_value(mapping: Mapping[str, Any], context: Context) -> list[Any]:
    kind = mapping.get("type")
    loop = context.tracker.active_form_name
    if kind == "from_entity":
        return _entity_values(mapping, context)
    if kind == "from_intent":
        return [mapping.get("value")]
    if kind == "from_trigger_intent":
        loops = [c.get("active_loop") for c in mapping.get("conditions") or []]
        if loop is None or (loops and loop not in loops):
            return []
        return [mapping.get("value")]
    if kind == "from_text":
        return [context.tracker.latest_message.get("text")]
    return []


def _unique_in_form(
    runner: Runner, mapping: Mapping[str, Any], slot: str, context: Context
) -> bool:
    """False when the mapping takes an entity that fills several slots of the
    active form, and the form did not ask for this one (Rasa's unique entity
    mapping check)."""
    loop = context.tracker.active_form_name
    if mapping.get("type") != "from_entity" or not loop:
        return True
    if context.tracker.slots.get(REQUESTED_SLOT) == slot:
        return True
    form = runner.forms.get(loop)
    if form is None or slot not in form.required:
        return True
    return not form._ambiguous(dict(mapping), slot, None)


def action_extract_slots(runner: Runner, context: Context) -> list[Event]:
    """Rasa 3's slot filling after a user message: each slot's first mapping that
    applies sets it; ``custom`` mappings call their action (slot and bot events
    kept); ``action_validate_slot_mappings`` checks the lot if the domain has it."""
    domain = runner.domain
    ts = context.clock()
    events: list[Event] = []
    called: set[str] = set()
    for slot in domain.slots:
        if slot.name == REQUESTED_SLOT:
            continue
        for mapping in slot.mappings:
            if not _intent_is_desired(mapping, context, domain):
                continue
            if not _conditions_hold(mapping, context, slot.name):
                continue
            if not _unique_in_form(runner, mapping, slot.name, context):
                continue
            values = _mapping_value(mapping, context)
            if values:
                value = values if slot.type == "list" else values[-1]
                if value is not None or context.slots.get(slot.name) is not None:
                    events.append(SlotSet(name=slot.name, value=value, timestamp=ts))
                    break
            action = mapping.get("action")
            if mapping.get("type") == "custom" and action and action not in called:
                called.add(action)
                events += _custom_slot_events(runner, action, context)
    return _validate_mappings(runner, events, context)


def _custom_slot_events(runner: Runner, action: str, context: Context) -> list[Event]:
    """A custom mapping's action: its slot and bot events; a failure fills
    nothing (a warning says so), as in Rasa."""
    try:
        events = runner.remote(action, context)
    except (ActionFailed, ActionRejected) as err:
        log.warning("slot mapping action %r filled nothing: %s", action, err.reason)
        return []
    kept: list[Event] = [e for e in events if isinstance(e, SlotSet | BotUttered)]
    for dropped in {e.type_name for e in events} - {"slot", "bot"}:
        log.info(
            "slot mapping action %r: its %r events are not applied", action, dropped
        )
    return kept


def _validate_mappings(
    runner: Runner, events: list[Event], context: Context
) -> list[Event]:
    """``action_validate_slot_mappings`` sees the candidates last in its tracker;
    its slot events win, the candidates it leaves alone stay (the custom
    mappings' bot messages are kept)."""
    if VALIDATE_SLOT_MAPPINGS not in runner.domain.action_index:
        return events
    slots = [e for e in events if isinstance(e, SlotSet)]
    said = [e for e in events if not isinstance(e, SlotSet)]
    validated = _custom_slot_events(
        runner, VALIDATE_SLOT_MAPPINGS, context.after(list(slots))
    )
    names = {e.name for e in validated if isinstance(e, SlotSet)}
    return [*said, *validated, *(e for e in slots if e.name not in names)]


BUILTINS: dict[str, Builtin] = {
    "action_listen": action_listen,
    "action_restart": action_restart,
    "action_session_start": action_session_start,
    "action_default_fallback": action_default_fallback,
    "action_deactivate_loop": action_deactivate_loop,
    "action_deactivate_form": action_deactivate_form,
    "action_revert_fallback_events": action_revert_fallback_events,
    ASK_AFFIRMATION: action_default_ask_affirmation,
    ASK_REPHRASE: action_default_ask_rephrase,
    "action_two_stage_fallback": action_two_stage_fallback,
    "action_unlikely_intent": action_unlikely_intent,
    "action_back": action_back,
    "action_extract_slots": action_extract_slots,
}
