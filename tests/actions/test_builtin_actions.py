"""The built-in actions' events, as Rasa 3.6 logs them; slot extraction with its
mappings, conditions and custom actions; the form loop without a server."""

from __future__ import annotations

import pytest

from tests.actions.servers import JsonServer
from tests.actions.talk import Talk
from worker.actions import ActionEndpoint
from worker.actions import ActionRejected
from worker.actions import ActionRunner
from worker.actions.builtin import session_start_events
from worker.domain import Domain
from worker.events import ActionExecuted
from worker.events import ActiveLoop
from worker.events import BotUttered
from worker.events import Form
from worker.events import Restarted
from worker.events import SessionStarted
from worker.events import SlotSet
from worker.events import UserUtteranceReverted
from worker.events import UserUttered

DOMAIN = Domain.from_yaml(
    """
version: "3.1"
intents: [greet, inform, affirm, deny, bye]
entities: [city, name]
slots:
  city:
    type: text
    mappings:
      - {type: from_entity, entity: city, role: to}
  name:
    type: text
    mappings:
      - {type: from_entity, entity: name, not_intent: [bye]}
  happy:
    type: bool
    mappings:
      - {type: from_intent, intent: affirm, value: true}
      - {type: from_intent, intent: deny, value: false}
  names:
    type: list
    mappings: [{type: from_entity, entity: name}]
  note:
    type: text
    mappings:
      - type: from_text
        conditions: [{active_loop: note_form, requested_slot: note}]
  mood:
    type: text
    initial_value: calm
    mappings: [{type: custom, action: action_guess_mood}]
forms:
  note_form: {required_slots: [city, note]}
responses:
  utter_default: [{text: "Sorry?"}]
  utter_restart: [{text: "Starting over"}]
  utter_back: [{text: "Going back"}]
  utter_ask_rephrase: [{text: "Say it differently?"}]
  utter_ask_city: [{text: "To which city?"}]
  utter_ask_note: [{text: "Any note?"}]
actions: [action_guess_mood]
session_config: {session_expiration_time: 60, carry_over_slots_to_new_session: true}
"""
)


def _talk() -> Talk:
    return Talk(DOMAIN)


def _texts(events) -> list[str | None]:
    return [e.text for e in events if isinstance(e, BotUttered)]


def test_simple_builtins():
    runner, talk = ActionRunner(DOMAIN), _talk()
    talk.user("hi", "greet")
    assert talk.run(runner, "action_listen") == []
    restart = talk.run(runner, "action_restart")
    assert _texts(restart) == ["Starting over"] and restart[-1] == Restarted()
    fallback = talk.run(runner, "action_default_fallback")
    assert _texts(fallback) == ["Sorry?"]
    assert fallback[-1] == UserUtteranceReverted()
    back = talk.run(runner, "action_back")
    assert _texts(back) == ["Going back"]
    assert back[1:] == [UserUtteranceReverted(), UserUtteranceReverted()]
    assert talk.run(runner, "action_deactivate_loop") == [
        ActiveLoop(name=None),
        SlotSet(name="requested_slot", value=None),
    ]
    deactivated = talk.run(runner, "action_deactivate_form")
    assert type(deactivated[0]) is Form and deactivated[0].name is None


def test_builtins_without_their_responses_say_nothing():
    domain = Domain.from_yaml('version: "3.1"\nintents: [greet]\n')
    runner, talk = ActionRunner(domain), Talk(domain)
    assert talk.run(runner, "action_restart") == [Restarted()]
    assert talk.run(runner, "action_default_fallback") == [UserUtteranceReverted()]


def test_session_start_carries_slots_as_the_turn_does():
    runner, talk = ActionRunner(DOMAIN), _talk()
    talk.add(SlotSet(name="city", value="Oslo", timestamp=1.0))
    events = talk.run(runner, "action_session_start")
    assert events == [
        SessionStarted(),
        SlotSet(name="city", value="Oslo"),
        ActionExecuted(name="action_listen"),
    ]
    assert events == session_start_events(DOMAIN, talk.tracker.slots, 0.0)


def test_two_stage_fallback_affirms_then_rephrases_then_takes_the_clear_message():
    runner, talk = ActionRunner(DOMAIN), _talk()
    talk.user("blargh", "nlu_fallback")
    events = talk.step(runner, "action_two_stage_fallback")
    assert events[0] == ActiveLoop(name="action_two_stage_fallback")
    (question,) = [e for e in events if isinstance(e, BotUttered)]
    assert question.text == "Did you mean 'nlu_fallback'?"
    assert question.data["buttons"] == [
        {"title": "Yes", "payload": "/nlu_fallback"},
        {"title": "No", "payload": "/out_of_scope"},
    ]
    talk.listen()
    talk.user("no", "out_of_scope")
    events = talk.step(runner, "action_two_stage_fallback")
    assert _texts(events) == ["Say it differently?"]
    talk.listen()
    talk.user("I want to go to Oslo", "inform")
    events = talk.step(runner, "action_two_stage_fallback")
    assert events[0] == ActiveLoop(name=None)
    assert events[1:3] == [
        UserUtteranceReverted(),
        ActionExecuted(name="action_listen"),
    ]
    clarified = events[3]
    assert isinstance(clarified, UserUttered) and clarified.intent_name == "inform"
    assert clarified.intent["confidence"] == 1.0


def test_two_stage_fallback_gives_up_after_two_fallbacks():
    runner, talk = ActionRunner(DOMAIN), _talk()
    talk.user("blargh", "nlu_fallback")
    talk.step(runner, "action_two_stage_fallback")
    talk.listen()
    talk.user("blorgh", "nlu_fallback")
    events = talk.run(runner, "action_two_stage_fallback")
    assert events[0] == ActiveLoop(name=None)
    assert _texts(events) == ["Sorry?"] and events[-1] == UserUtteranceReverted()


# ---- slot extraction ---------------------------------------------------------------
def _extract(talk: Talk, runner: ActionRunner | None = None) -> dict[str, object]:
    events = talk.run(runner or ActionRunner(DOMAIN), "action_extract_slots")
    assert all(isinstance(e, SlotSet | BotUttered) for e in events)
    return {e.name: e.value for e in events if isinstance(e, SlotSet)}


def test_extraction_follows_each_mapping():
    talk = _talk()
    talk.user(
        "Ada and Bo to Oslo",
        "inform",
        [
            {"entity": "name", "value": "Ada"},
            {"entity": "name", "value": "Bo"},
            {"entity": "city", "value": "Rome", "role": "from"},
            {"entity": "city", "value": "Oslo", "role": "to"},
        ],
    )
    assert _extract(talk) == {"city": "Oslo", "name": "Bo", "names": ["Ada", "Bo"]}
    talk.user("yes", "affirm")
    assert _extract(talk) == {"happy": True}
    talk.user("bye Ada", "bye", [{"entity": "name", "value": "Ada"}])
    assert _extract(talk) == {"names": ["Ada"]}  # name: not_intent bye


def test_a_conditioned_mapping_fills_only_in_its_form_when_asked():
    talk = _talk()
    talk.user("some words", "inform")
    assert "note" not in _extract(talk)
    talk.add(
        ActiveLoop(name="note_form", timestamp=1.0),
        SlotSet(name="requested_slot", value="note", timestamp=1.0),
    )
    talk.user("some words", "inform")
    assert _extract(talk)["note"] == "some words"


def test_custom_mappings_call_their_action_and_keep_slots_and_messages():
    answer = {
        "events": [
            {"event": "slot", "name": "mood", "value": "sunny"},
            {"event": "restart"},  # not a slot: not applied
        ],
        "responses": [{"text": "noted"}],
    }
    with JsonServer(lambda path, body: (200, answer)) as server:
        runner = ActionRunner(DOMAIN, ActionEndpoint(server.url))
        talk = _talk()
        talk.user("great day", "inform")
        events = talk.run(runner, "action_extract_slots")
    assert [e for e in events if isinstance(e, SlotSet)] == [
        SlotSet(name="mood", value="sunny")
    ]
    assert _texts(events) == ["noted"]
    assert [r["body"]["next_action"] for r in server.requests] == ["action_guess_mood"]


def test_a_failing_custom_mapping_fills_nothing():
    with JsonServer(lambda path, body: (500, {})) as server:
        runner = ActionRunner(DOMAIN, ActionEndpoint(server.url))
        talk = _talk()
        talk.user("great day", "inform")
        assert talk.run(runner, "action_extract_slots") == []


# ---- the form loop -----------------------------------------------------------------
def test_a_form_validates_prefilled_slots_asks_rejects_and_ends():
    runner, talk = ActionRunner(DOMAIN), _talk()
    talk.add(SlotSet(name="city", value="Oslo", timestamp=1.0))
    talk.user("take a note", "inform")
    events = talk.step(runner, "note_form")
    assert events == [
        ActiveLoop(name="note_form"),
        SlotSet(name="city", value="Oslo"),  # the prefilled slot, validated
        SlotSet(name="requested_slot", value="note"),
        events[-1],
    ]
    assert _texts(events) == ["Any note?"]

    talk.listen()
    talk.user("hello", "greet")
    # NOTE: as Rasa 3, slot extraction logs its events without an action event
    talk.add(*talk.run(runner, "action_extract_slots"))
    events = talk.step(runner, "note_form")
    assert events == [
        SlotSet(name="note", value="hello"),
        SlotSet(name="requested_slot", value=None),
        ActiveLoop(name=None),
    ]


def test_a_form_rejects_a_message_that_fills_nothing():
    runner, talk = ActionRunner(DOMAIN), _talk()
    talk.user("take a note", "inform")
    talk.step(runner, "note_form")
    talk.listen()
    talk.user("bye", "bye")
    with pytest.raises(ActionRejected) as err:
        talk.run(runner, "note_form")
    assert err.value.reason == "Failed to extract slot city with action note_form"


def test_a_form_asks_with_a_custom_action_and_a_validator_can_end_it():
    domain = Domain.from_yaml(
        """
version: "3.1"
slots:
  city: {type: text, mappings: [{type: from_text}]}
  date: {type: text, mappings: [{type: from_text}]}
forms:
  trip_form: {required_slots: [city, date]}
actions: [action_ask_city, validate_trip_form]
"""
    )

    def answer(path, body):
        if body["next_action"] == "action_ask_city":
            return 200, {"responses": [{"text": "Where to, by custom action?"}]}
        # the validator sees the candidates last, and ends the form on 'anywhere'
        last = body["tracker"]["events"][-1]
        if last["event"] == "slot" and last["value"] == "anywhere":
            return 200, {
                "events": [{"event": "slot", "name": "requested_slot", "value": None}]
            }
        return 200, {"events": []}

    with JsonServer(answer) as server:
        runner = ActionRunner(domain, ActionEndpoint(server.url))
        talk = Talk(domain)
        events = talk.step(runner, "trip_form")
        assert _texts(events) == ["Where to, by custom action?"]
        talk.listen()
        talk.user("anywhere", "inform")
        talk.add(SlotSet(name="city", value="anywhere", timestamp=2.0))
        events = talk.step(runner, "trip_form")
    calls = [r["body"]["next_action"] for r in server.requests]
    assert calls == [
        "validate_trip_form",
        "action_ask_city",
        "validate_trip_form",
    ]
    assert events[-2:] == [
        SlotSet(name="requested_slot", value=None),
        ActiveLoop(name=None),
    ]
    validator_tracker = server.requests[-1]["body"]["tracker"]
    assert validator_tracker["slots"]["city"] == "anywhere"
    assert validator_tracker["latest_action_name"] == "trip_form"


def test_validate_slot_mappings_sees_the_candidates_and_wins():
    domain = Domain.from_yaml(
        """
version: "3.1"
intents: [inform]
entities: [name, city]
slots:
  name: {type: text, mappings: [{type: from_entity, entity: name}]}
  city: {type: text, mappings: [{type: from_entity, entity: city}]}
actions: [action_validate_slot_mappings]
"""
    )

    def answer(path, body):
        candidates = body["tracker"]["events"][-2:]
        assert [e["name"] for e in candidates] == ["city", "name"]
        return 200, {"events": [{"event": "slot", "name": "name", "value": "ADA"}]}

    with JsonServer(answer) as server:
        runner = ActionRunner(domain, ActionEndpoint(server.url))
        talk = Talk(domain)
        talk.user(
            "Ada from Oslo",
            "inform",
            [{"entity": "name", "value": "Ada"}, {"entity": "city", "value": "Oslo"}],
        )
        events = talk.run(runner, "action_extract_slots")
    assert events == [
        SlotSet(name="name", value="ADA"),
        SlotSet(name="city", value="Oslo"),
    ]


def test_responses_builtins_and_forms_do_not_read_the_log():
    """Only custom actions and history-reading built-ins read the whole log: the
    rest run on the tracker (the loop's ``events()`` is a store read)."""

    def no_log() -> list:
        raise AssertionError("the log was read")

    runner, talk = ActionRunner(DOMAIN), _talk()
    talk.user("to Oslo", "inform", [{"entity": "city", "value": "Oslo", "role": "to"}])
    for name in ("utter_default", "action_restart", "action_extract_slots"):
        runner.run(name, talk.tracker, no_log)
    talk.add(*talk.run(runner, "action_extract_slots"))
    talk.step(runner, "note_form")
    talk.listen()
    talk.user("a note", "inform")
    talk.add(*talk.run(runner, "action_extract_slots"))
    events = runner.run("note_form", talk.tracker, no_log)
    assert SlotSet(name="note", value="a note") in events
