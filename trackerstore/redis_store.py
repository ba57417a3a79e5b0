"""The Redis tracker store: one hash-tagged list and one hash per conversation.

Layout, for conversation ``cid`` under ``prefix``:

- ``{prefix}dlg:{cid}:log``: list of encoded events, oldest first.
- ``{prefix}dlg:{cid}:meta``: hash of ``v`` (version, a write counter), ``s``
  (encoded snapshot), ``w`` (token of the last write, see ``append.lua``) and
  ``k`` (the clients' latest idempotency keys, if any).
- ``{prefix}dlg:{cid}:lease``: the token of the message loop that holds the
  conversation (``acquire_lease``), with a TTL.

The braces are a Redis Cluster hash tag, so both keys live in one slot and the
write script may touch them together.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError
from redis.retry import Retry

from trackerstore import clients
from trackerstore.base import Loaded
from trackerstore.base import PendingLoad
from trackerstore.base import TrackerStore
from trackerstore.base import check_cid
from trackerstore.base import check_ttl
from trackerstore.base import decode_keys_of
from trackerstore.base import decode_log
from trackerstore.base import decode_snapshot_of
from trackerstore.base import encode_keys
from trackerstore.clients import check_redis_url
from trackerstore.clients import make_client
from trackerstore.clients import process_id
from trackerstore.clients import unavailable
from trackerstore.codec import encode_event
from trackerstore.codec import encode_snapshot
from trackerstore.errors import CorruptRecord
from trackerstore.errors import VersionConflict
from trackerstore.stream import StreamConfig
from trackerstore.stream import check_stream_url
from trackerstore.stream import event_json
from trackerstore.stream import stream_key

WRITE_SCRIPT = resources.files(__package__).joinpath("append.lua").read_text("utf-8")
WRITE_SHA = hashlib.sha1(WRITE_SCRIPT.encode()).hexdigest()

#: take the lease, or extend it for its own holder, in one step
LEASE_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
#: free the lease only for its holder: an expired holder must not free the next's
LEASE_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_RETRIES = 3
_HEALTH_CHECK_INTERVAL = 30
_TOKEN_BITS = 64
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def _escape(cid: str) -> str:
    """Braces and ``%`` are percent-escaped, so the hash tag is always the whole,
    non-empty id (an id like ``}x`` would otherwise give an empty tag)."""
    return cid.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


def _unescape(text: str) -> str:
    return text.replace("%7D", "}").replace("%7B", "{").replace("%25", "%")


def conversation_keys(prefix: str, cid: str) -> tuple[str, str]:
    """The ``(log, meta)`` keys of a conversation, in one Cluster hash slot."""
    base = f"{prefix}dlg:{{{_escape(cid)}}}"
    return f"{base}:log", f"{base}:meta"


def lease_key(prefix: str, cid: str) -> str:
    """The conversation's lease, in the slot of its log and meta."""
    return f"{prefix}dlg:{{{_escape(cid)}}}:lease"


def _meta_pattern(prefix: str) -> tuple[str, str, str]:
    """What comes before and after an id in a ``:meta`` key, and the SCAN pattern
    of all of them."""
    head = f"{prefix}dlg:{{"
    tail = "}:meta"
    return head, tail, _GLOB_SPECIAL.sub(r"\\\1", head) + "*" + tail


def _page_cursor(cursor: str | None) -> tuple[int, int]:
    """``node:position`` of ``conversation_page``, checked: it comes from a
    client."""
    if cursor is None:
        return 0, 0
    node, sep, position = cursor.partition(":")
    if not (sep and node.isdigit() and position.isdigit()) or len(cursor) > 32:
        raise ValueError("not a cursor of this store")
    return int(node), int(position)


@dataclass(frozen=True, slots=True)
class _Client:
    """A client, valid only in the process ``pid``."""

    pid: int
    #: Any: redis-py types each result as "awaitable or value" (sync and asyncio)
    redis: Any
    #: per thread: the client of the turn's two commands (see ``_turn_client``)
    local: threading.local


def call(client: Any, *command: Any) -> Any:
    """``command`` on the client's own connection if it has one and redis-py is a
    tested release (``clients.FAST_PATHS``), else through ``execute_command``;
    resent after transport errors as the client would.

    PERF: a thread's own connection needs none of the client's per-command layers
    (a lock, response callbacks, observability hooks): a third of the cost of a
    turn's command in redis-py 7.0, more in 8.x, where the GIL is held.
    """
    connection = getattr(client, "connection", None)
    if connection is None or not clients.FAST_PATHS:
        return client.execute_command(*command)

    def attempt() -> Any:
        connection.send_command(*command)
        return connection.read_response()

    return connection.retry.call_with_retry(attempt, lambda _: connection.disconnect())


class _SentLoad(PendingLoad):
    """An ``HMGET`` sent on ``connection`` whose answer has not been read yet.

    The connection holds the answer for ``ticket`` only until its next command:
    a load that is dropped, or outlived by another command, loses its answer
    and ``result`` loads again (see ``clients._OwedReply``).
    """

    __slots__ = ("connection", "ticket")

    def __init__(self, store: RedisStore, cid: str, connection: Any, ticket: object):
        super().__init__(store, cid)
        self.connection = connection
        self.ticket = ticket

    def result(self) -> Loaded:
        store = self.store
        assert isinstance(store, RedisStore)
        try:
            reply = self.connection.read_deferred(self.ticket)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            # dropped, or read_response has dropped the connection: load again
            return store.load(self.cid)
        return store._loaded(self.cid, *reply)

    def cancel(self) -> None:
        """Nothing to do: the connection drops the answer before its next command."""


class RedisStore(TrackerStore):
    """Tracker store on Redis; safe to build before gunicorn forks.

    The client is created on first use and again in each forked process, so
    every process gets its own connection pool. ``ttl`` (seconds) is refreshed
    on every write (sliding expiry). With ``stream``, every write also adds its
    events to the event stream (``trackerstore.stream``).
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "",
        ttl: int | None = None,
        socket_timeout: float = 5.0,
        stream: StreamConfig | None = None,
    ) -> None:
        check_redis_url(url)
        check_ttl(ttl)
        if stream is not None:
            check_stream_url(url)
        if "{" in prefix or "}" in prefix:
            raise ValueError("a key prefix must not contain braces (Cluster hash tags)")
        self._url = url
        self._prefix = prefix
        self._ttl = ttl
        self._socket_timeout = socket_timeout
        self._stream = stream
        self._stream_key = stream_key(prefix)
        self._client: _Client | None = None

    def __repr__(self) -> str:
        return f"RedisStore(prefix={self._prefix!r}, ttl={self._ttl!r})"

    def _conn(self) -> _Client:
        # NOTE: no lock: a lock held by another thread at fork time would stay
        # locked forever in the child. Two threads racing here both get a
        # working client; the spare one is garbage collected.
        client = self._client
        pid = process_id()
        if client is None or client.pid != pid:
            conn = make_client(
                self._url,
                socket_timeout=self._socket_timeout,
                socket_connect_timeout=self._socket_timeout,
                retry=Retry(
                    ExponentialBackoff(cap=0.5, base=0.025),
                    _RETRIES,
                    supported_errors=(
                        redis.exceptions.ConnectionError,
                        redis.exceptions.TimeoutError,
                    ),
                ),
                health_check_interval=_HEALTH_CHECK_INTERVAL,
            )
            client = _Client(pid, conn, threading.local())
            self._client = client
        return client

    def _turn_client(self, client: _Client) -> Any:
        """A client that keeps one connection of the pool for its thread (Any:
        as ``_Client.redis``).

        PERF: a turn's load and write each took a connection from the pool and
        gave it back; redis-py's pool bookkeeping was ~5% of a turn's CPU. A server
        thread serves one request at a time, so it may keep one. Cluster clients
        route per key and keep their pools.
        """
        mine = getattr(client.local, "redis", None)
        if mine is None:
            mine = client.redis
            if type(mine) is redis.Redis:
                mine = redis.Redis(
                    connection_pool=mine.connection_pool, single_connection_client=True
                )
            client.local.redis = mine
        return mine

    def load(self, cid: str) -> Loaded:
        check_cid(cid)
        _, meta = conversation_keys(self._prefix, cid)
        client = self._conn()
        with unavailable():
            reply = call(self._turn_client(client), "HMGET", meta, "v", "s", "k")
        return self._loaded(cid, *reply)

    def prefetch(self, cid: str) -> PendingLoad:
        """Send the load's ``HMGET`` now on the thread's own connection and read
        the answer in ``result()``.

        PERF: a parse turn sends it before running NLU, so the answer is waiting
        when the turn needs it: one wait for Redis per turn instead of two, and a
        server thread that sleeps and wakes once less. Any transport error falls
        back to ``load``, with its retries (HMGET can be sent again).
        """
        pending = super().prefetch(cid)
        _, meta = conversation_keys(self._prefix, cid)
        try:
            turn = self._turn_client(self._conn())
            connection = getattr(turn, "connection", None)
            if connection is None:  # Cluster: routed per key, no connection of ours
                return pending
            ticket = connection.send_deferred("HMGET", meta, "v", "s", "k")
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            return pending  # redis-py has dropped the connection
        return _SentLoad(self, cid, connection, ticket)

    def _loaded(
        self,
        cid: str,
        version: bytes | None,
        snapshot: bytes | None,
        keys: bytes | None = None,
    ) -> Loaded:
        if version is None:
            return Loaded(0, None)
        if snapshot is None:
            raise CorruptRecord(cid, -1, "snapshot missing")
        try:
            number = int(version)
        except ValueError as exc:
            raise CorruptRecord(cid, -1, f"bad version {version!r}") from exc
        return Loaded(
            number, decode_snapshot_of(cid, snapshot), decode_keys_of(cid, keys)
        )

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
        """Run ``append.lua``: the compare, the write and the TTL in one trip."""
        check_cid(cid)
        args = [
            "" if expected_version is None else int(expected_version),
            1 if replace else 0,
            # PERF: the process's own generator (reseeded at fork), not a system
            # call: the token only has to differ from other writes' tokens.
            random.getrandbits(_TOKEN_BITS).to_bytes(_TOKEN_BITS // 8, "little"),
            self._ttl or 0,
            encode_snapshot(snapshot),
            "" if keys is None else encode_keys(keys),
        ]
        log, meta = conversation_keys(self._prefix, cid)
        if self._stream is None:
            args += [encode_event(event) for event in events]
            command = ("EVALSHA", WRITE_SHA, 2, log, meta, *args)
        else:
            args += self._stream.script_args(cid)
            args += [encode_event(event) for event in events]
            args += [event_json(cid, event) for event in events]
            command = ("EVALSHA", WRITE_SHA, 3, log, meta, self._stream_key, *args)
        client = self._conn()
        with unavailable():
            turn = self._turn_client(client)
            # NOTE: a server that lost the script (a restart, SCRIPT FLUSH) gets it
            # again; the script itself makes the resent call safe.
            try:
                ok, version, *stored = call(turn, *command)
            except NoScriptError:
                turn.script_load(WRITE_SCRIPT)
                ok, version, *stored = call(turn, *command)
        if not ok and expected_version is not None:
            # the conflict answer carries what a load would answer now
            current = self._loaded(cid, version or None, *stored) if stored else None
            raise VersionConflict(cid, expected_version, int(version), current)
        return int(version)

    def read_log(
        self, cid: str, start: int = 0, stop: int | None = None
    ) -> list[dict[str, Any]]:
        check_cid(cid)
        if stop == 0:
            # NOTE: LRANGE's stop is inclusive, and -1 would mean "to the end".
            return []
        log, _ = conversation_keys(self._prefix, cid)
        end = -1 if stop is None else stop - 1
        if start >= 0 and (stop is None or stop > 0):
            # NOTE: no MULTI where no length is needed: a Redis out of memory
            # refuses every command queued in a transaction, and a full Redis
            # should still answer what it holds.
            with unavailable():
                records = self._conn().redis.lrange(log, start, end)
            return decode_log(cid, start, records)
        with unavailable(), self._conn().redis.pipeline(transaction=True) as pipe:
            # NOTE: LRANGE clamps indices like a Python slice does; LLEN, read in the
            # same transaction, turns a negative start into an absolute index.
            pipe.llen(log)
            pipe.lrange(log, start, end)
            length, records = pipe.execute()
        first = slice(start, stop).indices(length)[0]
        return decode_log(cid, first, records)

    def acquire_lease(self, cid: str, token: str, ttl: float) -> bool:
        check_cid(cid)
        key = lease_key(self._prefix, cid)
        redis_ = self._conn().redis
        with unavailable():
            script = redis_.register_script(LEASE_ACQUIRE)
            return bool(script(keys=[key], args=[token, max(1, int(ttl * 1000))]))

    def release_lease(self, cid: str, token: str) -> None:
        check_cid(cid)
        key = lease_key(self._prefix, cid)
        redis_ = self._conn().redis
        with unavailable():
            redis_.register_script(LEASE_RELEASE)(keys=[key], args=[token])

    def log_length(self, cid: str) -> int:
        check_cid(cid)
        log, _ = conversation_keys(self._prefix, cid)
        with unavailable():
            return int(self._conn().redis.llen(log))

    def conversation_ids(self) -> Iterator[str]:
        """Ids found by SCAN over this prefix, each once.

        As with SCAN, a conversation created or deleted meanwhile may be missed.
        """
        head, tail, pattern = _meta_pattern(self._prefix)
        seen: set[str] = set()
        with unavailable():
            for key in self._conn().redis.scan_iter(match=pattern, count=1000):
                cid = _unescape(key.decode("utf-8")[len(head) : -len(tail)])
                if cid and cid not in seen:
                    seen.add(cid)
                    yield cid

    def conversation_page(
        self, cursor: str | None, limit: int
    ) -> tuple[list[str], str | None]:
        """A page of SCAN: the cursor is ``node:position`` (node: the index of a
        Cluster primary, by name; 0 on a single Redis). As with SCAN, an id may
        come twice across pages, and one created or deleted meanwhile may be
        missed; a page may hold a few more than ``limit`` (SCAN's batches)."""
        node, position = _page_cursor(cursor)
        head, tail, pattern = _meta_pattern(self._prefix)
        client = self._conn().redis
        nodes: list[Any] = (
            sorted(client.get_primaries(), key=lambda n: n.name)
            if isinstance(client, RedisCluster)
            else [None]
        )
        found: dict[str, None] = {}
        with unavailable():
            while node < len(nodes) and len(found) < limit:
                count = max(10, limit - len(found))
                target = nodes[node]
                if target is None:
                    position, keys = client.scan(position, match=pattern, count=count)
                else:
                    positions, keys = client.scan(
                        cursor=position, match=pattern, count=count, target_nodes=target
                    )
                    position = positions[target.name]
                for key in keys:
                    cid = _unescape(key.decode("utf-8")[len(head) : -len(tail)])
                    if cid:
                        found[cid] = None
                if position == 0:
                    node += 1
        more = node < len(nodes)
        return list(found), f"{node}:{position}" if more else None

    def delete(self, cid: str) -> None:
        check_cid(cid)
        with unavailable():
            self._conn().redis.delete(
                *conversation_keys(self._prefix, cid), lease_key(self._prefix, cid)
            )

    def ping(self) -> None:
        with unavailable():
            self._conn().redis.ping()

    def close(self) -> None:
        client, self._client = self._client, None
        # NOTE: a client inherited through fork belongs to the parent: just drop it.
        if client is not None and client.pid == process_id():
            client.redis.close()
