"""Bad input gets a clear 4xx in the one error shape, and nothing is written."""

from __future__ import annotations

import uuid

import pytest
import requests

ERROR_KEYS = {"version", "status", "reason", "message", "details", "help", "code"}


@pytest.fixture
def started(pair) -> tuple[str, str]:
    """A conversation with one turn in it, and the URL of an instance."""
    url, cid = pair[0].url, f"bad-{uuid.uuid4().hex}"
    requests.post(f"{url}/conversations/{cid}/parse", json={"query": "/greet"})
    return url, cid


def stored(url: str, cid: str) -> list[dict]:
    r = requests.get(
        f"{url}/conversations/{cid}/tracker", params={"include_events": "ALL"}
    )
    return r.json()["events"]


def check_error(r: requests.Response, code: int, reason: str | None = None) -> dict:
    assert r.status_code == code, r.text
    body = r.json()
    assert set(body) == ERROR_KEYS
    assert body["status"] == "failure" and body["code"] == code and body["message"]
    if reason:
        assert body["reason"] == reason
    return body


CASES = [
    ("parse", b'{"query": ', 400, "InvalidJSON"),
    ("parse", b'{"query": "caf\xe9"}', 400, "InvalidEncoding"),
    ("parse", b'{"text": "hello"}', 400, "InvalidParameter"),
    ("parse", b'{"query": 42}', 400, "InvalidParameter"),
    ("parse", b'["/greet"]', 400, "InvalidParameter"),
    ("continue", b'{"executed_action": "utter_nope"}', 400, "UnknownAction"),
    ("continue", b'{"executed_action": 7}', 400, "InvalidParameter"),
    (
        "continue",
        b'{"executed_action": "utter_greet", "events": {"event": "pause"}}',
        400,
        "InvalidParameter",
    ),
    (
        "continue",
        b'{"executed_action": "utter_greet", "events": [{"event": "pause"},'
        b' {"event": "teleport"}]}',
        400,
        "InvalidEvent",
    ),
    (
        "continue",
        b'{"executed_action": "utter_greet", "events": [{"event": "slot",'
        b' "name": "not_a_slot", "value": 1}]}',
        400,
        "InvalidEvent",
    ),
    ("tracker/events", b'{"event": "teleport"}', 400, "InvalidEvent"),
    (
        "tracker/events",
        b'[{"event": "pause"}, {"event": "teleport"}]',
        400,
        "InvalidEvent",
    ),
    ("tracker/events", b'[{"event": "action"}]', 400, "InvalidEvent"),
    ("tracker/events", b"", 400, "InvalidJSON"),
]


@pytest.mark.parametrize(("path", "body", "code", "reason"), CASES)
def test_rejected_and_nothing_written(started, path, body, code, reason):
    url, cid = started
    before = stored(url, cid)
    r = requests.post(
        f"{url}/conversations/{cid}/{path}",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    check_error(r, code, reason)
    assert stored(url, cid) == before


def test_put_with_a_bad_event_keeps_the_old_log(started):
    url, cid = started
    before = stored(url, cid)
    r = requests.put(
        f"{url}/conversations/{cid}/tracker/events",
        json=[{"event": "pause"}, {"event": "teleport"}],
    )
    check_error(r, 400, "InvalidEvent")
    r = requests.put(f"{url}/conversations/{cid}/tracker/events", json={"a": 1})
    check_error(r, 400, "InvalidParameter")
    assert stored(url, cid) == before


def test_body_over_the_limit_is_413(started):
    url, cid = started
    before = stored(url, cid)
    big = b'{"query": "' + b"a" * (1024 * 1024) + b'"}'
    check_error(
        requests.post(f"{url}/conversations/{cid}/parse", data=big),
        413,
        "PayloadTooLarge",
    )
    assert stored(url, cid) == before


def test_missing_query_parameter_on_get(started):
    url, cid = started
    check_error(
        requests.get(f"{url}/conversations/{cid}/parse"), 400, "InvalidParameter"
    )


def test_unknown_route_and_method_use_the_error_shape(started):
    url, _ = started
    check_error(requests.get(f"{url}/nowhere"), 404)
    check_error(requests.delete(f"{url}/version"), 405)


def test_bad_until_is_400(started):
    url, cid = started
    check_error(
        requests.get(
            f"{url}/conversations/{cid}/tracker", params={"until": "yesterday"}
        ),
        400,
    )


def test_any_id_without_a_slash_is_a_conversation(pair):
    url = pair[0].url
    for cid in ["a b", "ümlaut", "x{y}z", "+-_=\\", "123"]:
        quoted = requests.utils.quote(cid, safe="")
        r = requests.post(
            f"{url}/conversations/{quoted}/parse", json={"query": "/greet"}
        )
        assert r.status_code == 200, (cid, r.text)
        assert r.json()["tracker"]["sender_id"] == cid
        assert cid in requests.get(f"{url}/conversations").json()
