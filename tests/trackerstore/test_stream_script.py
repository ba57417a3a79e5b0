"""The event stream on a real Redis: written by the append script itself, so it
holds exactly the logged events, in log order, once each."""

from __future__ import annotations

import time

import pytest

from trackerstore import RedisStore
from trackerstore import VersionConflict
from trackerstore import connect
from trackerstore.stream import EventStream
from trackerstore.stream import StreamConfig


def user(text: str, ts: float = 1.0) -> dict:
    return {
        "event": "user",
        "timestamp": ts,
        "text": text,
        "parse_data": {"intent": {"name": "greet", "confidence": 0.9}, "entities": []},
    }


def action(name: str, ts: float = 1.0) -> dict:
    return {"event": "action", "timestamp": ts, "name": name}


@pytest.fixture
def store(redis_url: str, key_prefix: str) -> RedisStore:
    return RedisStore(redis_url, prefix=key_prefix, stream=StreamConfig())


@pytest.fixture
def stream(redis_url: str, key_prefix: str) -> EventStream:
    return EventStream(redis_url, prefix=key_prefix)


def streamed(stream: EventStream, cid: str) -> list[dict]:
    """The conversation's events as a consumer rebuilds them from the stream."""
    events: list[dict] = []
    for entry in stream.entries():
        if entry.sender_id != cid:
            continue
        if entry.type == "reset":
            events = []
            continue
        assert entry.seq == len(events), "an event out of log order"
        assert entry.event is not None
        assert entry.event.pop("sender_id") == cid
        events.append(entry.event)
    return events


def test_each_write_streams_its_events_in_log_order(store, stream) -> None:
    version = store.append("ada", [action("action_listen"), user("hi")], 0, {})
    version = store.append("ada", [action("utter_greet")], version, {})
    store.append("bob", [user("hello")], 0, {})
    store.append("ada", [], version, {})  # no events, nothing streamed
    assert streamed(stream, "ada") == store.read_log("ada")
    assert streamed(stream, "bob") == store.read_log("bob")
    kinds = [(e.type, e.sender_id, e.seq) for e in stream.entries()]
    assert kinds == [
        ("reset", "ada", None),
        ("event", "ada", 0),
        ("event", "ada", 1),
        ("event", "ada", 2),
        ("reset", "bob", None),
        ("event", "bob", 0),
    ]


def test_the_entry_is_rasas_broker_json(store, stream) -> None:
    store.append("ünï {x}", [user("¿qué?", 12.5)], 0, {})
    (entry,) = [e for e in stream.entries() if e.type == "event"]
    assert entry.sender_id == "ünï {x}"
    assert entry.event == {"sender_id": "ünï {x}", **user("¿qué?", 12.5)}


def test_a_lost_compare_and_append_streams_nothing(store, stream) -> None:
    store.append("c", [user("a")], 0, {})
    with pytest.raises(VersionConflict):
        store.append("c", [user("b")], 0, {})
    assert streamed(stream, "c") == [user("a")]


def test_a_resent_write_streams_once(store, stream, monkeypatch) -> None:
    # the same token: the second call is redis-py resending after a lost reply
    monkeypatch.setattr("trackerstore.redis_store.random.getrandbits", lambda n: 7)
    store.append("d", [user("a")], 0, {})
    store.append("d", [user("a")], 0, {})
    assert streamed(stream, "d") == [user("a")]
    assert stream.length() == 2  # the reset and the one event


def test_a_replace_starts_the_conversation_again(store, stream) -> None:
    version = store.append("e", [user("a"), user("b"), user("c")], 0, {})
    store.replace("e", [user("z")], {}, version)
    assert streamed(stream, "e") == [user("z")] == store.read_log("e")
    store.replace("e", [], {})
    assert streamed(stream, "e") == []


def test_the_stream_is_bounded(redis_url, key_prefix, stream) -> None:
    store = RedisStore(redis_url, prefix=key_prefix, stream=StreamConfig(maxlen=10))
    version = 0
    for _ in range(30):
        version = store.append("f", [user(str(j)) for j in range(20)], version, {})
    # MAXLEN ~ trims whole stream nodes (100 entries each), never below maxlen
    assert 10 <= stream.length() <= 10 + 100 + 21
    assert len(store.read_log("f")) == 600


def test_old_entries_are_trimmed_by_age(redis_url, key_prefix, stream) -> None:
    store = RedisStore(redis_url, prefix=key_prefix, stream=StreamConfig(max_age=1))
    version = store.append("g", [user(str(j)) for j in range(300)], 0, {})
    time.sleep(1.1)  # older than max_age; not a timing assertion
    store.append("g", [user("new")], version, {})
    # MINID ~ trims whole nodes (100 entries): the full old ones are gone
    assert stream.length() <= 100 + 2


def test_off_by_default(redis_url, key_prefix, stream) -> None:
    RedisStore(redis_url, prefix=key_prefix).append("h", [user("a")], 0, {})
    assert stream.length() == 0


@pytest.mark.parametrize(
    ("maxlen", "max_age"), [(0, None), (10, 0), (10, -5), (True, None)]
)
def test_bounds_are_checked(maxlen, max_age) -> None:
    with pytest.raises((ValueError, TypeError)):
        StreamConfig(maxlen=maxlen, max_age=max_age)


def test_cluster_and_memory_are_refused() -> None:
    with pytest.raises(ValueError, match="Cluster"):
        connect("redis+cluster://127.0.0.1:7000", stream=StreamConfig())
    with pytest.raises(ValueError, match="needs a Redis"):
        connect("memory://", stream=StreamConfig())


def test_a_consumer_group_gets_each_entry_once(store, stream) -> None:
    stream.create_group("g1")
    stream.create_group("g1")  # again: kept as it is
    store.append("i", [user("a"), user("b")], 0, {})
    first = stream.read_group("g1", "c1", count=2, block_ms=0)
    assert [e.type for e in first] == ["reset", "event"]
    # c1 dies before acknowledging: its entries are pending, a second consumer
    # takes them over once they are idle long enough
    assert stream.read_group("g1", "c2", count=10, block_ms=0)[0].seq == 1
    assert [e.id for e in stream.pending_of("g1", "c1")] == [e.id for e in first]
    claimed = stream.claim_stale("g1", "c2", idle_ms=0)
    assert {e.id for e in claimed} >= {e.id for e in first}
    stream.ack("g1", [e.id for e in stream.pending_of("g1", "c2")])
    assert stream.pending_of("g1", "c2") == []
    assert stream.read_group("g1", "c2", block_ms=0) == []
