"""Every registered event: wire round trip, equality, validation."""

import json

import msgpack
import pytest

from worker.errors import InvalidEvent
from worker.event_codec import event_from_dict
from worker.event_codec import event_to_dict
from worker.event_codec import events_from_dicts
from worker.events import EVENT_TYPES
from worker.events import ActionExecuted
from worker.events import Form
from worker.events import SlotSet
from worker.events import UserUttered


def now() -> float:
    return 1514764800.0


# One example per type, in Rasa Core 0.14's wire form.
EXAMPLES = [
    {"event": "slot", "name": "departure_airport", "value": "BER"},
    {"event": "restart"},
    {"event": "reset_slots"},
    {
        "event": "user",
        "text": "Hey",
        "parse_data": {"intent": {"name": "greet", "confidence": 0.9}, "entities": []},
    },
    {"event": "bot", "text": "Hey there!", "data": {}},
    {"event": "rewind"},
    {
        "event": "reminder",
        "action": "my_action",
        "date_time": "2018-09-03T11:41:10.128172",
        "name": "my_reminder",
        "kill_on_user_msg": True,
    },
    {"event": "undo"},
    {"event": "export"},
    {"event": "followup", "name": "my_action"},
    {"event": "pause"},
    {"event": "resume"},
    {"event": "action", "name": "my_action"},
    {"event": "agent", "text": "Hey, how are you?"},
    {"event": "form", "name": "restaurant_form"},
    {"event": "form_validation", "validate": False},
    {"event": "action_execution_rejected", "name": "my_form"},
    # Rasa 2.x/3.x (rasa/shared/core/events.py of Rasa 3.6)
    {"event": "active_loop", "name": "restaurant_form"},
    {"event": "loop_interrupted", "is_interrupted": True},
    {"event": "session_started"},
    {"event": "entities", "entities": [{"entity": "cuisine", "value": "thai"}]},
]
#: Rasa 3's optional fields of older types, kept as given.
RASA3_FIELDS = [
    {"event": "bot", "text": "Hi", "data": {"buttons": []}, "metadata": {"k": 1}},
    {"event": "action", "name": "utter_greet", "action_text": "Hi there"},
    {"event": "active_loop", "name": None},
    {
        "event": "user",
        "text": "hi",
        "parse_data": {"intent": {"name": "greet"}, "entities": []},
        "input_channel": "rest",
        "metadata": {"device": "web"},
    },
]


def test_examples_cover_every_registered_type():
    assert {e["event"] for e in EXAMPLES} == set(EVENT_TYPES)


@pytest.mark.parametrize("wire", EXAMPLES + RASA3_FIELDS, ids=lambda d: d["event"])
def test_round_trip_json_and_msgpack(wire):
    event = event_from_dict(wire, now)
    out = event_to_dict(event)
    assert out["event"] == wire["event"]
    assert out["timestamp"] == now()
    for key, value in wire.items():
        if key != "parse_data":
            assert out[key] == value
    for encoded in (json.loads(json.dumps(out)), msgpack.unpackb(msgpack.packb(out))):
        again = event_from_dict(encoded, now)
        assert again == event
        assert event_to_dict(again) == out


def test_output_always_has_the_documented_keys():
    action = event_to_dict(event_from_dict({"event": "action", "name": "a"}, now))
    assert action["policy"] is None and action["confidence"] is None
    user = event_to_dict(event_from_dict({"event": "user", "text": "hi"}, now))
    assert user["input_channel"] is None
    assert user["parse_data"]["entities"] == []
    bot = event_to_dict(event_from_dict({"event": "bot", "text": "x"}, now))
    assert "data" in bot


def test_equality_follows_the_original():
    a = UserUttered(
        "hi", {"intent": {"name": "greet", "confidence": 0.2}, "entities": []}
    )
    b = UserUttered(
        "hi", {"intent": {"name": "greet", "confidence": 0.9}, "entities": []}
    )
    assert a == b
    assert ActionExecuted(name="x", policy="p", timestamp=1) == ActionExecuted(name="x")
    assert SlotSet(name="a", value=1) != SlotSet(name="a", value=2)


def test_active_loop_is_a_form_but_not_equal_to_one():
    """Code that reads form events reads Rasa 2's too; the wire name is kept."""
    loop = event_from_dict({"event": "active_loop", "name": "f"}, now)
    assert isinstance(loop, Form) and loop != Form(name="f")
    assert event_to_dict(loop)["event"] == "active_loop"


def test_an_explicit_timestamp_is_kept():
    event = event_from_dict({"event": "pause", "timestamp": 12.5}, now)
    assert event.timestamp == 12.5


@pytest.mark.parametrize(
    "bad",
    [
        {"event": "nope"},
        {"name": "x"},
        "slot",
        {"event": "slot", "value": 1},
        {"event": "action"},
        {"event": "action", "name": 3},
        {"event": "action", "name": "a", "confidence": "high"},
        {"event": "user", "parse_data": []},
        {"event": "user", "parse_data": {"intent": "greet", "entities": []}},
        {"event": "user", "parse_data": {"intent": {}, "entities": [{"x": 1}]}},
        {"event": "pause", "timestamp": "yesterday"},
        {"event": "form_validation", "validate": "no"},
        {"event": "topic", "topic": "question"},
        {"event": "active_loop", "name": 3},
        {"event": "loop_interrupted"},
        {"event": "loop_interrupted", "is_interrupted": "yes"},
        {"event": "entities"},
        {"event": "entities", "entities": {"entity": "a"}},
        {"event": "entities", "entities": [{"value": "x"}]},
        {"event": "entities", "entities": [{"entity": "a", "start": -1}]},
        {"event": "entities", "entities": [{"entity": "a", "confidence": "hi"}]},
        {"event": "bot", "text": "x", "metadata": "m"},
        {"event": "user", "text": "x", "parse_data": {}, "metadata": []},
        {"event": "action", "name": "a", "action_text": 5},
        # NOTE: Rasa 2+'s "stack" (conversation stacks) has no meaning here.
        {"event": "stack", "update": "[]"},
    ],
)
def test_malformed_events_are_rejected(bad):
    with pytest.raises(InvalidEvent):
        event_from_dict(bad, now)


def test_one_bad_item_rejects_the_list_and_names_its_index():
    with pytest.raises(InvalidEvent, match="event 1"):
        events_from_dicts([{"event": "pause"}, {"event": "bogus"}], now)


def test_export_never_takes_a_path_from_input():
    event = event_from_dict({"event": "export", "path": "/etc/passwd"}, now)
    assert event.path is None


def _user(**parse_data) -> dict:
    base = {"intent": {"name": "greet", "confidence": 0.9}, "entities": []}
    return {"event": "user", "text": "hi", "parse_data": {**base, **parse_data}}


# Fields the engine reads, with values of the wrong type or range (issue 11.2).
@pytest.mark.parametrize(
    "bad",
    [
        _user(intent={"name": "greet", "confidence": "0.9"}),
        _user(intent={"name": "greet", "confidence": [0.9]}),
        _user(intent={"name": "greet", "confidence": {"v": 1}}),
        _user(intent={"name": "greet", "confidence": True}),
        _user(intent={"name": "greet", "confidence": 1.5}),
        _user(intent={"name": "greet", "confidence": -0.1}),
        _user(intent={"name": "greet", "confidence": float("nan")}),
        _user(intent={"name": ["greet"]}),
        _user(entities=[{"entity": "x", "start": "0"}]),
        _user(entities=[{"entity": "x", "end": 1.5}]),
        _user(entities=[{"entity": "x", "start": -1}]),
        _user(entities=[{"entity": "x", "start": True}]),
        _user(entities=[{"entity": "x", "confidence": "high"}]),
        _user(entities=[{"entity": "x", "confidence": float("inf")}]),
        _user(entities=[{"entity": "x", "extractor": 1}]),
        _user(entities=[{"entity": 1}]),
        _user(entities={"entity": "x"}),
        _user(intent_ranking={"name": "greet"}),
        _user(intent_ranking=["greet"]),
        _user(intent_ranking=[{"name": "greet", "confidence": "x"}]),
        _user(intent_ranking=[{"name": 3, "confidence": 0.1}]),
        _user(text=["hi"]),
        {"event": "user", "text": 3},
        {"event": "user", "input_channel": 3},
        {"event": "action", "name": "a", "confidence": float("nan")},
        {"event": "action", "name": "a", "confidence": True},
        {"event": "action", "name": "a", "policy": 1},
        {"event": "action_execution_rejected", "name": "a", "confidence": "1"},
        {"event": "slot", "name": 3, "value": 1},
        {"event": "followup", "name": ["a"]},
        {"event": "form", "name": 3},
        {"event": "reminder", "action": "a", "date_time": 5},
        {"event": "bot", "text": {"t": 1}},
        {"event": "pause", "timestamp": float("inf")},
        {"event": "pause", "timestamp": True},
    ],
)
def test_fields_the_engine_reads_are_checked(bad):
    with pytest.raises(InvalidEvent):
        event_from_dict(bad, now)


def test_checked_fields_accept_what_the_engine_writes():
    good = _user(
        intent={"name": None, "confidence": 0},
        entities=[
            {"entity": "x", "start": 0, "end": 2, "value": {"any": ["thing"]}},
            {"entity": "y", "confidence": 0.5, "extractor": "regex"},
        ],
        intent_ranking=[{"name": "greet", "confidence": 1}, {"name": None}],
        text=None,
        custom={"kept": True},
    )
    event = event_from_dict(good, now)
    assert event.parse_data["custom"] == {"kept": True}
    action = {"event": "action", "name": "a", "policy": None, "confidence": 3.5}
    assert event_from_dict(action, now).confidence == 3.5
