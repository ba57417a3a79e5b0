"""Redis clients from one URL: a single server, Sentinel, or Cluster.

- ``redis://``, ``rediss://`` (TLS), ``unix://``: redis-py's own URL forms.
- ``redis+sentinel://[:password@]host:port[,host:port...]/service[/db]``
  (``rediss+sentinel://`` for TLS to the master): the master Sentinel names.
- ``redis+cluster://[:password@]host:port[,host:port...]`` (``rediss+cluster://``):
  a Redis Cluster reached through any of its nodes.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from typing import Any
from urllib.parse import unquote
from urllib.parse import urlsplit

import redis
from redis.cluster import ClusterNode
from redis.cluster import RedisCluster
from redis.sentinel import Sentinel
from redis.sentinel import SentinelManagedConnection
from redis.sentinel import SentinelManagedSSLConnection

from trackerstore.errors import StoreFull
from trackerstore.errors import StoreUnavailable

SINGLE_SCHEMES = ("redis://", "rediss://", "unix://")
SENTINEL_SCHEMES = ("redis+sentinel://", "rediss+sentinel://")
CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
REDIS_SCHEMES = SINGLE_SCHEMES + SENTINEL_SCHEMES + CLUSTER_SCHEMES


def check_redis_url(url: str) -> None:
    """Fail at configuration time, not at the first request, on a wrong scheme."""
    if not isinstance(url, str) or not url.startswith(REDIS_SCHEMES):
        # NOTE: never echo the URL: it may carry a password.
        scheme = url.partition("://")[0] if "://" in str(url) else "(none)"
        raise ValueError(
            f"unsupported Redis URL scheme {scheme!r}; "
            f"expected one of {', '.join(REDIS_SCHEMES)}"
        )
    if url.startswith(SENTINEL_SCHEMES + CLUSTER_SCHEMES):
        _, parts = _hosts(url)
        if url.startswith(SENTINEL_SCHEMES) and not parts.path.strip("/"):
            raise ValueError("a Sentinel URL names the service: .../service_name[/db]")


def _hosts(url: str) -> tuple[list[tuple[str, int]], Any]:
    parts = urlsplit(url)
    hosts = []
    for item in parts.netloc.rpartition("@")[2].split(","):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError("a Sentinel or Cluster URL lists host:port pairs")
        hosts.append((host.strip("[]"), int(port)))
    return hosts, parts


#: how Redis words a write refused at ``maxmemory``; a script's error carries it
#: too (Redis 6 wraps it in "ERR Error running script ...")
_OOM = "OOM command not allowed"


class _Unavailable:
    """Turn transport failures, and a Redis out of memory, into the store's own
    503-class errors.

    PERF: a class, not ``@contextmanager``: it wraps every Redis call of a turn,
    and a generator-based manager costs several times as much to enter and exit.
    """

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: Any, tb: Any) -> None:
        if kind is not None and issubclass(
            kind, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
        ):
            raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc
        if (
            kind is not None
            and issubclass(kind, redis.exceptions.ResponseError)
            and (
                issubclass(kind, redis.exceptions.OutOfMemoryError) or _OOM in str(exc)
            )
        ):
            raise StoreFull(
                "Redis is out of memory (maxmemory) and refuses writes"
            ) from exc


_UNAVAILABLE = _Unavailable()


def unavailable() -> _Unavailable:
    """``with unavailable(): ...`` around a Redis call (stateless, shared)."""
    return _UNAVAILABLE


_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def process_id() -> int:
    """``os.getpid()``, kept up to date across forks. PERF: a client checks that
    it belongs to this process on every command, and on Linux ``os.getpid()`` is a
    system call each time."""
    return _pid


def _release(version: str) -> tuple[int, int]:
    major, _, rest = version.partition(".")
    minor = rest.partition(".")[0]
    return (int(major), int(minor)) if major.isdigit() and minor.isdigit() else (0, 0)


#: PERF: redis-py releases whose connection internals the two fast paths were
#: tested on (6.1 to 8.1): kernel socket timeouts (``_KernelTimeouts``, which
#: extends the private ``Connection._connect``) and a turn's commands sent straight
#: on the thread's connection (``redis_store.call``). Any other release, or False
#: here, takes redis-py's public path only: what it costs is in
#: docs/performance.md.
FAST_PATHS = (6, 1) <= _release(redis.__version__) < (8, 2)


class _KernelTimeouts:
    """A redis-py connection whose read and write timeouts the kernel keeps
    (``SO_RCVTIMEO``, ``SO_SNDTIMEO``) on a blocking socket.

    PERF: CPython polls before every send and receive on a socket that has a
    timeout, which doubles the system calls of a command and the times a server
    thread gives the GIL up and waits to take it back. A blocked call still fails
    after ``io_timeout`` seconds, as a ``ConnectionError`` (retried, then
    ``StoreUnavailable``, like a ``TimeoutError``).
    """

    def __init__(self, *, io_timeout: float | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.io_timeout = io_timeout

    def _connect(self) -> socket.socket:
        sock = super()._connect()  # type: ignore[misc]
        if self.io_timeout:
            seconds = int(self.io_timeout)
            value = struct.pack(
                "ll", seconds, int((self.io_timeout - seconds) * 1_000_000)
            )
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)
        return sock


class _OwedReply:
    """A connection that knows it owes a reply read later (``send_deferred``).

    A deferred reply not yet read when any other command is sent on the
    connection is read and dropped first, and the one who deferred it is told it
    is gone (``read_deferred`` raises ``ConnectionError``, which callers treat as
    a lost reply): a reply can never be taken for another command's, whoever
    forgets to read it.
    """

    _owed: object | None = None

    def send_deferred(self, *args: Any) -> object:
        """Send a command whose reply ``read_deferred(ticket)`` reads later."""
        self.send_command(*args)  # type: ignore[attr-defined]
        ticket = object()
        self._owed = ticket
        return ticket

    def read_deferred(self, ticket: object) -> Any:
        if self._owed is not ticket:
            raise redis.exceptions.ConnectionError(
                "the deferred reply was dropped before it was read"
            )
        self._owed = None
        return self.read_response()  # type: ignore[attr-defined]

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if self._owed is not None:
            self._owed = None
            # NOTE: the dropped command's own error is not ours to raise
            with contextlib.suppress(redis.exceptions.ResponseError):
                self.read_response()  # type: ignore[attr-defined]
        super().send_packed_command(command, check_health)  # type: ignore[misc]

    def disconnect(self, *args: Any, **kwargs: Any) -> None:
        self._owed = None
        super().disconnect(*args, **kwargs)  # type: ignore[misc]


class _TCPConnection(_OwedReply, redis.Connection):
    pass


class _TLSConnection(_OwedReply, redis.SSLConnection):
    pass


class _UnixConnection(_OwedReply, redis.UnixDomainSocketConnection):
    pass


class _FastTCPConnection(_OwedReply, _KernelTimeouts, redis.Connection):
    pass


class _FastTLSConnection(_OwedReply, _KernelTimeouts, redis.SSLConnection):
    pass


class _FastUnixConnection(
    _OwedReply, _KernelTimeouts, redis.UnixDomainSocketConnection
):
    pass


class _SentinelConnection(_OwedReply, SentinelManagedConnection):
    pass


class _SentinelTLSConnection(_OwedReply, SentinelManagedSSLConnection):
    pass


def make_client(url: str, **options: Any) -> redis.Redis | RedisCluster:
    """A client for ``url``; ``options`` are connection settings (timeouts, retry)."""
    check_redis_url(url)
    if url.startswith(SINGLE_SCHEMES):
        scheme = (
            0 if url.startswith("unix://") else 1 if url.startswith("rediss") else 2
        )
        if not FAST_PATHS:
            kinds: tuple[type, ...] = (_UnixConnection, _TLSConnection, _TCPConnection)
            return redis.Redis.from_url(url, connection_class=kinds[scheme], **options)
        kinds = (_FastUnixConnection, _FastTLSConnection, _FastTCPConnection)
        return redis.Redis.from_url(
            url,
            connection_class=kinds[scheme],
            io_timeout=options.pop("socket_timeout", None),
            socket_timeout=None,
            **options,
        )
    hosts, parts = _hosts(url)
    password = unquote(parts.password) if parts.password else None
    username = unquote(parts.username) if parts.username else None
    tls = url.startswith("rediss")
    if url.startswith(CLUSTER_SCHEMES):
        options.pop("health_check_interval", None)
        return RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in hosts],
            username=username,
            password=password,
            ssl=tls,
            **options,
        )
    path = [p for p in parts.path.split("/") if p]
    db = int(path[1]) if len(path) > 1 else 0
    sentinel = Sentinel(hosts, socket_timeout=options.get("socket_timeout"))
    return sentinel.master_for(
        path[0],
        username=username,
        password=password,
        db=db,
        connection_class=_SentinelTLSConnection if tls else _SentinelConnection,
        **options,
    )
