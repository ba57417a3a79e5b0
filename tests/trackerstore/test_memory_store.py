"""What only the in-memory store has: expiry on an injected clock."""

from __future__ import annotations

import pytest

from trackerstore import InMemoryStore
from trackerstore import Loaded


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ttl_slides_with_each_write() -> None:
    clock = FakeClock()
    store = InMemoryStore(ttl=10, clock=clock)
    store.append("c1", [{"n": 0}], 0, {})
    clock.now += 8
    store.append("c1", [], 1, {})
    clock.now += 8

    assert store.load("c1").version == 2
    clock.now += 2
    assert store.load("c1") == Loaded(0, None)
    assert store.read_log("c1") == []
    assert list(store.conversation_ids()) == []


def test_no_ttl_never_expires() -> None:
    clock = FakeClock()
    store = InMemoryStore(clock=clock)
    store.append("c1", [], 0, {})
    clock.now += 10**9

    assert store.load("c1").version == 1


@pytest.mark.parametrize("ttl", [0, -1])
def test_ttl_must_be_positive(ttl: int) -> None:
    with pytest.raises(ValueError):
        InMemoryStore(ttl=ttl)
