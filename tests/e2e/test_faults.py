"""What a client sees when Redis stalls or fills up, on a private Redis of its own,
and how an idempotency key makes its retry safe."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bench.faults import PrivateRedis
from tests.e2e.conftest import Server
from trackerstore import RedisStore
from trackerstore import StoreUnavailable
from worker.errors import InvalidInput
from worker.model import CoreModel
from worker.turn import Engine


@pytest.fixture
def private(tmp_path: Path) -> Iterator[PrivateRedis]:
    store = PrivateRedis(tmp_path, appendonly=False).start()
    try:
        yield store
    finally:
        store.stop()


@pytest.fixture
def server(fixture_model: Path, private: PrivateRedis, tmp_path: Path) -> Iterator:
    instance = Server(fixture_model, private.url, "faults:", tmp_path).start()
    try:
        yield instance
    finally:
        instance.stop()


def _users(url: str, cid: str) -> list[str]:
    tracker = requests.get(
        f"{url}/conversations/{cid}/tracker?include_events=ALL", timeout=30
    ).json()
    return [e["text"] for e in tracker["events"] if e["event"] == "user"]


def test_a_retry_after_a_stall_is_applied_once(server: Server, private: PrivateRedis):
    """The client gave up while Redis was frozen; the turn was committed when Redis
    came back. Its retry with the same key answers that turn, not a second one."""
    cid = f"stall-{uuid.uuid4().hex[:6]}"
    url = f"{server.url}/conversations/{cid}/parse"
    headers = {"Idempotency-Key": "turn-1"}
    first = requests.post(url, json={"query": "/greet"}, headers=headers, timeout=30)
    assert first.status_code == 200

    headers = {"Idempotency-Key": "turn-2"}
    private.pause()
    try:
        with pytest.raises(requests.Timeout):
            requests.post(url, json={"query": "/greet"}, headers=headers, timeout=1.5)
    finally:
        threading.Timer(1.0, private.resume).start()
    time.sleep(2.0)  # Redis is back; the first try's write went through
    retry = requests.post(url, json={"query": "/greet"}, headers=headers, timeout=30)

    assert retry.status_code == 200
    assert _users(server.url, cid) == ["/greet", "/greet"]


def test_a_full_redis_answers_503_store_full(server: Server, private: PrivateRedis):
    """Out of memory was a 500 ServerError; nothing is written, reads go on."""
    url = f"{server.url}/conversations/full/parse"
    assert requests.post(url, json={"query": "/greet"}, timeout=30).status_code == 200
    with private.client() as admin:
        admin.config_set("maxmemory", admin.info("memory")["used_memory"] - 10_000)
        try:
            answer = requests.post(url, json={"query": "/greet"}, timeout=30)
            tracker = requests.get(f"{server.url}/conversations/full/tracker")
        finally:
            admin.config_set("maxmemory", 0)
    assert answer.status_code == 503
    assert answer.json()["reason"] == "StoreFull"
    assert "out of memory" in answer.json()["message"]
    assert tracker.status_code == 200
    assert _users(server.url, "full") == ["/greet"]


def test_a_503_after_a_long_stall_is_safe_to_retry(
    fixture_model: Path, private: PrivateRedis
):
    """Redis froze after the write was sent: every try timed out and the turn was
    answered 503 (``StoreUnavailable``), yet Redis applied it when it woke up."""
    store = RedisStore(private.url, socket_timeout=0.3)
    engine = Engine.for_model(CoreModel.load(fixture_model / "core"), None, store)
    engine.parse("c", "/greet", key="k1")
    append = store.append

    def frozen_append(*args, **kwargs):  # Redis freezes as the write is sent
        private.pause()
        return append(*args, **kwargs)

    store.append = frozen_append  # type: ignore[method-assign]
    with pytest.raises(StoreUnavailable):
        engine.parse("c", "/goodbye", key="k2")
    store.append = append  # type: ignore[method-assign]
    private.resume()
    answer = engine.parse("c", "/goodbye", key="k2")

    events = engine.tracker("c", "ALL")["events"]
    assert [e["text"] for e in events if e["event"] == "user"] == ["/greet", "/goodbye"]
    assert answer["tracker"]["latest_message"]["text"] == "/goodbye"
    store.close()


def test_idempotency_keys_are_bounded_and_checked(
    fixture_model: Path, private: PrivateRedis
):
    store = RedisStore(private.url)
    engine = Engine.for_model(CoreModel.load(fixture_model / "core"), None, store)
    for n in range(20):
        engine.parse("c", "/greet", key=f"k{n}")
    assert len(store.load("c").keys) == 16
    engine.parse("c", "/greet", key="k19")  # remembered: not applied again
    engine.parse("c", "/greet", key="k0")  # forgotten: applied again
    events = engine.tracker("c", "ALL")["events"]
    assert sum(e["event"] == "user" for e in events) == 21
    for bad in ("", "x" * 129, "a b", "ключ", 7):
        with pytest.raises(InvalidInput, match="Idempotency-Key"):
            engine.parse("c", "/greet", key=bad)
    store.close()


def test_a_bad_key_is_a_400(server: Server):
    answer = requests.post(
        f"{server.url}/conversations/bad/parse",
        json={"query": "/greet"},
        headers={"Idempotency-Key": "a" * 200},
        timeout=30,
    )
    assert answer.status_code == 400
    assert answer.json()["details"] == {"parameter": "Idempotency-Key", "in": "header"}
