"""Who may do what, over real HTTP: the static token, JWT roles (Rasa's semantics),
CORS for browser pages, ``/status`` for anonymous probes, and no token in the
access log."""

from __future__ import annotations

import http.client
import json
import time
import uuid
from collections.abc import Iterator

import jwt
import pytest
import requests

from api.middleware import Auth
from tests.e2e.conftest import Server
from worker.errors import InvalidConfig

SECRET = "jwt-secret-for-tests-only-" + "0123456789abcdef" * 3
STATIC = "static-token-for-tests"
ORIGIN = "https://app.example"


def token(role: str | None, username: str | None = None, **claims) -> str:
    payload: dict = {"user": {"username": username, "role": role}, **claims}
    return jwt.encode(payload, SECRET, algorithm="HS256")


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


@pytest.fixture(scope="module")
def secured(fixture_model, redis_url, tmp_path_factory) -> Iterator[Server]:
    """One instance with a static token, JWTs, CORS for one origin and an access
    log in a file (DIALOGD_ACCESS_LOG, read by api/serving/settings.py)."""
    log_dir = tmp_path_factory.mktemp("auth")
    extra = (
        *("--auth-token", STATIC, "--jwt-secret", SECRET),
        *("--jwt-method", "HS256", "--cors", ORIGIN),
    )
    server = Server(
        fixture_model,
        redis_url,
        f"auth:{uuid.uuid4().hex[:8]}:",
        log_dir,
        workers=1,
        extra=extra,
    )
    server.access_log = log_dir / "access.log"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIALOGD_ACCESS_LOG", str(server.access_log))
        # the readiness poll of Server.start must see 200: it asks anonymously
        server.start()
    try:
        yield server
    finally:
        server.stop()


def check_error(r: requests.Response, code: int, reason: str) -> None:
    assert r.status_code == code, r.text
    assert r.json()["reason"] == reason and r.json()["code"] == code


def test_admin_may_do_everything(secured):
    admin = bearer(token("admin", "root"))
    url = secured.url
    r = requests.post(
        f"{url}/conversations/alice/parse", json={"query": "/greet"}, headers=admin
    )
    assert r.status_code == 200, r.text
    assert requests.get(f"{url}/conversations/bob/tracker", headers=admin).ok
    listed = requests.get(f"{url}/conversations", headers=admin)
    assert listed.status_code == 200 and "alice" in listed.json()
    for path in ("/domain", "/models", "/model"):
        assert requests.get(url + path, headers=admin).status_code == 200, path


def test_static_token_is_admin_in_query_and_header(secured):
    url = secured.url
    assert requests.get(f"{url}/conversations", params={"token": STATIC}).ok
    assert requests.get(f"{url}/conversations", headers=bearer(STATIC)).ok
    r = requests.get(f"{url}/conversations", params={"token": STATIC + "x"})
    check_error(r, 401, "NotAuthenticated")


def test_user_may_only_touch_its_own_conversation(secured):
    url, cid = secured.url, f"user-{uuid.uuid4().hex[:8]}"
    mine = bearer(token("user", cid))
    for prefix in ("conversations", "conversation"):
        r = requests.post(
            f"{url}/{prefix}/{cid}/parse", json={"query": "/greet"}, headers=mine
        )
        assert r.status_code == 200, r.text
    tracker = requests.get(f"{url}/conversations/{cid}/tracker", headers=mine)
    assert tracker.status_code == 200 and tracker.json()["sender_id"] == cid

    other = f"{url}/conversations/someone-else/tracker"
    check_error(requests.get(other, headers=mine), 403, "NotAuthorized")
    r = requests.post(
        f"{url}/conversations/someone-else/tracker/events",
        json={"event": "restart"},
        headers=mine,
    )
    check_error(r, 403, "NotAuthorized")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/conversations"),
        ("GET", "/domain"),
        ("POST", "/parse"),
        ("POST", "/evaluate"),
        ("POST", "/train?name=x"),
        ("GET", "/train/some-job"),
        ("GET", "/models"),
        ("DELETE", "/models/some-model"),
        ("GET", "/model"),
        ("PUT", "/model"),
    ],
)
def test_user_role_is_refused_admin_routes(secured, method, path):
    headers = bearer(token("user", "alice"))
    r = requests.request(method, secured.url + path, headers=headers, data=b"{}")
    check_error(r, 403, "NotAuthorized")


@pytest.mark.parametrize(
    "credential",
    [
        token("admin", "root", exp=int(time.time()) - 60),  # expired
        jwt.encode(
            {"user": {"role": "admin"}}, "not-the-secret" * 5, algorithm="HS256"
        ),
        jwt.encode({"user": {"role": "admin"}}, SECRET, algorithm="HS512"),
        jwt.encode({"user": {"role": "admin"}}, None, algorithm="none"),
        "not.a.jwt",
    ],
    ids=["expired", "bad-signature", "wrong-alg", "alg-none", "garbage"],
)
def test_bad_tokens_are_401(secured, credential):
    r = requests.get(f"{secured.url}/conversations", headers=bearer(credential))
    check_error(r, 401, "NotAuthenticated")


def test_no_credentials_401_and_unknown_role_403(secured):
    check_error(requests.get(f"{secured.url}/conversations"), 401, "NotAuthenticated")
    r = requests.get(
        f"{secured.url}/conversations/x/tracker", headers=bearer(token("guest", "x"))
    )
    check_error(r, 403, "NotAuthorized")


def test_status_tells_anonymous_callers_only_readiness(secured):
    anonymous = requests.get(f"{secured.url}/status")
    assert anonymous.status_code == 200
    assert anonymous.json() == {"is_ready": True}
    user = requests.get(f"{secured.url}/status", headers=bearer(token("user", "a")))
    assert user.json() == {"is_ready": True}
    admin = requests.get(f"{secured.url}/status", headers=bearer(token("admin", "r")))
    assert admin.status_code == 200
    assert {"is_ready", "model", "model_fingerprint", "store"} <= set(admin.json())
    bad = requests.get(f"{secured.url}/status", headers=bearer("not.a.jwt"))
    check_error(bad, 401, "NotAuthenticated")
    for path in ("/", "/version", "/openapi.json"):
        assert requests.get(secured.url + path).status_code == 200, path


def test_cors_preflight_and_marked_responses(secured):
    url = f"{secured.url}/conversations/alice/parse"
    preflight = requests.options(
        url,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    allowed = preflight.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed

    answered = requests.post(
        url,
        json={"query": "/greet"},
        headers={"Origin": ORIGIN, **bearer(token("user", "alice"))},
    )
    assert answered.status_code == 200
    assert answered.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "x-request-id" in answered.headers["Access-Control-Expose-Headers"].lower()
    # a refusal is readable by the page too, so it can tell 401 from a network error
    refused = requests.post(url, json={"query": "/greet"}, headers={"Origin": ORIGIN})
    assert refused.status_code == 401
    assert refused.headers["Access-Control-Allow-Origin"] == ORIGIN

    stranger = requests.options(
        url,
        headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "POST",
        },
    )
    assert "Access-Control-Allow-Origin" not in stranger.headers


def test_token_is_redacted_in_the_access_log(secured):
    marker = uuid.uuid4().hex
    r = requests.get(
        f"{secured.url}/conversations",
        params={"token": STATIC, "marker": marker},
        headers={"X-Request-Id": marker},
    )
    assert r.status_code == 200
    # the same credential spelled another way reaches the app as the token too
    # (http.client: requests would normalise the name)
    conn = http.client.HTTPConnection("127.0.0.1", secured.port, timeout=10)
    conn.request("GET", f"/conversations?%74oken={STATIC}&marker={marker}")
    assert conn.getresponse().status == 200
    conn.close()
    deadline = time.monotonic() + 10
    lines: list[str] = []
    while time.monotonic() < deadline and len(lines) < 2:
        text = secured.access_log.read_text() if secured.access_log.exists() else ""
        lines = [line for line in text.splitlines() if marker in line]
        time.sleep(0.1)
    assert len(lines) == 2, lines
    assert STATIC not in secured.access_log.read_text()
    entry = json.loads(lines[0])
    assert entry["request_id"] == marker
    assert entry["query"] == f"token=[REDACTED]&marker={marker}"
    assert json.loads(lines[1])["query"] == f"%74oken=[REDACTED]&marker={marker}"


def test_cors_any_origin(fixture_model, redis_url, tmp_path):
    server = Server(
        fixture_model, redis_url, "cors:", tmp_path, workers=1, extra=("--cors", "*")
    ).start()
    try:
        preflight = requests.options(
            f"{server.url}/conversations/c/tracker/events",
            headers={
                "Origin": "https://anywhere.example",
                "Access-Control-Request-Method": "PUT",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["Access-Control-Allow-Origin"] == "*"
        assert "PUT" in preflight.headers["Access-Control-Allow-Methods"]
        plain = requests.get(
            f"{server.url}/version", headers={"Origin": "https://x.example"}
        )
        assert plain.headers["Access-Control-Allow-Origin"] == "*"
    finally:
        server.stop()


def test_unsafe_jwt_methods_are_refused_at_startup():
    for method in ("none", "NOPE256"):
        with pytest.raises(InvalidConfig):
            Auth(None, SECRET, method)
