"""``conversation_page``: SCAN-based pages on Redis and Redis Cluster, offsets in
memory; every id once over the pages of a quiet store."""

from __future__ import annotations

import pytest

from trackerstore import InMemoryStore
from trackerstore import RedisStore
from trackerstore import TrackerStore

IDS = [f"user-{i}" for i in range(57)] + ["{odd}*id?", "100%"]


def all_pages(store: TrackerStore, limit: int) -> tuple[list[str], int]:
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page, cursor = store.conversation_page(cursor, limit)
        pages += 1
        assert len(page) <= limit + 10  # SCAN batches: about the limit
        seen += page
        if cursor is None:
            return seen, pages
        assert pages < 1000, "the cursor never ends"


@pytest.fixture(params=["memory", "redis_url", "cluster_url"])
def store(request, key_prefix) -> TrackerStore:
    if request.param == "memory":
        made: TrackerStore = InMemoryStore()
    else:
        made = RedisStore(request.getfixturevalue(request.param), prefix=key_prefix)
    for cid in IDS:
        made.append(cid, [], 0, {})
    return made


def test_the_pages_hold_every_id_once(store) -> None:
    seen, pages = all_pages(store, 10)
    assert sorted(seen) == sorted(IDS)
    assert pages >= 3
    seen, _ = all_pages(store, 1000)
    assert sorted(seen) == sorted(IDS)


@pytest.mark.parametrize("cursor", ["x", "1:", ":1", "-1:0", "1:2:3", "9" * 40])
def test_a_cursor_from_elsewhere_is_refused(redis_url, key_prefix, cursor) -> None:
    with pytest.raises(ValueError):
        RedisStore(redis_url, prefix=key_prefix).conversation_page(cursor, 10)
    with pytest.raises(ValueError):
        InMemoryStore().conversation_page(cursor, 10)
