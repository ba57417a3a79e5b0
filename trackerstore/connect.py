"""Build the configured store from one URL."""

from __future__ import annotations

from trackerstore.base import TrackerStore
from trackerstore.clients import REDIS_SCHEMES
from trackerstore.memory import InMemoryStore
from trackerstore.redis_store import RedisStore
from trackerstore.stream import StreamConfig

MEMORY_URL = "memory://"


def connect(
    url: str,
    *,
    prefix: str = "",
    ttl: int | None = None,
    stream: StreamConfig | None = None,
) -> TrackerStore:
    """``memory://`` for an in-process store, a Redis URL for ``RedisStore``;
    ``stream`` turns the event stream on (Redis only).

    No connection is made yet: Redis clients are created lazily, per process.
    """
    if url == MEMORY_URL:
        if stream is not None:
            raise ValueError("the event stream needs a Redis store")
        return InMemoryStore(ttl=ttl)
    if url.startswith(REDIS_SCHEMES):
        return RedisStore(url, prefix=prefix, ttl=ttl, stream=stream)
    scheme = url.partition("://")[0] if "://" in url else "(none)"
    raise ValueError(
        f"unsupported store URL scheme {scheme!r}; "
        f"expected {MEMORY_URL} or one of {', '.join(REDIS_SCHEMES)}"
    )
