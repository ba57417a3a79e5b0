"""The event stream: every event appended to a conversation, in a Redis Stream.

The write script (``append.lua``) adds the entries in the same atomic call that
appends the events to the log, so the stream holds exactly the logged events: no
event is streamed that was not stored, none stored that is not streamed (Rasa's
event brokers publish after the save, and a crash between the two loses or
duplicates). Off unless ``dialogd serve --event-stream``.

One stream per store, ``{prefix}dlg:events``. Each entry is one of:

- ``type=event``: ``sender_id``, ``seq`` (the event's index in the conversation's
  log) and ``event``, the event as JSON in the shape of Rasa's event brokers (the
  event's fields plus ``sender_id``);
- ``type=reset``: ``sender_id``'s log was replaced (``PUT .../tracker/events``) or
  started anew (after a delete or its TTL): its next events start at ``seq`` 0,
  and a consumer drops what it kept of the conversation.

A consumer group may hand out an entry that was trimmed away meanwhile: it is
decoded as ``type=trimmed``, to acknowledge and skip.

Entries of one conversation are in log order. The stream is trimmed to about
``maxlen`` entries (``MAXLEN ~``) and, with ``max_age``, to entries younger than
that (``MINID ~``): a consumer that falls further behind loses entries.

A single stream cannot live in every slot of a Redis Cluster, and a script may only
touch keys of one slot: with a Cluster URL the stream is refused (a per-slot
stream, in the slot of each conversation's hash tag, would need every consumer to
follow up to 16384 streams; docs/operations.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import redis

from trackerstore.clients import CLUSTER_SCHEMES
from trackerstore.clients import check_redis_url
from trackerstore.clients import make_client
from trackerstore.clients import unavailable

DEFAULT_MAXLEN = 1_000_000
#: what a consumer may ask for at once
MAX_COUNT = 10_000


def stream_key(prefix: str) -> str:
    """The stream of the store with key prefix ``prefix``."""
    return f"{prefix}dlg:events"


@dataclass(frozen=True)
class StreamConfig:
    """How long the stream may grow: about ``maxlen`` entries, and with
    ``max_age`` (seconds) no entry older than that."""

    maxlen: int = DEFAULT_MAXLEN
    max_age: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.maxlen, bool) or not isinstance(self.maxlen, int):
            raise TypeError("maxlen must be an int")
        if self.maxlen < 1:
            raise ValueError("the event stream's maxlen must be at least 1")
        if self.max_age is not None and (
            isinstance(self.max_age, bool)
            or not isinstance(self.max_age, int)
            or self.max_age < 1
        ):
            raise ValueError("the event stream's max age is a positive int (seconds)")

    def script_args(self, cid: str) -> list[Any]:
        """``append.lua``'s ARGV[7..9] (see its header)."""
        return [self.maxlen, (self.max_age or 0) * 1000, cid]


def check_stream_url(url: str) -> None:
    if url.startswith(CLUSTER_SCHEMES):
        raise ValueError(
            "the event stream is one Redis Stream, and a Redis Cluster cannot hold "
            "it beside every conversation: use a single Redis or Sentinel for it "
            "(docs/operations.md)"
        )


def event_json(cid: str, event: Mapping[str, Any]) -> bytes:
    """One event in the shape Rasa's brokers publish: ``sender_id`` and the
    event's fields."""
    return orjson.dumps({"sender_id": cid, **event}, option=orjson.OPT_NON_STR_KEYS)


@dataclass(frozen=True, slots=True)
class Entry:
    """One stream entry, decoded."""

    id: str
    type: str
    sender_id: str
    seq: int | None = None
    event: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "sender_id": self.sender_id,
        }
        if self.type == "event":
            out.update(seq=self.seq, event=self.event)
        return out


def decode_entry(entry_id: bytes | str, fields: Mapping[bytes, bytes] | None) -> Entry:
    """An entry as ``XRANGE``/``XREADGROUP`` return it."""
    ident = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    if not fields:
        return Entry(ident, "trimmed", "")
    kind = fields[b"type"].decode()
    sender = fields[b"sender_id"].decode("utf-8")
    if kind != "event":
        return Entry(ident, kind, sender)
    return Entry(ident, kind, sender, int(fields[b"seq"]), json.loads(fields[b"event"]))


def id_after(entry_id: str) -> str:
    """The smallest stream id above ``entry_id`` (``XRANGE`` is inclusive)."""
    ms, _, seq = entry_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


class EventStream:
    """Reading the stream: in order (``entries``, ``follow``) or as one consumer of
    a consumer group (``read_group``, ``claim_stale``, ``ack``)."""

    def __init__(self, url: str, *, prefix: str = "", socket_timeout: float = 10.0):
        check_redis_url(url)
        check_stream_url(url)
        self.key = stream_key(prefix)
        self._redis: Any = make_client(url, socket_timeout=socket_timeout)

    def close(self) -> None:
        self._redis.close()

    def length(self) -> int:
        with unavailable():
            return int(self._redis.xlen(self.key))

    def entries(
        self, start: str = "-", end: str = "+", count: int = 1000
    ) -> Iterator[Entry]:
        """Every entry from ``start`` to ``end`` (inclusive), oldest first."""
        count = max(1, min(count, MAX_COUNT))
        while True:
            with unavailable():
                batch = self._redis.xrange(self.key, start, end, count=count)
            for entry_id, fields in batch:
                yield decode_entry(entry_id, fields)
            if len(batch) < count:
                return
            start = id_after(batch[-1][0].decode())

    def follow(self, after: str = "$", block_ms: int = 1000) -> Iterator[Entry]:
        """Entries added after ``after`` (``$``: from now on), as they come."""
        last = after
        if last == "$":
            with unavailable():
                newest = self._redis.xrevrange(self.key, count=1)
            last = newest[0][0].decode() if newest else "0-0"
        while True:
            with unavailable():
                reply = self._redis.xread({self.key: last}, count=1000, block=block_ms)
            for _, batch in reply or []:
                for entry_id, fields in batch:
                    last = entry_id.decode()
                    yield decode_entry(entry_id, fields)

    # ---- consumer groups ---------------------------------------------------------
    def create_group(self, group: str, start: str = "0") -> None:
        """The group, reading from ``start`` (``0``: every entry kept); an existing
        group is left as it is."""
        try:
            with unavailable():
                self._redis.xgroup_create(self.key, group, id=start, mkstream=True)
        except redis.exceptions.ResponseError as err:
            if "BUSYGROUP" not in str(err):
                raise

    def read_group(
        self, group: str, consumer: str, count: int = 100, block_ms: int = 1000
    ) -> list[Entry]:
        """New entries for ``consumer``, waiting up to ``block_ms`` for some (0:
        not at all); they stay pending until ``ack``."""
        with unavailable():
            reply = self._redis.xreadgroup(
                group,
                consumer,
                {self.key: ">"},
                count=max(1, min(count, MAX_COUNT)),
                # NOTE: Redis' BLOCK 0 waits for ever
                block=block_ms or None,
            )
        return [decode_entry(i, f) for _, batch in reply or [] for i, f in batch]

    def pending_of(self, group: str, consumer: str, count: int = 100) -> list[Entry]:
        """Entries delivered to ``consumer`` and not acknowledged (after a crash:
        the ones to apply again), oldest first."""
        with unavailable():
            reply = self._redis.xreadgroup(
                group,
                consumer,
                {self.key: "0"},
                count=max(1, min(count, MAX_COUNT)),
            )
        return [decode_entry(i, f) for _, batch in reply or [] for i, f in batch]

    def claim_stale(
        self, group: str, consumer: str, idle_ms: int, count: int = 100
    ) -> list[Entry]:
        """Take over entries another consumer was given and has not acknowledged
        for ``idle_ms`` (it died): ``XAUTOCLAIM``."""
        with unavailable():
            reply = self._redis.xautoclaim(
                self.key, group, consumer, idle_ms, start_id="0-0", count=count
            )
        return [decode_entry(i, f) for i, f in reply[1]]

    def ack(self, group: str, ids: list[str]) -> None:
        if ids:
            with unavailable():
                self._redis.xack(self.key, group, *ids)
