"""The contract (api/openapi.yaml): every route the app has is in it, the server
serves it, and a property-based run of schemathesis against a real gunicorn server
finds no 5xx, no response outside the document, and no write by a 4xx.

The run is bounded: ``DIALOGD_FUZZ_EXAMPLES`` examples per operation (default 20,
about a minute in all), no shrinking. Its counts are printed at the end of the
module's tests."""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import falcon.inspect
import jwt
import pytest
import redis
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck
from hypothesis import Phase
from hypothesis import settings
from schemathesis import checks

from api.resources.service import OPENAPI_DOCUMENT
from api.server import ServeOptions
from api.server import build_app
from tests.e2e.conftest import Server
from trackerstore.registry import ModelRegistry

SECRET = "fuzz-secret-" + "0123456789abcdef" * 4
ADMIN = {
    "Authorization": "Bearer "
    + jwt.encode({"user": {"username": "fuzz", "role": "admin"}}, SECRET, "HS256")
}
EXAMPLES = int(os.environ.get("DIALOGD_FUZZ_EXAMPLES", "20"))
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]
METHODS = {"GET", "POST", "PUT", "DELETE", "PATCH"}

DOCUMENT = yaml.safe_load(OPENAPI_DOCUMENT.read_text(encoding="utf-8"))
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.config.generation.update(
    max_examples=EXAMPLES, no_shrink=True, with_security_parameters=False
)
#: what the run saw, for the summary at the end
SEEN: Counter = Counter()
SERVER_ERRORS: list[str] = []


def documented() -> set[tuple[str, str]]:
    return {
        (path, method.upper())
        for path, item in DOCUMENT["paths"].items()
        for method in item
        if method.upper() in METHODS
    }


def test_every_route_is_documented(fixture_model, redis_url):
    """Both ways: every (route, method) Falcon has is in the document, and nothing
    in the document is missing from the app (built as ``dialogd serve`` builds it)."""
    core = str(Path(fixture_model) / "core")
    app = build_app(ServeOptions(core=core, key_prefix="doc:"), redis_url)
    routes = {
        (route.path, method.method)
        for route in falcon.inspect.inspect_app(app).routes
        for method in route.methods
        if not method.internal and method.method in METHODS
    }
    assert routes - documented() == set(), "routes missing from api/openapi.yaml"
    assert documented() - routes == set(), "documented routes the app lacks"


@pytest.fixture(scope="module")
def fuzz_server(
    fixture_model, redis_url, tmp_path_factory, request
) -> Iterator[tuple[Server, redis.Redis, str]]:
    """A real server with JWTs on (every call carries an admin token); its Redis keys
    under a prefix of its own, to see what a request wrote. No trainer process runs:
    the test beats for one (see ``test_fuzz``), so training requests are queued and
    never trained, and nothing but the requests writes to Redis."""
    prefix = f"fuzz:{uuid.uuid4().hex[:8]}:"
    server = Server(
        fixture_model,
        redis_url,
        prefix,
        tmp_path_factory.mktemp("fuzz"),
        workers=1,
        extra=("--jwt-secret", SECRET),
    ).start()
    client = redis.Redis.from_url(redis_url)
    REGISTRIES[prefix] = redis_url
    try:
        yield server, client, prefix
    finally:
        server.stop()
        client.close()
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(SEEN.items()))
        plugins = request.config.pluginmanager
        report = plugins.get_plugin("terminalreporter")
        capture = plugins.get_plugin("capturemanager")
        if report is not None and capture is not None and SEEN:
            with capture.global_and_fixture_disabled():
                report.write_line(
                    f"\nschemathesis: {SEEN.total()} requests ({statuses}); "
                    f"5xx: {len(SERVER_ERRORS)}"
                )
                for line in SERVER_ERRORS:
                    report.write_line(f"  5xx: {line}")


#: the Redis URL of each fuzz server's prefix (its registry)
REGISTRIES: dict[str, str] = {}


def snapshot(client: redis.Redis, prefix: str) -> dict[bytes, bytes | None]:
    """Every key of the server's prefix with its serialised value."""
    keys = sorted(client.scan_iter(match=f"{prefix}*", count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.dump(key)
    return dict(zip(keys, pipe.execute(), strict=True))


def test_every_route_served_as_documented(fuzz_server):
    served = requests.get(f"{fuzz_server[0].url}/openapi.json").json()
    assert served["info"]["version"] != "0"
    assert {**served, "info": DOCUMENT["info"]} == DOCUMENT


@schema.parametrize()
@settings(
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_fuzz(case, fuzz_server):
    server, client, prefix = fuzz_server
    if case.operation.method.upper() == "POST" and case.operation.path == "/train":
        # the trainer is a heartbeat only: waiting would take the whole wait timeout
        case.query = {**(case.query or {}), "wait": "false"}
    ModelRegistry(REGISTRIES[prefix], prefix=prefix).trainer_beat("fuzz")
    before = snapshot(client, prefix)
    response = case.call(base_url=server.url, headers=ADMIN, timeout=30)
    SEEN[response.status_code] += 1
    if response.status_code >= 500:
        SERVER_ERRORS.append(
            f"{case.operation.method.upper()} {case.operation.path} "
            f"path={case.path_parameters} query={case.query} body={case.body!r:.300} "
            f"-> {response.status_code} {response.text[:200]}"
        )
    case.validate_response(response, checks=CHECKS, headers=ADMIN)
    if 400 <= response.status_code < 500:
        assert snapshot(client, prefix) == before, (
            f"a 4xx wrote to Redis: {case.operation.method.upper()} "
            f"{case.operation.path} query={case.query} body={case.body!r:.300} "
            f"-> {response.status_code} {response.text[:300]}"
        )
