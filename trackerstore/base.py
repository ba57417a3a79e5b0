"""The tracker store interface shared by the Redis and in-memory stores."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from types import TracebackType
from typing import Any
from typing import Self

from trackerstore.codec import CodecError
from trackerstore.codec import decode_event
from trackerstore.codec import decode_snapshot
from trackerstore.codec import encode_snapshot
from trackerstore.errors import CorruptRecord

#: idempotency keys a conversation remembers: the latest ones, oldest forgotten
MAX_KEYS = 16


@dataclass(frozen=True, slots=True)
class Loaded:
    """What a turn needs from the store: the snapshot and the version it is at.

    Version 0 with no snapshot means the conversation does not exist yet.
    """

    version: int
    snapshot: dict[str, Any] | None
    #: the clients' idempotency keys of the latest writes, oldest first, each
    #: with what its write answered (see ``append``)
    keys: dict[str, Any] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        """Whether anything was ever written for the conversation."""
        return self.version > 0


class PendingLoad:
    """A ``load`` asked for now and answered by ``result``: the plain kind loads
    only when asked. Call ``result`` or ``cancel`` once; one that is dropped
    costs a wasted read and nothing else (no store may hand its answer to a
    later command)."""

    __slots__ = ("cid", "store")

    def __init__(self, store: TrackerStore, cid: str):
        self.store = store
        self.cid = cid

    def result(self) -> Loaded:
        return self.store.load(self.cid)

    def cancel(self) -> None:
        """The answer is not wanted after all."""


def check_cid(cid: str) -> None:
    """Reject ids that cannot name a conversation, before they reach a key."""
    if not isinstance(cid, str):
        raise TypeError(f"conversation id must be a str, not {type(cid).__name__}")
    if not cid:
        raise ValueError("conversation id must not be empty")


def check_ttl(ttl: int | None) -> None:
    """A TTL is a whole positive number of seconds, or None for no expiry."""
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int)):
        raise TypeError("ttl must be an int number of seconds or None")
    if ttl is not None and ttl <= 0:
        raise ValueError("ttl must be positive (None disables expiry)")


def decode_snapshot_of(cid: str, record: bytes) -> dict[str, Any]:
    """Decode a conversation's snapshot record, naming the conversation on error."""
    try:
        return decode_snapshot(record)
    except CodecError as exc:
        raise CorruptRecord(cid, -1, str(exc)) from exc


def encode_keys(keys: Mapping[str, Any]) -> bytes:
    """The latest ``MAX_KEYS`` idempotency keys, as stored beside the snapshot."""
    return encode_snapshot({"keys": [[k, a] for k, a in keys.items()][-MAX_KEYS:]})


def decode_keys_of(cid: str, record: bytes | None) -> dict[str, Any]:
    if record is None:
        return {}
    try:
        return {key: answer for key, answer in decode_snapshot(record)["keys"]}
    except (CodecError, KeyError, TypeError, ValueError) as exc:
        raise CorruptRecord(cid, -1, f"idempotency keys: {exc}") from exc


def decode_log(cid: str, first: int, records: Sequence[bytes]) -> list[dict[str, Any]]:
    """Decode ``records`` read from absolute position ``first`` of the log."""
    events = []
    for offset, record in enumerate(records):
        try:
            events.append(decode_event(record))
        except CodecError as exc:
            raise CorruptRecord(cid, first + offset, str(exc)) from exc
    return events


class TrackerStore(abc.ABC):
    """Conversations as an append-only event log plus a snapshot and a version.

    The version counts writes (not events), so a ``replace`` followed by appends
    can never look like "nothing changed" to a writer holding an old version.
    """

    @abc.abstractmethod
    def load(self, cid: str) -> Loaded:
        """The snapshot and version, in one round trip, without reading the log."""

    def prefetch(self, cid: str) -> PendingLoad:
        """``load``, started now and collected with ``result()``: a store that
        can send the request at once lets the caller work while it travels."""
        check_cid(cid)
        return PendingLoad(self, cid)

    def append(
        self,
        cid: str,
        events: Sequence[Mapping[str, Any]],
        expected_version: int,
        snapshot: Mapping[str, Any],
        keys: Mapping[str, Any] | None = None,
    ) -> int:
        """Append events and replace the snapshot if still at ``expected_version``.

        Atomic; raises ``VersionConflict`` and writes nothing otherwise. Returns
        the new version. ``events`` may be empty: the version still moves on.
        ``keys`` replaces the stored idempotency keys (the caller adds its own
        to the loaded ones; the latest ``MAX_KEYS`` are kept); None keeps them.
        """
        return self._write(
            cid, events, snapshot, expected_version, replace=False, keys=keys
        )

    def after_write(
        self,
        cid: str,
        version: int,
        snapshot: Mapping[str, Any],
        keys: Mapping[str, Any],
    ) -> Loaded:
        """What ``load`` answers right after a write that left the conversation at
        ``version`` with ``snapshot`` and ``keys``: the values go through the
        codec as the stored ones do, so the next turn of this process starts
        from exactly what a load would give it, without the round trip
        (``worker.turnqueue``)."""
        state = decode_snapshot_of(cid, encode_snapshot(snapshot))
        return Loaded(
            version, state, decode_keys_of(cid, encode_keys(keys)) if keys else {}
        )

    def replace(
        self,
        cid: str,
        events: Sequence[Mapping[str, Any]],
        snapshot: Mapping[str, Any],
        expected_version: int | None = None,
    ) -> int:
        """Replace the whole log and snapshot, atomically; returns the new version.

        Unconditional when ``expected_version`` is None, else like ``append``.
        """
        return self._write(cid, events, snapshot, expected_version, replace=True)

    @abc.abstractmethod
    def _write(
        self,
        cid: str,
        events: Sequence[Mapping[str, Any]],
        snapshot: Mapping[str, Any],
        expected_version: int | None,
        *,
        replace: bool,
        keys: Mapping[str, Any] | None = None,
    ) -> int:
        """The one atomic write behind ``append`` and ``replace``."""

    @abc.abstractmethod
    def read_log(
        self, cid: str, start: int = 0, stop: int | None = None
    ) -> list[dict[str, Any]]:
        """Decoded events ``log[start:stop]`` (Python slice semantics).

        Raises ``CorruptRecord`` with the absolute index of an unreadable record.
        """

    @abc.abstractmethod
    def acquire_lease(self, cid: str, token: str, ttl: float) -> bool:
        """Hold the conversation's lease for ``ttl`` seconds, or extend it when
        ``token`` holds it already; False while another token holds it.

        One message loop at a time per conversation (``worker/loop.py``): a loop
        calls action servers between its writes, and those calls must not
        interleave with another message's. A holder that dies frees the lease
        when its ``ttl`` runs out.
        """

    @abc.abstractmethod
    def release_lease(self, cid: str, token: str) -> None:
        """Free the lease if ``token`` still holds it (never another's)."""

    @abc.abstractmethod
    def log_length(self, cid: str) -> int:
        """Number of events in the log (0 for a missing conversation)."""

    @abc.abstractmethod
    def conversation_ids(self) -> Iterator[str]:
        """Ids of the stored conversations of this store (its prefix only)."""

    def conversation_page(
        self, cursor: str | None, limit: int
    ) -> tuple[list[str], str | None]:
        """Up to about ``limit`` ids from ``cursor`` (None: the start), and the
        cursor of the next page (None: the last page). Here: the sorted ids, by
        offset; the Redis store pages with SCAN. Raises ValueError for a cursor
        that is not one of ours."""
        offset = 0
        if cursor is not None:
            if not cursor.isdigit() or len(cursor) > 18:
                raise ValueError("not a cursor of this store")
            offset = int(cursor)
        ids = sorted(self.conversation_ids())
        page = ids[offset : offset + limit]
        more = offset + limit < len(ids)
        return page, str(offset + limit) if more else None

    @abc.abstractmethod
    def delete(self, cid: str) -> None:
        """Remove the conversation; deleting a missing one is not an error."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the backend answers."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections; the store may be used again afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
