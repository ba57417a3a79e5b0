"""``ActionRunner`` against real action servers: rasa_sdk's own (``python -m
rasa_sdk``) with tests/fixtures/actions/actions.py, and the same actions in
Node.js with only its standard library (the protocol is language-neutral). A
custom action reads and sets slots and sends a text and a domain response with an
argument; a rejection; formbot's form, validated by ``validate_restaurant_form``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.actions.servers import FIXTURES
from tests.actions.servers import ActionServer
from tests.actions.talk import Talk
from tests.data import ROOT
from worker.actions import ActionEndpoint
from worker.actions import ActionRejected
from worker.actions import ActionRunner
from worker.domain import Domain
from worker.events import ActiveLoop
from worker.events import BotUttered
from worker.events import SlotSet

pytestmark = pytest.mark.e2e

FORMBOT = Domain.load(ROOT / "tests" / "fixtures" / "formbot" / "domain.yml")
DOMAIN = Domain.load(FIXTURES / "domain.yml")


@pytest.fixture(scope="module", params=["rasa_sdk", "node"])
def action_server(request) -> Iterator[str]:
    if request.param == "node" and shutil.which("node") is None:
        pytest.skip("node is not installed: the Node.js action server cannot run")
    with ActionServer(request.param) as server:
        yield server.url


def test_a_custom_action_reads_sets_and_says(action_server):
    runner = ActionRunner(DOMAIN, ActionEndpoint(action_server))
    talk = Talk(DOMAIN)
    talk.user("hi, I am Ada", "greet", [{"entity": "name", "value": "Ada"}])
    talk.add(*talk.run(runner, "action_extract_slots"))
    events = talk.step(runner, "action_greet_by_name")
    texts = [e.text for e in events if isinstance(e, BotUttered)]
    assert texts == ["Hello Ada, visit 1", "It is sunny for you, Ada."]
    weather = events[1]
    assert isinstance(weather, BotUttered)
    assert weather.metadata is not None
    assert weather.metadata["utter_action"] == "utter_weather"
    assert weather.metadata["mood"] == "sunny"  # the argument, as Rasa logs it
    slots = [e for e in events if isinstance(e, SlotSet)]
    assert slots == [
        SlotSet(name="visits", value=1),
        SlotSet(name="last_intent", value="greet"),
    ]
    talk.listen()
    talk.user("again", "greet")
    events = talk.run(runner, "action_greet_by_name")
    assert events[0].text == "Hello Ada, visit 2"  # type: ignore[attr-defined]
    runner.close()


def test_a_rejection_from_the_server(action_server):
    runner = ActionRunner(DOMAIN, ActionEndpoint(action_server))
    talk = Talk(DOMAIN)
    talk.user("hi", "greet")
    with pytest.raises(ActionRejected) as err:
        talk.run(runner, "action_refuse")
    assert err.value.reason == "not today"
    runner.close()


def _form_turn(runner: ActionRunner, talk: Talk, text: str, intent: str, **entities):
    talk.listen()
    talk.user(text, intent, [{"entity": k, "value": v} for k, v in entities.items()])
    talk.add(*talk.run(runner, "action_extract_slots"))
    return talk.step(runner, "restaurant_form")


def _said(events) -> list[str]:
    return [e.text for e in events if isinstance(e, BotUttered)]


def test_formbot_validated_by_the_action_server(action_server):
    runner = ActionRunner(FORMBOT, ActionEndpoint(action_server))
    talk = Talk(FORMBOT)
    talk.user("im looking for a restaurant", "request_restaurant")
    events = talk.step(runner, "restaurant_form")
    assert events[0] == ActiveLoop(name="restaurant_form")
    assert SlotSet(name="requested_slot", value="cuisine") in events
    assert _said(events) == ["What cuisine?"]

    # an unknown cuisine: the validator empties the slot and says why; asked again
    events = _form_turn(runner, talk, "mexican please", "inform", cuisine="mexican")
    assert _said(events) == [
        "Cuisine type is not in the database, please try again",
        "What cuisine?",
    ]
    assert talk.tracker.slots["cuisine"] is None
    assert talk.tracker.slots["requested_slot"] == "cuisine"

    events = _form_turn(runner, talk, "Italian", "inform", cuisine="Italian")
    assert talk.tracker.slots["cuisine"] == "italian"  # the validator's value
    assert _said(events) == ["How many people?"]

    events = _form_turn(runner, talk, "for -3", "inform", number=-3)
    assert _said(events) == [
        "Number of people should be a positive integer, please try again",
        "How many people?",
    ]
    _form_turn(runner, talk, "for 2", "inform", number=2)
    assert talk.tracker.slots["num_people"] == 2
    assert talk.tracker.slots["requested_slot"] == "outdoor_seating"

    # a message that fills nothing the form asked for is rejected
    talk.listen()
    talk.user("stop", "stop")
    talk.add(*talk.run(runner, "action_extract_slots"))
    with pytest.raises(ActionRejected):
        talk.run(runner, "restaurant_form")

    _form_turn(runner, talk, "yes", "affirm")
    _form_turn(runner, talk, "no", "deny")
    events = _form_turn(runner, talk, "great food", "inform")
    # every required slot is filled: the form ends itself
    assert events[-2:] == [
        SlotSet(name="requested_slot", value=None),
        ActiveLoop(name=None),
    ]
    slots = talk.tracker.slots
    assert (slots["outdoor_seating"], slots["preferences"], slots["feedback"]) == (
        True,
        "no additional preferences",
        "great food",
    )
    assert talk.tracker.active_form == {}
    runner.close()
