"""Bad input gets a clear 4xx in the one error shape, and nothing is written."""

from __future__ import annotations

import json
import socket
import uuid

import pytest
import redis
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
    # past Python's own int-string limit (4300 digits), which raises ValueError
    ("parse", b'{"query": 1' + b"0" * 5000 + b"}", 400, "InvalidJSON"),
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


# ---- issue 11: hostile clients ------------------------------------------------------
# Each JSON limit on every route that reads JSON, over real HTTP: a 400 InvalidJSON
# naming the limit, and nothing written.
DEEP = "[" * 65 + "]" * 65  # one level over the limit
VERY_DEEP = "[" * 1000 + "]" * 1000  # past Python's own recursion limit
HOSTILE_VALUES = {
    "depth": DEEP,
    "depth-1000": VERY_DEEP,
    "integer-digits": "1" + "0" * 4000,
    "integer-64bit": str(2**64),
    "float-overflow": "1e999",
    "nan": "NaN",
    "infinity": "-Infinity",
    "surrogate": '"\\ud800"',
}
JSON_ROUTES = [
    ("POST", "/conversations/{cid}/parse", '{{"query": "/greet", "x": {v}}}'),
    (
        "POST",
        "/conversations/{cid}/continue",
        '{{"executed_action": "utter_greet", "events": [{{"event": "slot",'
        ' "name": "location", "value": {v}}}]}}',
    ),
    (
        "POST",
        "/conversations/{cid}/tracker/events",
        '{{"event": "bot", "text": "x", "data": {v}}}',
    ),
    ("PUT", "/conversations/{cid}/tracker/events", '[{{"event": "bot", "data": {v}}}]'),
    ("PUT", "/conversations/{cid}/tracker", '[{{"event": "bot", "data": {v}}}]'),
    ("POST", "/parse", '{{"q": "/greet", "x": {v}}}'),
    ("PUT", "/model", '{{"name": {v}}}'),
    ("POST", "/train?name=hostile&wait=false", '{{"nlu": {{"rasa_nlu_data": {v}}}}}'),
]


@pytest.mark.parametrize("kind", HOSTILE_VALUES)
@pytest.mark.parametrize(("method", "path", "template"), JSON_ROUTES)
def test_json_beyond_the_limits_is_400_on_every_route(
    started, method, path, template, kind
):
    url, cid = started
    before = stored(url, cid)
    body = template.format(v=HOSTILE_VALUES[kind])
    r = requests.request(
        method, url + path.format(cid=cid), data=body.encode(), timeout=30
    )
    if path == "/model" and len(body) > 4096:  # the body limit of PUT /model
        check_error(r, 413, "PayloadTooLarge")
    else:
        error = check_error(r, 400, "InvalidJSON")
        assert "limit" in error["details"], error
    assert stored(url, cid) == before


def test_the_deepest_storable_event_can_be_answered_for_ever(started):
    """An event just within the limit is stored, and every later answer about the
    conversation works; one level more is refused and nothing is stored."""
    url, cid = started
    too_deep = "[" * 300 + "]" * 300
    r = requests.post(
        f"{url}/conversations/{cid}/tracker/events",
        data=f'{{"event": "bot", "data": {too_deep}}}',
    )
    check_error(r, 400, "InvalidJSON")
    assert requests.get(f"{url}/conversations/{cid}/tracker").status_code == 200
    # the body's own three levels ({"events": [{ ... }]}) count
    deep = "[" * 61 + "]" * 61
    ok = requests.post(
        f"{url}/conversations/{cid}/continue",
        data=f'{{"executed_action": "utter_greet", "events": [{{"event": "bot",'
        f' "data": {deep}}}]}}',
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["tracker"]["sender_id"] == cid
    for _ in range(2):
        again = requests.post(f"{url}/conversations/{cid}/continue", json={})
        assert again.status_code == 200, again.text
        assert requests.get(
            f"{url}/conversations/{cid}/tracker", params={"include_events": "ALL"}
        ).ok
    r = requests.post(f"{url}/conversations/{cid}/parse", json={"query": "/greet"})
    assert r.status_code == 200, r.text


def test_json_inside_a_message_text_is_bounded_too(started):
    """``/intent{...}`` entities are client JSON as well: beyond the limits they are
    ignored like any invalid entity JSON, and the conversation still answers."""
    url, cid = started
    for value in ("[" * 300 + "]" * 300, "1" + "0" * 5000, "1e999", str(2**64)):
        text = '/greet{"location": ' + value + "}"
        r = requests.post(f"{url}/conversations/{cid}/parse", json={"query": text})
        assert r.status_code == 200, r.text
        assert r.json()["tracker"]["latest_message"]["entities"] == []
        nlu = requests.post(f"{url}/parse", json={"q": text})
        assert nlu.status_code == 200 and nlu.json()["entities"] == []
        assert requests.get(f"{url}/conversations/{cid}/tracker").status_code == 200


def test_json_and_yaml_in_stories_domains_and_configs_are_bounded(pair):
    url = pair[0].url
    deep = '{"location": ' + "[" * 1000 + "]" * 1000 + "}"
    r = requests.post(f"{url}/evaluate", data=f"## s\n* greet{deep}\n  - utter_greet\n")
    check_error(r, 400, "InvalidTrainingData")
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n"
        for p, n in zip("abcdef", "bcdefg", strict=True)
    )  # 9**7 nodes expanded: over the limit, yet small enough for the old code
    stories = "## s\n* greet\n  - utter_greet\n"
    for bundle, reason in (
        (
            {"domain": "intents: " + "[" * 5000, "stories": stories},
            "InvalidTrainingData",
        ),
        ({"domain": "intents: [greet]", "stories": f"## s\n* greet{deep}\n"}, None),
        ({"nlu": "## intent:greet\n- hi\n", "config": laughs}, "InvalidConfig"),
    ):
        r = requests.post(
            f"{url}/train", params={"name": "bounded", "wait": "false"}, json=bundle
        )
        check_error(r, 400, reason)


# Events that pass the old validation but break the engine: refused, nothing stored,
# and the conversation still answers.
def _user(**parse_data) -> dict:
    base = {"intent": {"name": "greet", "confidence": 0.9}, "entities": []}
    return {"event": "user", "text": "hi", "parse_data": {**base, **parse_data}}


BAD_EVENTS = {
    "confidence-string": _user(intent={"name": "greet", "confidence": "high"}),
    "confidence-list": _user(intent={"name": "greet", "confidence": [0.9]}),
    "confidence-over-1": _user(intent={"name": "greet", "confidence": 7}),
    "confidence-bool": _user(intent={"name": "greet", "confidence": True}),
    "intent-name-number": _user(intent={"name": 3}),
    "entity-start-string": _user(entities=[{"entity": "cuisine", "start": "0"}]),
    "entity-confidence": _user(entities=[{"entity": "cuisine", "confidence": "x"}]),
    "ranking-not-list": _user(intent_ranking={"name": "greet"}),
    "ranking-confidence": _user(intent_ranking=[{"name": "greet", "confidence": "x"}]),
    "parse-text-number": _user(text=5),
    "action-confidence-string": {"event": "action", "name": "x", "confidence": "1"},
    "action-policy-number": {"event": "action", "name": "x", "policy": 1},
    "timestamp-string": {"event": "pause", "timestamp": "now"},
}


@pytest.mark.parametrize("kind", BAD_EVENTS)
def test_events_the_engine_cannot_read_are_refused(started, kind):
    url, cid = started
    before = stored(url, cid)
    for path in ("tracker/events", "continue"):
        body = BAD_EVENTS[kind]
        if path == "continue":
            body = {"executed_action": "utter_greet", "events": [body]}
        r = requests.post(f"{url}/conversations/{cid}/{path}", json=body)
        check_error(r, 400, "InvalidEvent")
    assert stored(url, cid) == before
    assert requests.post(f"{url}/conversations/{cid}/continue", json={}).ok


def test_until_must_be_finite(started):
    url, cid = started
    for value in ("nan", "inf", "-inf"):
        r = requests.get(f"{url}/conversations/{cid}/tracker", params={"until": value})
        check_error(r, 400, "InvalidParameter")


# Chunked bodies: read (within the limit), never taken for an empty body.
def test_a_chunked_continue_is_read_not_dropped(started):
    url, cid = started
    body = json.dumps(
        {
            "executed_action": "utter_greet",
            "events": [{"event": "slot", "name": "location", "value": "Paris"}],
        }
    ).encode()
    chunks = iter([body[:10], body[10:]])  # a generator makes requests chunk
    r = requests.post(f"{url}/conversations/{cid}/continue", data=chunks)
    assert r.status_code == 200, r.text
    assert r.json()["tracker"]["slots"]["location"] == "Paris"
    events = stored(url, cid)
    assert [e["event"] for e in events[-3:-1]] == ["action", "slot"]
    assert events[-3]["name"] == "utter_greet"


def test_a_chunked_body_over_the_limit_is_413(started):
    url, cid = started
    before = stored(url, cid)
    big = b'{"query": "' + b"a" * (1024 * 1024) + b'"}'
    chunks = iter([big[i : i + 65536] for i in range(0, len(big), 65536)])
    r = requests.post(f"{url}/conversations/{cid}/parse", data=chunks)
    check_error(r, 413, "PayloadTooLarge")
    assert stored(url, cid) == before


def test_a_chunked_multipart_upload_is_411(pair):
    url = pair[0].url
    body = (
        b'--b\r\nContent-Disposition: form-data; name="model"; filename="m"\r\n'
        b"\r\nxyz\r\n--b--\r\n"
    )
    r = requests.post(
        f"{url}/model",
        params={"name": "chunked"},
        data=iter([body]),
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    check_error(r, 411, "LengthRequired")


# Every route, every shape.
def test_ids_in_the_path_are_checked_once_for_all_routes(pair):
    url = pair[0].url
    for bad in ("", "%FF", "%FE", "a%00b", "a%1Fb", "x" * 257):
        for method, path in (
            ("POST", f"/conversations/{bad}/parse"),
            ("POST", f"/conversations/{bad}/continue"),
            ("GET", f"/conversations/{bad}/tracker"),
            ("POST", f"/conversations/{bad}/tracker/events"),
            ("GET", f"/conversation/{bad}/tracker"),
        ):
            r = requests.request(method, url + path, json={"query": "/greet"})
            assert r.status_code == 400, (bad, path, r.text)
            assert r.json()["reason"] in ("InvalidParameter", "InvalidEncoding")
    assert "\ufffd" not in requests.get(f"{url}/conversations").json()
    r = requests.get(f"{url}/parse", params={"q": "/greet"}, timeout=5)
    assert r.ok
    check_error(requests.get(f"{url}/parse?q=%FF"), 400, "InvalidEncoding")
    ok = requests.post(f"{url}/conversations/{'x' * 256}/parse", json={"q": "/greet"})
    assert ok.status_code == 200, ok.text


def test_put_model_with_a_name_that_is_not_a_string(pair):
    for name in (123, None, ["a"], {"a": 1}, ""):
        r = requests.put(f"{pair[0].url}/model", json={"name": name})
        check_error(r, 400, "InvalidParameter")


def test_training_overrides_of_the_wrong_type_are_400(pair):
    url = pair[0].url
    nlu = {"rasa_nlu_data": {"common_examples": [{"text": "hi", "intent": "greet"}]}}
    for params in (
        {"epochs": "abc"},
        {"epochs": ["1", "2"]},
        {"epochs": "1.5"},
        {"learning_rate": ".nan"},
        {"sublinear_tf": "3"},
    ):
        r = requests.post(
            f"{url}/train",
            params={"name": "typed", "wait": "false", **params},
            json=nlu,
        )
        check_error(r, 400, "InvalidConfig")


def test_non_utf8_multipart_part_is_400(pair):
    r = requests.post(
        f"{pair[0].url}/train",
        params={"name": "latin", "wait": "false"},
        files={"nlu": ("nlu.md", b"## intent:greet\n- caf\xe9\n")},
    )
    check_error(r, 400, "InvalidEncoding")


def test_training_errors_name_no_server_path(pair):
    r = requests.post(
        f"{pair[0].url}/train",
        params={"name": "broken", "wait": "false"},
        json={"domain": "intents: [greet\n", "stories": "## s\n* greet\n"},
    )
    body = check_error(r, 400)
    assert "domain.yml" in body["message"], body
    assert "/tmp" not in r.text and "dialogd-check" not in r.text, body


def test_one_spelling_of_each_reason(started):
    url, cid = started
    check_error(requests.get(f"{url}/nowhere"), 404, "NotFound")
    check_error(requests.delete(f"{url}/version"), 405, "MethodNotAllowed")
    r = requests.get(f"{url}/conversations/{cid}/tracker", params={"until": "x"})
    check_error(r, 400, "InvalidParameter")
    r = requests.post(
        f"{url}/model",
        params={"name": "m"},
        data=b"--b\r\nnot a part",
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    check_error(r, 400, "MalformedBody")


def test_head_wherever_get_reads(started):
    url, cid = started
    for path in (
        "/",
        "/version",
        "/status",
        "/domain",
        "/conversations",
        f"/conversations/{cid}/tracker",
        "/models",
        "/model",
    ):
        r = requests.head(url + path)
        assert r.status_code == 200, (path, r.status_code)
        assert r.content == b""
    before = stored(url, cid)
    # the legacy GET .../parse logs a message: it gets no HEAD
    r = requests.head(f"{url}/conversations/{cid}/parse", params={"q": "/greet"})
    assert r.status_code == 405
    assert stored(url, cid) == before


def test_get_tracker_of_an_unknown_conversation_writes_nothing(pair, redis_url):
    url, cid = pair[0].url, f"ghost-{uuid.uuid4().hex}"
    r = requests.get(f"{url}/conversations/{cid}/tracker")
    assert r.status_code == 200 and r.json()["sender_id"] == cid
    assert [e["event"] for e in r.json()["events"]] == ["action"]
    assert requests.head(f"{url}/conversations/{cid}/tracker").status_code == 200
    client = redis.Redis.from_url(redis_url)
    assert list(client.scan_iter(match=f"*{cid}*")) == []
    assert cid not in requests.get(f"{url}/conversations").json()


def _raw(url: str, request: bytes) -> tuple[int, dict]:
    """Send bytes as they are; the answer's status and JSON body."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"application/json" in head, data[:300]
    return int(head.split(b" ")[1]), json.loads(body)


def test_what_gunicorn_refuses_itself_is_json(pair):
    url = pair[0].url
    code, body = _raw(url, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert code == 414 and set(body) == ERROR_KEYS and body["code"] == 414
    code, body = _raw(url, b"NOT A REQUEST LINE\r\n\r\n")
    assert code == 400 and body["status"] == "failure"
    code, body = _raw(url, b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n")
    assert code == 400 and body["reason"] == "BadRequest"
    # a malformed chunk is found by the app as it reads the body
    code, body = _raw(
        url,
        b"POST /parse HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\nzz\r\n",
    )
    assert code == 400 and body["reason"] == "MalformedBody"
