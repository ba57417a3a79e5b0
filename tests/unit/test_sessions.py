"""Rasa 2+ sessions through the turn: a new conversation starts one, a user message
after ``session_expiration_time`` minutes of silence starts another (Rasa 3's
events and order), and the policies see a fresh start."""

from __future__ import annotations

import pytest

from trackerstore import InMemoryStore
from worker.domain import Domain
from worker.model import CoreModel
from worker.nlu import Interpreter
from worker.training.yaml_stories import parse_yaml_stories
from worker.turn import Engine

DOMAIN = """
version: "3.1"
intents: [greet, inform]
entities: [name]
slots:
  name:
    type: text
    influence_conversation: false
    mappings:
    - type: from_entity
      entity: name
  mood:
    type: text
    influence_conversation: false
    initial_value: fine
    mappings: []
responses:
  utter_greet: [{text: hi}]
  utter_ok: [{text: ok}]
session_config:
  session_expiration_time: %s
  carry_over_slots_to_new_session: %s
"""
STORIES = """
version: "3.1"
stories:
- story: greet
  steps:
  - intent: greet
  - action: utter_greet
- story: inform
  steps:
  - intent: inform
  - action: utter_ok
"""
CONFIG = {"policies": [{"name": "MemoizationPolicy", "max_history": 2}]}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_engine(expiry: float = 60, carry: bool = True) -> tuple[Engine, Clock]:
    domain = Domain.from_yaml(DOMAIN % (expiry, str(carry).lower()))
    core = CoreModel.from_steps(domain, parse_yaml_stories(STORIES, domain), CONFIG)
    clock = Clock()
    return Engine.for_model(core, Interpreter(), InMemoryStore(), clock=clock), clock


def events(engine: Engine, cid: str) -> list[tuple]:
    return [
        (e["event"], e.get("name") or e.get("text"), e.get("value"))
        for e in engine.tracker(cid, "ALL")["events"]
    ]


def test_a_new_conversation_starts_a_session():
    engine, _ = make_engine()
    assert engine.parse("c", "/greet")["next_action"] == "utter_greet"
    assert events(engine, "c") == [
        ("action", "action_session_start", None),
        ("session_started", None, None),
        ("action", "action_listen", None),
        ("user", "/greet", None),
    ]
    assert "action_session_start" in engine.domain.action_names
    # a 0.x domain has no sessions: its action list (the policies' outputs) is kept
    old = Domain.from_yaml("intents: [greet]\nactions: [utter_greet]")
    assert "action_session_start" not in old.action_names


def test_silence_longer_than_the_expiry_starts_a_new_session_carrying_slots():
    engine, clock = make_engine(expiry=1)
    engine.parse("c", '/inform{"name": "Ada"}')
    engine.continue_("c", "utter_ok", [{"event": "slot", "name": "mood", "value": "x"}])
    clock.now += 60  # exactly the expiry: not more, same session
    engine.parse("c", "/greet")
    engine.continue_("c", "utter_greet", [])
    before = len(events(engine, "c"))
    clock.now += 61
    reply = engine.parse("c", "/greet")
    assert reply["next_action"] == "utter_greet"
    assert events(engine, "c")[before:] == [
        ("action", "action_session_start", None),
        ("session_started", None, None),
        ("slot", "mood", "x"),
        ("slot", "name", "Ada"),
        ("action", "action_listen", None),
        ("user", "/greet", None),
    ]
    tracker = reply["tracker"]
    assert tracker["slots"] == {"name": "Ada", "mood": "x"}
    # the state is a fresh start: the last session's actions are gone
    assert tracker["latest_action_name"] == "action_listen"


def test_without_carry_over_the_slots_start_at_their_initial_values():
    engine, clock = make_engine(expiry=1, carry=False)
    engine.parse("c", '/inform{"name": "Ada"}')
    clock.now += 120
    reply = engine.parse("c", "/greet")
    assert reply["tracker"]["slots"] == {"name": None, "mood": "fine"}
    assert [e[0] for e in events(engine, "c")[-4:]] == [
        "action",
        "session_started",
        "action",
        "user",
    ]


@pytest.mark.parametrize("expiry", [0, 60])
def test_no_new_session_within_the_expiry_or_when_it_is_zero(expiry):
    engine, clock = make_engine(expiry=expiry)
    engine.parse("c", "/greet")
    engine.continue_("c", "utter_greet", [])
    clock.now += 3599
    engine.parse("c", "/greet")
    starts = [e for e in events(engine, "c") if e[0] == "session_started"]
    assert len(starts) == 1
