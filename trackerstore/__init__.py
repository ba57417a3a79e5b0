"""Persistence of conversations: an event log plus a snapshot per conversation."""

from trackerstore.base import Loaded
from trackerstore.base import PendingLoad
from trackerstore.base import TrackerStore
from trackerstore.connect import connect
from trackerstore.embedded import EmbeddedRedis
from trackerstore.errors import CorruptRecord
from trackerstore.errors import EmbeddedRedisError
from trackerstore.errors import StoreError
from trackerstore.errors import StoreFull
from trackerstore.errors import StoreUnavailable
from trackerstore.errors import UnstorableValue
from trackerstore.errors import VersionConflict
from trackerstore.memory import InMemoryStore
from trackerstore.redis_store import RedisStore

__all__ = [
    "CorruptRecord",
    "EmbeddedRedis",
    "EmbeddedRedisError",
    "InMemoryStore",
    "Loaded",
    "PendingLoad",
    "RedisStore",
    "StoreError",
    "StoreFull",
    "StoreUnavailable",
    "TrackerStore",
    "UnstorableValue",
    "VersionConflict",
    "connect",
]
