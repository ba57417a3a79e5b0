"""The store's exception tree: one root, so ``api/`` maps them in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trackerstore.base import Loaded


class StoreError(Exception):
    """Root of every error raised by ``trackerstore``."""


class VersionConflict(StoreError):
    """Another writer changed the conversation since it was loaded.

    The worker redoes the turn on fresh state; nothing of the failed write is
    stored. ``current`` is that state when the store read it in the same step (what
    ``load`` would answer now), so the redo needs no other round trip; None when
    the store did not.
    """

    def __init__(
        self, cid: str, expected: int, actual: int, current: Loaded | None = None
    ) -> None:
        super().__init__(
            f"conversation {cid!r} is at version {actual}, expected {expected}"
        )
        self.cid = cid
        self.expected = expected
        self.actual = actual
        self.current = current


class StoreUnavailable(StoreError):
    """Redis cannot be reached or did not answer in time (a 503, not a bug)."""


class StoreFull(StoreUnavailable):
    """Redis is out of memory (``maxmemory`` with ``noeviction``) and refuses
    writes: nothing was written; reads still work (a 503 until space is made)."""


class UnstorableValue(StoreError):
    """An event or snapshot holds a value msgpack cannot write (an integer beyond
    64 bits, say): the client's input is refused, nothing is stored."""


class CorruptRecord(StoreError):
    """A stored record cannot be decoded: reported, never skipped.

    ``index`` is the record's position in the event log, or -1 for the snapshot.
    """

    def __init__(self, cid: str, index: int, reason: str = "") -> None:
        where = "snapshot" if index == -1 else f"event record {index}"
        detail = f": {reason}" if reason else ""
        super().__init__(f"conversation {cid!r}: cannot decode {where}{detail}")
        self.cid = cid
        self.index = index


class EmbeddedRedisError(StoreError):
    """The development Redis server could not be started or stopped."""
