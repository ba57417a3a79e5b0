"""Rasa Core 0.10-0.14's server tests, against two real instances that
share one Redis; consecutive requests of a scenario alternate between them."""

from __future__ import annotations

import itertools
import time
import uuid

import pytest
import requests

from api.testing import Client
from worker.domain import Domain
from worker.version import __version__

TEST_EVENTS = [
    {
        "event": "user",
        "text": "/goodbye",
        "parse_data": {"intent": {"confidence": 1.0, "name": "greet"}, "entities": []},
    },
    {"event": "bot", "text": "Welcome!", "data": {"test": True}},
    {"event": "slot", "name": "cuisine", "value": 34},
    {"event": "slot", "name": "cuisine", "value": "34"},
    {"event": "slot", "name": "location", "value": None},
    {"event": "slot", "name": "location", "value": [34, "34", None]},
]
EMPTY_MESSAGE = {"text": None, "intent": {}, "entities": []}


class Cluster:
    """Sends each request to the next instance in turn."""

    def __init__(self, servers):
        self._next = itertools.cycle([s.url for s in servers])

    def get(self, path, **kw):
        return requests.get(next(self._next) + path, timeout=10, **kw)

    def post(self, path, json=None, **kw):
        return requests.post(next(self._next) + path, json=json, timeout=10, **kw)

    def put(self, path, json=None, **kw):
        return requests.put(next(self._next) + path, json=json, timeout=10, **kw)


@pytest.fixture
def api(pair) -> Cluster:
    return Cluster(pair)


@pytest.fixture
def cid() -> str:
    return f"c-{uuid.uuid4().hex}"


def same_event(stored: dict, sent: dict) -> bool:
    keys = ("event", "text", "name", "value", "data")
    if any(stored.get(k) != sent.get(k) for k in keys if k in sent):
        return False
    if sent["event"] == "user":
        return (
            stored["parse_data"]["intent"]["name"]
            == sent["parse_data"]["intent"]["name"]
        )
    return True


def parse_and_continue(api: Cluster, cid: str, bot_events=()) -> None:
    assert (
        api.post(f"/conversations/{cid}/parse", {"query": "/greet"}).json()[
            "next_action"
        ]
        == "utter_greet"
    )
    reply = api.post(
        f"/conversations/{cid}/continue",
        {"executed_action": "utter_greet", "events": list(bot_events)},
    )
    assert reply.json()["next_action"] == "action_listen"


# ---- 8.1 -------------------------------------------------------------------------
def test_root(api):
    r = api.get("/")
    assert r.status_code == 200 and r.text.startswith("hello")


def test_version(api):
    assert api.get("/version").json()["version"] == __version__


def test_requesting_non_existent_tracker(api, cid):
    before = time.time()
    r = api.get(f"/conversations/{cid}/tracker")
    assert r.status_code == 200
    body = r.json()
    assert body["paused"] is False
    assert body["slots"] == {"location": None, "cuisine": None}
    assert body["sender_id"] == cid
    assert body["latest_message"] == EMPTY_MESSAGE
    [event] = body["events"]
    assert {k: v for k, v in event.items() if k != "timestamp"} == {
        "event": "action",
        "name": "action_listen",
        "policy": None,
        "confidence": None,
    }
    assert before - 1 <= event["timestamp"] <= time.time() + 1
    # NOTE: the original also created (saved) the conversation; a read never writes
    assert cid not in api.get("/conversations").json()


def test_continue_on_non_existent_conversation(api, cid):
    r = api.post(
        f"/conversations/{cid}/continue", {"events": [], "executed_action": None}
    )
    assert r.status_code == 200
    body = r.json()
    assert body["next_action"] == "action_listen"
    tracker = body["tracker"]
    assert tracker["events"] is None
    assert tracker["paused"] is False
    assert tracker["sender_id"] == cid
    assert tracker["slots"] == {"location": None, "cuisine": None}
    assert tracker["latest_message"] == EMPTY_MESSAGE


def test_parse(api, cid):
    r = api.post(f"/conversations/{cid}/parse", {"query": "/greet"})
    assert r.status_code == 200
    body = r.json()
    assert body["next_action"] == "utter_greet"
    assert body["tracker"]["events"] is None
    assert body["tracker"]["latest_message"]["text"] == "/greet"
    assert body["tracker"]["latest_message"]["intent"] == {
        "confidence": 1.0,
        "name": "greet",
    }


def test_parse_by_get_and_by_q(api, cid):
    assert (
        api.get(f"/conversations/{cid}/parse", params={"q": "/greet"}).json()[
            "next_action"
        ]
        == "utter_greet"
    )
    assert api.post(f"/conversation/{cid}/parse", {"q": "/greet"}).status_code == 200


def test_continue(api, cid):
    parse_and_continue(api, cid)
    tracker = api.get(f"/conversations/{cid}/tracker").json()
    assert tracker["latest_message"]["text"] == "/greet"
    assert [e["event"] for e in tracker["events"]] == [
        "action",
        "user",
        "action",
        "action",
    ]


@pytest.mark.parametrize("event", TEST_EVENTS, ids=lambda e: e["event"])
def test_pushing_events_as_a_list(api, cid, event):
    parse_and_continue(api, cid)
    assert api.post(f"/conversations/{cid}/tracker/events", [event]).status_code == 200
    events = api.get(f"/conversations/{cid}/tracker").json()["events"]
    assert len(events) == 5
    assert same_event(events[4], event)


def test_put_tracker(api):
    for path in (
        "/conversations/pushtracker/tracker",
        "/conversations/pushtracker/tracker/events",
    ):
        r = api.put(path, TEST_EVENTS)
        assert r.status_code == 200
        body = r.json()
        assert len(body["events"]) == len(TEST_EVENTS)
        assert body["sender_id"] == "pushtracker"
        stored = api.get("/conversations/pushtracker/tracker").json()["events"]
        assert len(stored) == len(TEST_EVENTS)
        assert all(same_event(s, e) for s, e in zip(stored, TEST_EVENTS, strict=True))


# ---- 8.2 -------------------------------------------------------------------------
def test_list_conversations(api, cid):
    api.post(f"/conversations/{cid}/parse", {"query": "/greet"})
    conversations = api.get("/conversations").json()
    assert isinstance(conversations, list) and cid in conversations


def test_remote_append_events(api, cid):
    user, bot = TEST_EVENTS[0], TEST_EVENTS[1]
    assert api.post(f"/conversations/{cid}/tracker/events", [user, bot]).ok
    events = api.get(f"/conversations/{cid}/tracker").json()["events"]
    assert [e["event"] for e in events] == ["action", "user", "bot"]
    assert events[0]["name"] == "action_listen"


def test_remote_client(slots_server, cid):
    """A client that runs the actions itself, as 0.10's RemoteAgent did."""
    api = Cluster(slots_server)
    domain = Domain.from_yaml(api.get("/domain", headers={"Accept": "yml"}).text)

    def utter(action: str, reply: dict) -> list[dict]:
        text = domain.templates[action][0]["text"].format(**reply["tracker"]["slots"])
        return [{"event": "bot", "text": text, "data": None}]

    Client(slots_server[0].url).turn(cid, '/greet{"name": "Rasa"}', utter)
    events = api.get(f"/conversations/{cid}/tracker").json()["events"]
    assert [
        (e["event"], e.get("name"), e.get("text"), e.get("value")) for e in events
    ] == [
        ("action", "action_listen", None, None),
        ("user", None, '/greet{"name": "Rasa"}', None),
        ("slot", "name", None, "Rasa"),
        ("action", "utter_greet", None, None),
        ("bot", None, "hey there Rasa!", None),
        ("action", "action_listen", None, None),
    ]


# ---- 8.3 / 8.4 ---------------------------------------------------------------------
def test_status(api):
    body = api.get("/status").json()
    assert body["is_ready"] is True and body["model_fingerprint"]


@pytest.mark.parametrize("event", TEST_EVENTS, ids=lambda e: e["event"])
def test_pushing_one_event(api, cid, event):
    parse_and_continue(api, cid, [{"event": "bot", "text": "hey there!"}])
    assert api.post(f"/conversations/{cid}/tracker/events", event).status_code == 200
    events = api.get(f"/conversations/{cid}/tracker").json()["events"]
    assert len(events) == 6
    assert same_event(events[5], event)


def test_include_events_and_until(api, cid):
    parse_and_continue(api, cid)
    api.post(f"/conversations/{cid}/tracker/events", {"event": "restart"})
    path = f"/conversations/{cid}/tracker"
    assert len(api.get(path, params={"include_events": "ALL"}).json()["events"]) == 5
    assert (
        api.get(path, params={"include_events": "AFTER_RESTART"}).json()["events"] == []
    )
    assert api.get(path).json()["events"] == []
    assert api.get(path, params={"include_events": "applied"}).json()["events"] == []
    assert api.get(path, params={"include_events": "NONE"}).json()["events"] is None
    assert api.get(path, params={"events": "false"}).json()["events"] is None
    assert len(api.get(path, params={"ignore_restarts": "true"}).json()["events"]) == 5
    bad = api.get(path, params={"include_events": "SOME"})
    assert bad.status_code == 400 and bad.json()["details"]["parameter"] == (
        "include_events"
    )
    events = api.get(path, params={"include_events": "ALL"}).json()["events"]
    until = api.get(
        path, params={"include_events": "ALL", "until": events[1]["timestamp"]}
    ).json()
    assert len(until["events"]) == 2
    assert until["latest_message"]["text"] == "/greet"
    assert until["latest_action_name"] == "action_listen"


def test_nlu_only_parse(api):
    r = api.post("/parse", {"q": '/greet{"name": "Rasa"}'})
    assert r.status_code == 200
    assert r.json() == {
        "entities": [{"end": 22, "entity": "name", "start": 6, "value": "Rasa"}],
        "intent": {"confidence": 1.0, "name": "greet"},
        "intent_ranking": [{"confidence": 1.0, "name": "greet"}],
        "text": '/greet{"name": "Rasa"}',
    }


def test_domain(api):
    as_yml = api.get("/domain", headers={"Accept": "yml"})
    assert as_yml.status_code == 200
    assert as_yml.headers["Content-Type"].startswith("application/x-yml")
    domain = Domain.from_yaml(as_yml.text)
    assert api.get("/domain", headers={"Accept": "application/json"}).json() == (
        domain.as_dict()
    )
    assert api.get("/domain", headers={"Accept": "*/*"}).json() == domain.as_dict()
    bad = api.get("/domain", headers={"Accept": "text/html"})
    assert bad.status_code == 406 and bad.json()["reason"] == "InvalidHeader"
