"""A Redis that is full, and a connection that owes a reply: on a private server."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.trackerstore.conftest import _free_port
from trackerstore import RedisStore
from trackerstore import StoreUnavailable
from trackerstore.embedded import redis_server_binary
from trackerstore.errors import StoreFull
from trackerstore.redis_store import _Client
from trackerstore.redis_store import conversation_keys

EVENT = {"event": "user", "text": "x" * 2000}


@pytest.fixture(scope="module")
def private_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis of this module only: its memory limit is changed by the tests."""
    port = _free_port()
    work: Path = tmp_path_factory.mktemp("full-redis")
    proc = subprocess.Popen(
        [
            redis_server_binary(),
            *("--port", str(port), "--bind", "127.0.0.1", "--save", ""),
            *("--appendonly", "no", "--maxmemory-policy", "noeviction"),
        ],
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def full(private_url: str) -> Iterator[redis.Redis]:
    """The private Redis with its limit just above what it holds now."""
    admin = redis.Redis.from_url(private_url)
    admin.flushall()
    admin.config_set("maxmemory", admin.info("memory")["used_memory"] + 300_000)
    try:
        yield admin
    finally:
        admin.config_set("maxmemory", 0)
        admin.flushall()
        admin.close()


def _fill(store: RedisStore, cids: list[str]) -> list[str]:
    """New conversations of ~40 kB each, until the store refuses one."""
    written = []
    for cid in cids:
        try:
            store.append(cid, [EVENT] * 20, 0, {"n": cid})
        except StoreFull:
            break
        written.append(cid)
    return written


def test_new_conversations_stop_at_maxmemory(full: redis.Redis, private_url: str):
    """Creating a conversation began with a DEL, which Redis does not check for
    memory, and a script that has written is never stopped: every new
    conversation went past ``maxmemory``."""
    limit = int(full.config_get("maxmemory")["maxmemory"])
    with RedisStore(private_url) as store:
        written = _fill(store, [f"c{i}" for i in range(60)])
        assert 0 < len(written) < 60
        # one write may cross the line; none starts once it is crossed
        assert full.info("memory")["used_memory"] < limit + 100_000
        with pytest.raises(StoreFull, match="out of memory"):
            store.replace(written[0], [EVENT] * 20, {"n": 0})
        with pytest.raises(StoreFull):
            store.append(written[0], [EVENT], 1, {"n": 0})
        # reads still work: a full Redis answers what it holds
        assert store.load(written[0]).version == 1
        assert store.log_length(written[-1]) == 20


def test_store_full_is_a_kind_of_unavailable(full: redis.Redis, private_url: str):
    """Callers that retry later on ``StoreUnavailable`` do so on a full Redis too;
    before, Redis's OOM error came out raw (a 500)."""
    with RedisStore(private_url) as store:
        store.append("early", [EVENT] * 20, 0, {})
        full.config_set("maxmemory", full.info("memory")["used_memory"] - 50_000)
        for write in (
            lambda: store.append("late", [EVENT], 0, {}),
            lambda: store.append("early", [], 1, {}),
            lambda: store.replace("early", [], {}),
        ):
            with pytest.raises(StoreUnavailable, match="out of memory"):
                write()
        assert store.load("late").version == 0
        assert store.load("early").version == 1


def test_a_dropped_prefetch_never_answers_another_load(redis_url, key_prefix):
    """A prefetch whose ``result()`` is never asked for left its reply on the
    thread's connection, and the next command read it as its own."""
    with RedisStore(redis_url, prefix=key_prefix) as store:
        store.append("a", [{"n": 1}], 0, {"who": "a"})
        store.append("b", [{"n": 1}], 0, {"who": "b"})
        store.append("b", [{"n": 2}], 1, {"who": "b"})

        store.prefetch("a")  # dropped
        assert store.load("b").snapshot == {"who": "b"}

        store.prefetch("a")  # dropped, then a write
        assert store.append("b", [{"n": 3}], 2, {"who": "b3"}) == 3

        first = store.prefetch("a")
        second = store.prefetch("b")  # the first one's reply is still owed
        assert second.result().snapshot == {"who": "b3"}
        assert first.result().snapshot == {"who": "a"}  # loaded again, not stolen

        stale = store.prefetch("a")
        assert store.load("b").version == 3
        assert stale.result().snapshot == {"who": "a"}


def test_a_dropped_prefetch_is_drained_for_redis_py_commands(redis_url, key_prefix):
    """Any command on the thread's connection, not only ours, first takes the owed
    reply off it."""
    with RedisStore(redis_url, prefix=key_prefix) as store:
        store.append("a", [{"n": 1}], 0, {"who": "a"})
        store.prefetch("a")
        client = store._conn()
        assert isinstance(client, _Client)
        turn = store._turn_client(client)
        _, meta = conversation_keys(key_prefix, "a")
        assert turn.hget(meta, "v") == b"1"
        assert turn.ping() is True
