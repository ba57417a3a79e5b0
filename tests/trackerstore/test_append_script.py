"""append.lua on a real Redis: script cache reloads, idempotence, concurrency."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator

import pytest
import redis

from trackerstore import Loaded
from trackerstore import RedisStore
from trackerstore import VersionConflict
from trackerstore.redis_store import WRITE_SCRIPT
from trackerstore.redis_store import conversation_keys

THREADS = 16
EVENTS_PER_THREAD = 25


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url) as conn:
        yield conn


def test_append_survives_script_flush(
    redis_url: str, key_prefix: str, client: redis.Redis
) -> None:
    sha = hashlib.sha1(WRITE_SCRIPT.encode()).hexdigest()
    store = RedisStore(redis_url, prefix=key_prefix)
    store.append("c1", [{"n": 0}], 0, {"n": 1})

    client.script_flush()
    assert client.script_exists(sha) == [False]
    store.append("c1", [{"n": 1}], 1, {"n": 2})

    assert client.script_exists(sha) == [True]
    assert store.read_log("c1") == [{"n": 0}, {"n": 1}]
    store.close()


def test_resent_write_is_applied_once(key_prefix: str, client: redis.Redis) -> None:
    """A write resent after a lost reply reports success, not a self-conflict."""
    script = client.register_script(WRITE_SCRIPT)
    keys = conversation_keys(key_prefix, "c1")
    args = [0, 0, b"token-1", 0, b"snap", b"", b"e1", b"e2"]

    assert script(keys=keys, args=args) == [1, 1]
    assert script(keys=keys, args=args) == [1, 1]
    # a conflict: the stored version, snapshot and (no) idempotency keys
    assert script(keys=keys, args=[0, 0, b"token-2", 0, b"new", b"", b"e3"]) == [
        0,
        1,
        b"snap",
        None,
    ]
    assert client.lrange(keys[0], 0, -1) == [b"e1", b"e2"]


def test_first_write_drops_a_leftover_log(
    redis_url: str, key_prefix: str, client: redis.Redis
) -> None:
    log, _ = conversation_keys(key_prefix, "c1")
    client.rpush(log, b"orphan")
    store = RedisStore(redis_url, prefix=key_prefix)

    store.append("c1", [{"n": 0}], 0, {})

    assert store.read_log("c1") == [{"n": 0}]
    store.close()


def test_long_replace_is_pushed_in_chunks(redis_url: str, key_prefix: str) -> None:
    """More values than Lua's unpack() accepts in one call."""
    store = RedisStore(redis_url, prefix=key_prefix)
    events = [{"n": n} for n in range(9000)]

    store.replace("c1", events, {"n": len(events)})

    assert store.log_length("c1") == len(events)
    assert store.read_log("c1", -2) == events[-2:]
    store.close()


def test_concurrent_appenders_lose_and_duplicate_nothing(
    redis_url: str, key_prefix: str
) -> None:
    stores = [RedisStore(redis_url, prefix=key_prefix) for _ in range(THREADS)]
    applied: list[tuple[int, dict[str, int]]] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def appender(worker: int) -> None:
        store = stores[worker]
        start.wait()
        for n in range(EVENTS_PER_THREAD):
            event = {"worker": worker, "n": n}
            for _ in range(10_000):
                loaded = store.load("c1")
                count = loaded.snapshot["count"] if loaded.snapshot else 0
                snapshot = {"count": count + 1, "worker": worker, "n": n}
                try:
                    version = store.append("c1", [event], loaded.version, snapshot)
                except VersionConflict:
                    continue
                with lock:
                    applied.append((version, snapshot))
                break

    threads = [threading.Thread(target=appender, args=(w,)) for w in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    total = THREADS * EVENTS_PER_THREAD
    logs = [store.read_log("c1") for store in stores]
    assert all(log == logs[0] for log in logs)
    expected = {(w, n) for w in range(THREADS) for n in range(EVENTS_PER_THREAD)}
    assert len(logs[0]) == total
    assert {(e["worker"], e["n"]) for e in logs[0]} == expected
    for worker in range(THREADS):
        mine = [e["n"] for e in logs[0] if e["worker"] == worker]
        assert mine == list(range(EVENTS_PER_THREAD))

    assert sorted(version for version, _ in applied) == list(range(1, total + 1))
    last_version, last_snapshot = max(applied, key=lambda item: item[0])
    assert last_snapshot["count"] == total
    assert (last_snapshot["worker"], last_snapshot["n"]) == (
        logs[0][-1]["worker"],
        logs[0][-1]["n"],
    )
    assert stores[0].load("c1") == Loaded(last_version, last_snapshot)
    for store in stores:
        store.close()
