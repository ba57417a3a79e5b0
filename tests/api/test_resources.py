"""The Falcon layer in-process (``falcon.testing``): routing, error mapping, headers.
The behaviour of each endpoint is covered end to end in ``tests/e2e``."""

from __future__ import annotations

import falcon.testing
import pytest

from api.app import create_app
from tests.data import RASA_EXAMPLES
from trackerstore import InMemoryStore
from trackerstore import RedisStore
from worker.domain import Domain
from worker.model import CoreModel
from worker.nlu import Interpreter
from worker.turn import Engine

FIXTURES = RASA_EXAMPLES / "server_test_fixtures"


@pytest.fixture(scope="module")
def core() -> CoreModel:
    return CoreModel.train(
        Domain.load(FIXTURES / "default.yml"),
        FIXTURES / "stories_defaultdomain.md",
        {"policies": [{"name": "MemoizationPolicy"}]},
    )


def client(core, store, **kwargs) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(
        create_app(Engine.for_model(core, Interpreter(), store), **kwargs)
    )


def test_redis_down_is_503_everywhere(core):
    down = RedisStore("redis://127.0.0.1:1", socket_timeout=0.2)
    c = client(core, down)
    status = c.simulate_get("/status")
    assert status.status_code == 503 and status.json["is_ready"] is False
    r = c.simulate_post("/conversations/x/parse", json={"query": "/greet"})
    assert r.status_code == 503 and r.json["reason"] == "StoreUnavailable"
    assert c.simulate_get("/").status_code == 200  # liveness does not need Redis


def test_body_limit_is_configurable(core):
    c = client(core, InMemoryStore(), max_body=100)
    r = c.simulate_post("/conversations/x/parse", body='{"query": "' + "a" * 200 + '"}')
    assert r.status_code == 413
    assert (
        c.simulate_post("/conversations/x/parse", json={"query": "/greet"}).json[
            "next_action"
        ]
        == "utter_greet"
    )


def test_any_content_type_is_read_as_json(core):
    c = client(core, InMemoryStore())
    r = c.simulate_post(
        "/conversations/x/parse",
        body='{"query": "/greet"}',
        headers={"Content-Type": "text/plain"},
    )
    assert r.status_code == 200


def test_singular_paths_and_trailing_slash(core):
    c = client(core, InMemoryStore())
    assert (
        c.simulate_post("/conversation/x/parse", json={"q": "/greet"}).status_code
        == 200
    )
    assert c.simulate_get("/conversation/x/tracker/").status_code == 200


def test_unexpected_errors_are_500_in_the_error_shape(core):
    class Broken(InMemoryStore):
        def load(self, cid):
            raise RuntimeError("boom")

    r = client(core, Broken()).simulate_get("/conversations/x/tracker")
    assert r.status_code == 500
    assert r.json["reason"] == "ServerError" and "boom" not in r.json["message"]


def test_request_ids(core):
    c = client(core, InMemoryStore())
    given = c.simulate_post(
        "/conversations/abc/parse",
        json={"query": "/greet"},
        headers={"X-Request-Id": "req-1"},
    )
    fresh = c.simulate_get("/version")
    missing = c.simulate_get("/nowhere")
    assert given.headers["X-Request-Id"] == "req-1"
    assert len(fresh.headers["X-Request-Id"]) == 32
    assert len(missing.headers["X-Request-Id"]) == 32  # errors carry one too


def test_json_formatter_carries_the_extra_fields():
    import json
    import logging

    from api.logs import JSONFormatter

    record = logging.makeLogRecord(
        {
            "msg": "x %s",
            "args": (1,),
            "levelname": "INFO",
            "name": "dialogd.access",
            "cid": "c",
            "request_id": "r",
        }
    )
    line = json.loads(JSONFormatter().format(record))
    assert line["message"] == "x 1" and line["cid"] == "c" and line["request_id"] == "r"


def test_token_auth(core):
    c = client(core, InMemoryStore(), auth_token="s3cret")
    assert c.simulate_get("/").status_code == 200
    assert c.simulate_get("/status").status_code == 200  # probes need no token
    denied = c.simulate_get("/conversations")
    assert denied.status_code == 401 and denied.json["reason"] == "NotAuthenticated"
    assert (
        c.simulate_get("/conversations", params={"token": "wrong"}).status_code == 401
    )
    assert (
        c.simulate_get("/conversations", params={"token": "s3cret"}).status_code == 200
    )
    bearer = c.simulate_post(
        "/conversations/x/parse",
        json={"query": "/greet"},
        headers={"Authorization": "Bearer s3cret"},
    )
    assert bearer.status_code == 200


def test_a_value_redis_cannot_store_is_refused_not_a_server_error(core):
    c = client(core, InMemoryStore())
    big = {"event": "slot", "name": "cuisine", "value": 2**70}
    r = c.simulate_post("/conversations/big/tracker/events", json=big)
    # NOTE: refused by the body reader, before any event is built
    assert r.status_code == 400 and r.json["reason"] == "InvalidJSON", r.text
    assert "64 bits" in r.json["message"]
    r = c.simulate_post("/conversations/u/tracker/events", json={**big, "value": "ü"})
    assert r.json["slots"]["cuisine"] == "ü" and "ü".encode() in r.content


def test_every_route_checks_its_ids_and_reasons_are_spelled_once(core):
    c = client(core, InMemoryStore())
    for path in ("/conversations//parse", "/conversations/a%01b/tracker"):
        r = c.simulate_post(path, json={"query": "/greet"})
        assert r.status_code == 400 and r.json["reason"] == "InvalidParameter", path
    long = c.simulate_get("/conversations/" + "x" * 257 + "/tracker")
    assert long.status_code == 400 and long.json["details"]["in"] == "path"
    assert c.simulate_get("/nowhere").json["reason"] == "NotFound"
    assert c.simulate_delete("/version").json["reason"] == "MethodNotAllowed"
    bad = c.simulate_get("/conversations/x/tracker", params={"until": "soon"})
    assert bad.json["reason"] == "InvalidParameter"
    nan = c.simulate_get("/conversations/x/tracker", params={"until": "nan"})
    assert nan.status_code == 400 and nan.json["details"]["parameter"] == "until"


def test_head_answers_where_get_reads_and_reads_write_nothing(core):
    store = InMemoryStore()
    c = client(core, store)
    head = c.simulate_head("/conversations/ghost/tracker")
    assert head.status_code == 200 and head.content == b""
    get = c.simulate_get("/conversations/ghost/tracker")
    assert [e["event"] for e in get.json["events"]] == ["action"]
    assert list(store.conversation_ids()) == []
    assert (
        c.simulate_head("/conversations/x/parse", params={"q": "/greet"}).status_code
        == 405
    )
    assert list(store.conversation_ids()) == []


def test_conversations_by_page(core):
    store = InMemoryStore()
    for i in range(5):
        store.append(f"c{i}", [], 0, {})
    c = client(core, store)
    assert c.simulate_get("/conversations").json == [f"c{i}" for i in range(5)]
    first = c.simulate_get("/conversations", params={"limit": 2}).json
    assert first == {"conversations": ["c0", "c1"], "next_cursor": "2"}
    seen = list(first["conversations"])
    cursor = first["next_cursor"]
    while cursor is not None:
        page = c.simulate_get("/conversations", params={"limit": 2, "cursor": cursor})
        seen += page.json["conversations"]
        cursor = page.json["next_cursor"]
    assert seen == [f"c{i}" for i in range(5)]
    for params in ({"limit": 0}, {"limit": 1001}, {"limit": "x"}, {"cursor": "z"}):
        bad = c.simulate_get("/conversations", params=params)
        assert bad.status_code == 400, params
        assert bad.json["reason"] == "InvalidParameter"


def test_the_inspector_page_is_served_to_anyone(core):
    c = client(core, InMemoryStore(), auth_token="s3cret")
    page = c.simulate_get("/inspect")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="/inspect/inspect.js"' in page.text
    script = c.simulate_get("/inspect/inspect.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "RestChannel" in script.text
    assert c.simulate_get("/inspect/inspect.css").status_code == 200
    missing = c.simulate_get("/inspect/..%2Fapp.py")
    assert missing.status_code in (400, 404)
    assert c.simulate_get("/inspect/secret.txt").status_code == 404
    # the data it shows is not open
    assert c.simulate_get("/conversations").status_code == 401
    # nothing from elsewhere: no absolute URL in what the page loads
    for body in (page.text, script.text, c.simulate_get("/inspect/inspect.css").text):
        assert "http://" not in body and "https://" not in body and "//cdn" not in body


def test_the_rest_channel_is_authorized_by_its_sender(core):
    """With authentication on, a JWT of role user may post on the REST channel
    as its own conversation only; an admin as anyone; nobody without
    credentials (Rasa leaves its channels open)."""
    import jwt

    secret = "a-test-secret-" + "0123456789" * 4
    c = client(core, InMemoryStore(), jwt_secret=secret)

    def bearer(role: str, username: str = "ada") -> dict[str, str]:
        token = jwt.encode({"user": {"username": username, "role": role}}, secret)
        return {"Authorization": f"Bearer {token}"}

    def post(sender: str, headers: dict[str, str] | None = None) -> int:
        body = {"sender": sender, "message": "/greet"}
        reply = c.simulate_post("/webhooks/rest/webhook", json=body, headers=headers)
        return reply.status_code

    assert post("ada", bearer("user")) == 200
    assert post("bob", bearer("user")) == 403
    assert post("bob", bearer("admin", "root")) == 200
    assert post("ada") == 401
