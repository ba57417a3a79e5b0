"""A process-local store with the Redis store's semantics, for tests and demos."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from trackerstore.base import Loaded
from trackerstore.base import TrackerStore
from trackerstore.base import check_cid
from trackerstore.base import check_ttl
from trackerstore.base import decode_keys_of
from trackerstore.base import decode_log
from trackerstore.base import decode_snapshot_of
from trackerstore.base import encode_keys
from trackerstore.codec import encode_event
from trackerstore.codec import encode_snapshot
from trackerstore.errors import VersionConflict


@dataclass(slots=True)
class _Conversation:
    version: int = 0
    snapshot: bytes = b""
    log: list[bytes] = field(default_factory=list)
    keys: bytes | None = None
    expires_at: float | None = None


class InMemoryStore(TrackerStore):
    """Keeps encoded records in a dict, so callers never share mutable state.

    Going through the codec also means a value Redis could not store fails here.
    ``ttl`` expires a conversation ``ttl`` seconds after its last write, measured
    with ``clock``.
    """

    def __init__(
        self,
        *,
        ttl: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_ttl(ttl)
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._data: dict[str, _Conversation] = {}
        #: cid -> (token, expiry on ``clock``)
        self._leases: dict[str, tuple[str, float]] = {}

    def _get(self, cid: str) -> _Conversation | None:
        """The live conversation; the caller holds the lock."""
        conv = self._data.get(cid)
        expires_at = conv.expires_at if conv is not None else None
        if expires_at is not None and expires_at <= self._clock():
            del self._data[cid]
            return None
        return conv

    def load(self, cid: str) -> Loaded:
        check_cid(cid)
        with self._lock:
            conv = self._get(cid)
            if conv is None:
                return Loaded(0, None)
            version, raw, keys = conv.version, conv.snapshot, conv.keys
        return Loaded(version, decode_snapshot_of(cid, raw), decode_keys_of(cid, keys))

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
        check_cid(cid)
        records = [encode_event(event) for event in events]
        snap = encode_snapshot(snapshot)
        encoded_keys = encode_keys(keys) if keys is not None else None
        with self._lock:
            conv = self._get(cid) or _Conversation()
            if expected_version is not None and conv.version != expected_version:
                current = Loaded(0, None)
                if conv.version:
                    current = Loaded(
                        conv.version,
                        decode_snapshot_of(cid, conv.snapshot),
                        decode_keys_of(cid, conv.keys),
                    )
                raise VersionConflict(cid, expected_version, conv.version, current)
            if replace:
                conv.log = records
            else:
                conv.log.extend(records)
            conv.snapshot = snap
            if encoded_keys is not None:
                conv.keys = encoded_keys
            conv.version += 1
            if self._ttl is not None:
                conv.expires_at = self._clock() + self._ttl
            self._data[cid] = conv
            return conv.version

    def read_log(
        self, cid: str, start: int = 0, stop: int | None = None
    ) -> list[dict[str, Any]]:
        check_cid(cid)
        with self._lock:
            conv = self._get(cid)
            log = conv.log if conv is not None else []
            first = slice(start, stop).indices(len(log))[0]
            records = log[start:stop]
        return decode_log(cid, first, records)

    def acquire_lease(self, cid: str, token: str, ttl: float) -> bool:
        check_cid(cid)
        with self._lock:
            now = self._clock()
            held = self._leases.get(cid)
            if held is not None and held[0] != token and held[1] > now:
                return False
            self._leases[cid] = (token, now + ttl)
            return True

    def release_lease(self, cid: str, token: str) -> None:
        check_cid(cid)
        with self._lock:
            held = self._leases.get(cid)
            if held is not None and held[0] == token:
                del self._leases[cid]

    def log_length(self, cid: str) -> int:
        check_cid(cid)
        with self._lock:
            conv = self._get(cid)
            return len(conv.log) if conv is not None else 0

    def conversation_ids(self) -> Iterator[str]:
        with self._lock:
            cids = [cid for cid in list(self._data) if self._get(cid) is not None]
        yield from cids

    def delete(self, cid: str) -> None:
        check_cid(cid)
        with self._lock:
            self._data.pop(cid, None)
            self._leases.pop(cid, None)

    def ping(self) -> None:
        """Always answers: there is no backend to lose."""

    def close(self) -> None:
        """Nothing to release; the data stays, as it would in Redis."""
