"""``ActionRunner`` against real action servers: rasa_sdk's own (``python -m
rasa_sdk``) with tests/fixtures/actions/actions.py, and the same actions in
Node.js with only its standard library (the protocol is language-neutral). A
custom action reads and sets slots and sends a text and a domain response with an
argument; a rejection; formbot's form, validated by ``validate_restaurant_form``."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from api.testing import free_port
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

FIXTURES = ROOT / "tests" / "fixtures" / "actions"
FORMBOT = Domain.load(ROOT / "tests" / "fixtures" / "formbot" / "domain.yml")
DOMAIN = Domain.from_yaml(
    """
version: "3.1"
intents: [greet]
slots:
  name: {type: text, mappings: [{type: from_entity, entity: name}]}
  visits: {type: float, mappings: [{type: custom}]}
  last_intent: {type: text, mappings: [{type: custom}]}
entities: [name]
responses:
  utter_weather: [{text: "It is {mood} for you, {name}."}]
actions: [action_greet_by_name, action_refuse]
"""
)


def _wait_ready(process: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"action server exited with {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("action server not ready after 60s")


def _rasa_sdk(port: int) -> subprocess.Popen:
    module = "tests.fixtures.actions.actions"
    command = [
        sys.executable,
        "-m",
        "rasa_sdk",
        "--actions",
        module,
        "--port",
        str(port),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _node(port: int) -> subprocess.Popen:
    return subprocess.Popen(
        ["node", str(FIXTURES / "server.js"), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


@pytest.fixture(scope="module", params=["rasa_sdk", "node"])
def action_server(request) -> Iterator[str]:
    if request.param == "node" and shutil.which("node") is None:
        pytest.skip("node is not installed: the Node.js action server cannot run")
    port = free_port()
    process = (_rasa_sdk if request.param == "rasa_sdk" else _node)(port)
    try:
        # rasa_sdk answers /health; node answers any path (a 404 is an answer)
        health = f"http://127.0.0.1:{port}/health"
        if request.param == "node":
            _wait_node(process, port)
        else:
            _wait_ready(process, health)
        yield f"http://127.0.0.1:{port}/webhook"
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    """The server and what it started (its own process group)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _wait_node(process: subprocess.Popen, port: int) -> None:
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"node exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("node server not ready after 30s")


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
