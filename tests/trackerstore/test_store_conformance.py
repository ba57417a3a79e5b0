"""One behaviour for every store: the same tests run on memory and on Redis."""

from __future__ import annotations

import time
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from trackerstore import InMemoryStore
from trackerstore import Loaded
from trackerstore import RedisStore
from trackerstore import TrackerStore
from trackerstore import UnstorableValue
from trackerstore import VersionConflict

StoreFactory = Callable[[str], TrackerStore]


def _event(n: int) -> dict[str, Any]:
    return {"event": "user", "timestamp": 1700000000.0 + n, "text": f"e{n}"}


@pytest.fixture(params=["memory", "redis", "tls", "cluster", "sentinel"])
def make_store(
    request: pytest.FixtureRequest, key_prefix: str
) -> Iterator[StoreFactory]:
    """Build stores of one kind; ``sub`` extends the test's key prefix."""
    stores: list[TrackerStore] = []

    def make(sub: str) -> TrackerStore:
        if request.param == "memory":
            store: TrackerStore = InMemoryStore()
        else:
            url = request.getfixturevalue(f"{request.param}_url")
            store = RedisStore(url, prefix=key_prefix + sub)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()
    if request.param == "redis":
        with redis.Redis.from_url(request.getfixturevalue("redis_url")) as client:
            for key in client.scan_iter(match=key_prefix + "*"):
                client.delete(key)


@pytest.fixture
def store(make_store: StoreFactory) -> TrackerStore:
    return make_store("")


def test_missing_conversation(store: TrackerStore) -> None:
    assert store.load("nobody") == Loaded(0, None)
    assert not store.load("nobody").exists
    assert store.log_length("nobody") == 0
    assert store.read_log("nobody") == []
    assert list(store.conversation_ids()) == []


def test_append_load_read_round_trip(store: TrackerStore) -> None:
    assert store.append("c1", [_event(0), _event(1)], 0, {"n": 2}) == 1
    assert store.load("c1") == Loaded(1, {"n": 2})
    assert store.append("c1", [_event(2)], 1, {"n": 3, "nested": [1.5, None]}) == 2

    assert store.load("c1") == Loaded(2, {"n": 3, "nested": [1.5, None]})
    assert store.read_log("c1") == [_event(0), _event(1), _event(2)]
    assert store.log_length("c1") == 3


def test_stored_values_are_copies(store: TrackerStore) -> None:
    event = {"event": "slot", "value": [1]}
    snapshot = {"slots": {"a": [1]}}
    store.append("c1", [event], 0, snapshot)
    event["value"].append(2)
    snapshot["slots"]["a"].append(2)
    store.read_log("c1")[0]["value"].append(3)
    loaded = store.load("c1").snapshot
    assert loaded is not None
    loaded["slots"]["a"].append(3)

    assert store.read_log("c1") == [{"event": "slot", "value": [1]}]
    assert store.load("c1").snapshot == {"slots": {"a": [1]}}


def test_version_conflict_writes_nothing(store: TrackerStore) -> None:
    store.append("c1", [_event(0)], 0, {"n": 1})

    with pytest.raises(VersionConflict) as info:
        store.append("c1", [_event(1)], 0, {"n": 99})

    assert (info.value.cid, info.value.expected, info.value.actual) == ("c1", 0, 1)
    assert store.load("c1") == Loaded(1, {"n": 1})
    assert store.read_log("c1") == [_event(0)]


def test_conflict_on_missing_conversation_creates_nothing(store: TrackerStore) -> None:
    with pytest.raises(VersionConflict) as info:
        store.append("c1", [_event(0)], 3, {"n": 1})

    assert info.value.actual == 0
    assert store.load("c1") == Loaded(0, None)
    assert list(store.conversation_ids()) == []


def test_empty_append_bumps_version(store: TrackerStore) -> None:
    assert store.append("c1", [], 0, {"n": 0}) == 1
    assert store.append("c1", [], 1, {"n": 1}) == 2

    assert store.load("c1") == Loaded(2, {"n": 1})
    assert store.log_length("c1") == 0
    assert list(store.conversation_ids()) == ["c1"]


def test_replace_swaps_log_and_snapshot(store: TrackerStore) -> None:
    store.append("c1", [_event(0), _event(1)], 0, {"n": 2})

    assert store.replace("c1", [_event(7)], {"n": 1}) == 2

    assert store.load("c1") == Loaded(2, {"n": 1})
    assert store.read_log("c1") == [_event(7)]


def test_replace_creates_missing_conversation(store: TrackerStore) -> None:
    assert store.replace("c1", [_event(0)], {"n": 1}) == 1
    assert store.read_log("c1") == [_event(0)]


def test_replace_with_expected_version(store: TrackerStore) -> None:
    store.append("c1", [_event(0)], 0, {"n": 1})

    with pytest.raises(VersionConflict):
        store.replace("c1", [], {"n": 0}, expected_version=5)
    assert store.replace("c1", [], {"n": 0}, expected_version=1) == 2
    assert store.read_log("c1") == []


def test_stale_append_after_replace_conflicts(store: TrackerStore) -> None:
    """ABA: same log length as before, but a different history."""
    store.append("c1", [_event(0)], 0, {"n": 1})
    stale = store.load("c1")
    store.replace("c1", [_event(5)], {"n": 1})

    with pytest.raises(VersionConflict):
        store.append("c1", [_event(1)], stale.version, {"n": 2})
    assert store.read_log("c1") == [_event(5)]


SLICES = [
    (0, None),
    (2, None),
    (0, 3),
    (2, 4),
    (-2, None),
    (-4, -1),
    (1, -1),
    (-3, 5),
    (0, 0),
    (3, 3),
    (4, 2),
    (-1, 2),
    (0, -6),
    (0, -10),
    (-10, None),
    (-10, 2),
    (6, None),
    (10, 20),
    (0, 100),
]


@pytest.mark.parametrize(("start", "stop"), SLICES)
def test_read_log_slices_like_a_list(
    store: TrackerStore, start: int, stop: int | None
) -> None:
    events = [_event(n) for n in range(6)]
    store.append("c1", events, 0, {})

    assert store.read_log("c1", start, stop) == events[start:stop]


def test_read_log_default_stop(store: TrackerStore) -> None:
    events = [_event(n) for n in range(3)]
    store.append("c1", events, 0, {})

    assert store.read_log("c1", 1) == events[1:]


ODD_IDS = [
    "plain",
    "with{brace",
    "with}brace",
    "{both}",
    "}{",
    "has space",
    "ünïcødé ✓",
    "a:b:c",
    "x}:meta",
    "y}:log",
    "*?[]\\",
]


def test_conversation_ids_lists_exactly_this_store(store: TrackerStore) -> None:
    for cid in ODD_IDS:
        store.append(cid, [_event(0)], 0, {"cid": cid})

    ids = list(store.conversation_ids())

    assert sorted(ids) == sorted(ODD_IDS)
    for cid in ODD_IDS:
        assert store.load(cid) == Loaded(1, {"cid": cid})
        assert store.read_log(cid) == [_event(0)]


def test_delete(store: TrackerStore) -> None:
    store.append("c1", [_event(0)], 0, {"n": 1})
    store.append("c2", [_event(0)], 0, {"n": 1})

    store.delete("c1")
    store.delete("never-existed")

    assert store.load("c1") == Loaded(0, None)
    assert store.read_log("c1") == []
    assert list(store.conversation_ids()) == ["c2"]
    assert store.append("c1", [_event(9)], 0, {"n": 1}) == 1
    assert store.read_log("c1") == [_event(9)]


def test_prefetch_answers_as_load_and_a_cancel_leaves_nothing_behind(
    store: TrackerStore,
) -> None:
    store.append("c", [_event(0)], 0, {"s": 1})
    assert store.prefetch("c").result() == store.load("c") == Loaded(1, {"s": 1})
    assert store.prefetch("new").result() == Loaded(0, None)
    store.prefetch("c").cancel()
    # the next commands get their own answers, not the cancelled one's
    assert store.load("new") == Loaded(0, None)
    assert store.append("c", [_event(1)], 1, {"s": 2}) == 2
    assert store.read_log("c") == [_event(0), _event(1)]
    with pytest.raises(ValueError):
        store.prefetch("")


def test_idempotency_keys_are_kept_with_the_write(store: TrackerStore) -> None:
    """A write stores the keys it is given (the latest 16); without, it keeps
    them; a replace keeps them too."""
    store.append("c", [_event(0)], 0, {}, {"k0": {"next_action": "a"}})
    assert store.load("c").keys == {"k0": {"next_action": "a"}}
    assert store.prefetch("c").result().keys == {"k0": {"next_action": "a"}}
    store.append("c", [_event(1)], 1, {})
    store.replace("c", [_event(2)], {})
    assert store.load("c").keys == {"k0": {"next_action": "a"}}
    keys = {f"k{n}": {} for n in range(20)}
    store.append("c", [], 3, {}, keys)
    assert list(store.load("c").keys) == [f"k{n}" for n in range(4, 20)]
    assert store.load("other").keys == {}
    with pytest.raises(VersionConflict):
        store.append("c", [], 3, {}, {"late": {}})
    assert "late" not in store.load("c").keys


def test_prefix_isolation(make_store: StoreFactory) -> None:
    first, second = make_store("a:"), make_store("b:")
    first.append("same", [_event(1)], 0, {"who": "a"})
    second.append("same", [_event(2), _event(3)], 0, {"who": "b"})
    second.append("only-b", [], 0, {})

    first.delete("same")

    assert list(first.conversation_ids()) == []
    assert sorted(second.conversation_ids()) == ["only-b", "same"]
    assert second.load("same") == Loaded(1, {"who": "b"})
    assert second.read_log("same") == [_event(2), _event(3)]


@pytest.mark.parametrize("bad", [{1, 2}, 2**64])
def test_unencodable_event_writes_nothing(store: TrackerStore, bad: Any) -> None:
    with pytest.raises(UnstorableValue):
        store.append("c1", [_event(0), {"bad": bad}], 0, {})
    assert store.load("c1") == Loaded(0, None)


@pytest.mark.parametrize("cid", ["", None])
def test_invalid_conversation_id(store: TrackerStore, cid: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        store.load(cid)
    with pytest.raises((ValueError, TypeError)):
        store.append(cid, [], 0, {})


def test_lease_is_held_by_one_token(store: TrackerStore) -> None:
    assert store.acquire_lease("c", "a", 30)
    assert not store.acquire_lease("c", "b", 30)
    assert store.acquire_lease("c", "a", 30)  # its holder extends it
    assert store.acquire_lease("other", "b", 30)  # per conversation

    store.release_lease("c", "b")  # not the holder: nothing changes
    assert not store.acquire_lease("c", "b", 30)
    store.release_lease("c", "a")
    assert store.acquire_lease("c", "b", 30)


def test_lease_runs_out(store: TrackerStore) -> None:
    """A holder that died frees the conversation after its ttl."""
    assert store.acquire_lease("c", "dead", 0.05)
    deadline = time.monotonic() + 5
    while not store.acquire_lease("c", "next", 30):
        assert time.monotonic() < deadline, "the lease never ran out"
        time.sleep(0.02)
    store.release_lease("c", "dead")  # the late holder frees nothing
    assert not store.acquire_lease("c", "third", 30)


def test_lease_is_not_a_conversation(store: TrackerStore) -> None:
    store.acquire_lease("c", "a", 30)
    assert list(store.conversation_ids()) == []
    assert store.load("c") == Loaded(0, None)
    store.delete("c")
    assert store.acquire_lease("c", "b", 30)


def test_a_conflict_carries_what_a_load_answers(store: TrackerStore) -> None:
    """The loser of a compare-and-append redoes its turn on the state its conflict
    answer carries, without a load: it must be the load's answer."""
    with pytest.raises(VersionConflict) as missing:
        store.append("c1", [_event(0)], 2, {"n": 0})
    assert missing.value.current == store.load("c1") == Loaded(0, None)

    store.append("c1", [_event(0)], 0, {"n": 1, "f": [0.5]}, {"k": {"next": "a"}})
    store.append("c1", [_event(1)], 1, {"n": 2, "f": [0.25]})
    with pytest.raises(VersionConflict) as info:
        store.append("c1", [_event(2)], 1, {"n": 99})
    assert info.value.current == store.load("c1")
    assert info.value.current == Loaded(2, {"n": 2, "f": [0.25]}, {"k": {"next": "a"}})


def test_after_write_is_what_a_load_answers(store: TrackerStore) -> None:
    """The state one turn hands the next in its process (``worker.turnqueue``)
    equals a load after the write, keys trimmed and values through the codec."""
    snapshot = {"n": 1, "t": (1, 2), "m": {"a": [1.5, None]}}
    keys = {f"k{n}": {"next_action": f"a{n}"} for n in range(20)}
    version = store.append("c1", [_event(0)], 0, snapshot, keys)
    assert store.after_write("c1", version, snapshot, keys) == store.load("c1")
    version = store.append("c1", [_event(1)], version, {"n": 2})
    loaded = store.load("c1")
    assert store.after_write("c1", version, {"n": 2}, loaded.keys) == loaded
    assert store.after_write("c2", 1, {}, {}) == Loaded(1, {}, {})
