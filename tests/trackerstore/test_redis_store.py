"""What only the Redis store has: raw data, TTLs, outages, URLs and forks."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from trackerstore import CorruptRecord
from trackerstore import InMemoryStore
from trackerstore import Loaded
from trackerstore import RedisStore
from trackerstore import StoreUnavailable
from trackerstore import VersionConflict
from trackerstore import clients
from trackerstore import connect
from trackerstore.codec import encode_snapshot
from trackerstore.redis_store import conversation_keys


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url) as conn:
        yield conn


@pytest.fixture
def store(redis_url: str, key_prefix: str) -> Iterator[RedisStore]:
    with RedisStore(redis_url, prefix=key_prefix) as redis_store:
        yield redis_store


def test_keys_are_hash_tagged(
    store: RedisStore, key_prefix: str, client: redis.Redis
) -> None:
    store.append("c1", [{"n": 0}], 0, {})

    log, meta = conversation_keys(key_prefix, "c1")
    assert (log, meta) == (
        f"{key_prefix}dlg:{{c1}}:log",
        f"{key_prefix}dlg:{{c1}}:meta",
    )
    assert client.type(log) == b"list"
    assert client.hget(meta, "v") == b"1"


def test_corrupt_event_names_its_index(
    store: RedisStore, key_prefix: str, client: redis.Redis
) -> None:
    store.append("c1", [{"n": 0}, {"n": 1}], 0, {})
    log, _ = conversation_keys(key_prefix, "c1")
    client.rpush(log, b"\xc1garbage")
    store.append("c1", [{"n": 3}], 1, {})

    for start in (0, 1, -2):
        with pytest.raises(CorruptRecord) as info:
            store.read_log("c1", start)
        assert (info.value.cid, info.value.index) == ("c1", 2)
        assert "c1" in str(info.value)
        assert "2" in str(info.value)
    assert store.read_log("c1", 0, 2) == [{"n": 0}, {"n": 1}]
    assert store.read_log("c1", -1) == [{"n": 3}]


def test_corrupt_snapshot(
    store: RedisStore, key_prefix: str, client: redis.Redis
) -> None:
    store.append("c1", [], 0, {})
    _, meta = conversation_keys(key_prefix, "c1")
    client.hset(meta, "s", b"not msgpack \xc1")

    with pytest.raises(CorruptRecord) as info:
        store.load("c1")
    assert (info.value.cid, info.value.index) == ("c1", -1)
    assert "snapshot" in str(info.value)


def test_snapshot_of_unknown_format(
    store: RedisStore, key_prefix: str, client: redis.Redis
) -> None:
    store.append("c1", [], 0, {})
    _, meta = conversation_keys(key_prefix, "c1")
    client.hset(meta, "s", encode_snapshot({})[:1] + b"\x02\x80")

    with pytest.raises(CorruptRecord):
        store.load("c1")


def test_ttl_is_set_and_refreshed(
    redis_url: str, key_prefix: str, client: redis.Redis
) -> None:
    log, meta = conversation_keys(key_prefix, "c1")
    with RedisStore(redis_url, prefix=key_prefix, ttl=100) as store:
        store.append("c1", [{"n": 0}], 0, {})
        client.expire(log, 5)
        client.expire(meta, 5)
        store.append("c1", [], 1, {})

    assert 5 < client.ttl(log) <= 100
    assert 5 < client.ttl(meta) <= 100


def test_no_ttl_by_default(
    store: RedisStore, key_prefix: str, client: redis.Redis
) -> None:
    store.append("c1", [{"n": 0}], 0, {})

    log, meta = conversation_keys(key_prefix, "c1")
    assert client.ttl(log) == -1
    assert client.ttl(meta) == -1


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("url_fixture", ["redis_url", "tls_url"])
def test_timeouts_are_the_kernels_on_tested_releases_else_redis_pys(
    url_fixture: str,
    fast: bool,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(clients, "FAST_PATHS", fast)
    store = RedisStore(request.getfixturevalue(url_fixture), socket_timeout=1.5)
    store.ping()
    pool = store._conn().redis.connection_pool
    connection = pool.get_connection()
    try:
        sock = connection._sock
        if fast:
            assert sock.gettimeout() is None  # no poll() before each send and receive
            for option in (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO):
                raw = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("ll"))
                assert struct.unpack("ll", raw) == (1, 500_000)
        else:
            assert sock.gettimeout() == 1.5
    finally:
        pool.release(connection)
        store.close()


def test_the_public_path_answers_as_the_fast_paths(
    redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same turns, with redis-py's public path only (an untested release) and
    with the fast paths: the same answers, conflicts (with the state they carry)
    and script reloads."""
    answers = {}
    for fast in (True, False):
        monkeypatch.setattr(clients, "FAST_PATHS", fast)
        with RedisStore(redis_url, prefix=f"{key_prefix}{fast}:") as store:
            seen: list[object] = []
            version = store.append("c1", [{"n": 0}], 0, {"s": 1})
            seen.append(store.load("c1"))
            seen.append(store.prefetch("c1").result())
            with pytest.raises(VersionConflict) as conflict:
                store.append("c1", [{"n": 1}], version - 1, {"s": 2})
            value = conflict.value
            seen.append((value.expected, value.actual, value.current))
            store._conn().redis.script_flush()
            seen.append(store.append("c1", [{"n": 2}], version, {"s": 3}))
            seen.append(store.load("c1"))
            seen.append(store.read_log("c1"))
            answers[fast] = seen
    assert answers[True] == answers[False]


def test_a_silent_server_is_unavailable_after_the_timeout() -> None:
    with socket.socket() as server:
        # NOTE: never accepted: the kernel completes the handshake, nobody answers.
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        store = RedisStore(
            f"redis://127.0.0.1:{server.getsockname()[1]}", socket_timeout=0.1
        )
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.load("c1")
        # retries with back-off, each attempt bounded: seconds, not forever
        assert time.monotonic() - started < 30
        store.close()


def test_prefetch_sends_the_request_before_the_answer_is_asked_for(
    store: RedisStore, client: redis.Redis
) -> None:
    store.append("c1", [{"n": 0}], 0, {"s": 1})

    def hmget_calls() -> int:
        return client.info("commandstats").get("cmdstat_hmget", {}).get("calls", 0)

    before = hmget_calls()
    pending = store.prefetch("c1")
    deadline = time.monotonic() + 10
    while hmget_calls() == before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert hmget_calls() == before + 1  # while the caller was doing other work
    assert pending.result() == Loaded(1, {"s": 1})


def test_prefetch_survives_a_connection_lost_before_the_answer(
    store: RedisStore, client: redis.Redis
) -> None:
    store.append("c1", [{"n": 0}], 0, {"s": 1})
    pending = store.prefetch("c1")
    client.client_kill_filter(skipme=True, _type="normal")  # every other client
    assert pending.result() == Loaded(1, {"s": 1})  # loaded again, with retries
    assert store.append("c1", [{"n": 1}], 1, {"s": 2}) == 2


def test_a_write_is_sent_again_after_a_lost_connection(
    store: RedisStore, client: redis.Redis
) -> None:
    store.append("c1", [{"n": 0}], 0, {})
    client.client_kill_filter(skipme=True, _type="normal")  # the store's too
    assert store.append("c1", [{"n": 1}], 1, {}) == 2
    assert store.read_log("c1") == [{"n": 0}, {"n": 1}]  # once, in order


def test_closed_port_raises_store_unavailable() -> None:
    store = RedisStore("redis://127.0.0.1:1", socket_timeout=0.5)

    with pytest.raises(StoreUnavailable) as info:
        store.load("c1")
    assert isinstance(info.value.__cause__, redis.exceptions.ConnectionError)
    with pytest.raises(StoreUnavailable):
        store.append("c1", [], 0, {})
    with pytest.raises(StoreUnavailable):
        store.ping()
    with pytest.raises(StoreUnavailable):
        store.prefetch("c1").result()
    store.close()


@pytest.mark.parametrize(
    "url", ["http://localhost:6379", "localhost:6379", "memory://", ""]
)
def test_unsupported_url_scheme(url: str) -> None:
    with pytest.raises(ValueError, match="redis://, rediss://, unix://"):
        RedisStore(url)


def test_url_errors_do_not_echo_credentials() -> None:
    with pytest.raises(ValueError) as info:
        RedisStore("http://user:s3cret@host")
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize("ttl", [0, -5])
def test_ttl_must_be_positive(redis_url: str, ttl: int) -> None:
    with pytest.raises(ValueError):
        RedisStore(redis_url, ttl=ttl)


def test_connect_picks_the_store(redis_url: str, key_prefix: str) -> None:
    assert isinstance(connect("memory://"), InMemoryStore)
    with connect(redis_url, prefix=key_prefix, ttl=60) as store:
        assert isinstance(store, RedisStore)
        store.ping()
    with pytest.raises(ValueError, match="memory://"):
        connect("sqlite:///x.db")


def test_client_is_recreated_after_fork(
    redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[redis.Redis] = []
    from_url = redis.Redis.from_url

    def counting_from_url(*args: object, **kwargs: object) -> redis.Redis:
        client = from_url(*args, **kwargs)
        created.append(client)
        return client

    monkeypatch.setattr(redis.Redis, "from_url", counting_from_url)
    store = RedisStore(redis_url, prefix=key_prefix)
    assert created == []  # lazy: nothing before first use

    store.append("c1", [{"n": 0}], 0, {})
    store.load("c1")
    assert len(created) == 1

    child = os.fork()
    if child == 0:  # a new client, not the parent's socket
        ok = store.append("c1", [{"n": 1}], 1, {}) == 2 and len(created) == 2
        os._exit(0 if ok else 1)
    assert os.waitpid(child, 0)[1] == 0
    assert len(created) == 1
    assert store.read_log("c1") == [{"n": 0}, {"n": 1}]
    store.close()


def test_every_id_gets_a_non_empty_hash_tag() -> None:
    for cid in ["}x", "{", "a}b{c", "%7B", "plain"]:
        log, meta = conversation_keys("p:", cid)
        tag = log[log.index("{") + 1 : log.index("}")]
        assert tag and tag == meta[meta.index("{") + 1 : meta.index("}")]


def test_braces_in_the_prefix_are_refused() -> None:
    with pytest.raises(ValueError, match="braces"):
        RedisStore("redis://127.0.0.1:1", prefix="a{b}:")


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://127.0.0.1:26379",
        "redis+cluster://nohostport",
        "redis+sentinel://h:1,h2/main",
    ],
)
def test_malformed_sentinel_and_cluster_urls(url: str) -> None:
    with pytest.raises(ValueError):
        RedisStore(url)


def test_a_thread_keeps_one_connection_for_its_turns(
    redis_url: str, key_prefix: str, client: redis.Redis
) -> None:
    """A turn's load and write go over the thread's own connection; another thread
    has another one, and closing the store closes this thread's."""
    name = key_prefix.replace(":", "-")  # only this store's connections count
    separator = "&" if "?" in redis_url else "?"
    store = RedisStore(f"{redis_url}{separator}client_name={name}", prefix=key_prefix)

    def ids() -> set[int]:
        return {c["id"] for c in client.client_list() if c["name"] == name}

    before = ids()
    for i in range(5):
        store.append(f"t{i}", [{"n": i}], store.load(f"t{i}").version, {})
    mine = ids() - before
    assert len(mine) == 1
    other: list[int] = []

    def turn() -> None:
        store.append("t-other", [{"n": 0}], store.load("t-other").version, {})
        other.extend(ids() - before - mine)

    thread = threading.Thread(target=turn)
    thread.start()
    thread.join()
    assert len(other) == 1
    store.load("t0")
    assert ids() - before - set(other) == mine  # still the same one
    store.close()
    # NOTE: Redis drops a closed client on its next pass over the sockets.
    deadline = time.monotonic() + 10
    while (ids() - before) - set(other) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not (ids() - before) - set(other)
