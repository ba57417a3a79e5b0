"""HTTP to action and NLG servers: kept-alive connections and one deadline per call.

Python's ``http.client`` parses the answers; the sockets are ours, so that every
read waits at most the time left before the call's deadline: a server that never
answers, or trickles its answer a byte at a time, holds a worker thread no longer
than the endpoint's ``timeout``; so does a host name whose lookup hangs (it is
resolved on a helper thread, waited for until the connect timeout). Standard
library only (no HTTP client is a
dependency of the product).
"""

from __future__ import annotations

import base64
import concurrent.futures
import http.client
import io
import ipaddress
import logging
import os
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Self
from urllib.parse import quote
from urllib.parse import urlsplit

from worker.actions.errors import RemoteError
from worker.errors import InvalidConfig
from worker.version import __version__

log = logging.getLogger(__name__)

_USER_AGENT = f"dialogd/{__version__}"
#: helper threads for host name lookups, per process
_RESOLVER_THREADS = 4


@dataclass(frozen=True)
class Endpoint:
    """A remote server's URL and how to call it (``endpoints.yml``'s keys, as Rasa
    reads them, plus our ``timeout``s and answer limit).

    ``timeout`` bounds a whole call (connect, send, every read), in seconds.
    """

    url: str
    token: str | None = None
    token_name: str = "token"
    headers: dict[str, str] = field(default_factory=dict)
    basic_auth: tuple[str, str] | None = None
    timeout: float = 10.0
    connect_timeout: float = 3.0
    max_response_bytes: int = 4 * 2**20
    #: CA certificates (PEM) to trust for an https server, as Rasa's ``cafile``
    #: (an action server with a private or self-signed certificate).
    cafile: str | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidConfig(f"endpoint url must be http(s)://host...: {self.url!r}")
        if not 0 < self.timeout <= 3600 or not 0 < self.connect_timeout <= 3600:
            raise InvalidConfig("endpoint timeouts are seconds, above 0, up to 3600")
        if self.max_response_bytes < 1024:
            raise InvalidConfig("endpoint max_response_bytes must be at least 1024")
        for name, value in self.headers.items():
            if not _is_token(name) or any(c in value for c in "\r\n"):
                raise InvalidConfig(f"endpoint header {name!r} is not a valid header")
        if self.cafile is not None:
            try:
                ssl.create_default_context(cafile=self.cafile)
            except (OSError, ssl.SSLError) as err:
                raise InvalidConfig(
                    f"endpoint cafile {self.cafile!r} is not a PEM CA file: {err}"
                ) from None

    @classmethod
    def from_config(cls, config: Any) -> Self:
        """An ``endpoints.yml`` section: ``url``, ``token``, ``token_name``,
        ``headers``, ``basic_auth: {username, password}``, ``cafile``,
        ``timeout``, ``connect_timeout``, ``max_response_bytes``."""
        if isinstance(config, str):
            config = {"url": config}
        if not isinstance(config, dict) or not isinstance(config.get("url"), str):
            raise InvalidConfig("an endpoint needs a 'url' string")
        kwargs: dict[str, Any] = {"url": config["url"]}
        for key in ("token", "token_name", "cafile"):
            if config.get(key) is not None:
                if not isinstance(config[key], str | int):
                    raise InvalidConfig(f"endpoint '{key}' must be a string")
                kwargs[key] = str(config[key])
        headers = config.get("headers") or {}
        if not isinstance(headers, dict):
            raise InvalidConfig("endpoint 'headers' must be a mapping")
        kwargs["headers"] = {str(k): str(v) for k, v in headers.items()}
        auth = config.get("basic_auth")
        if auth is not None:
            if not isinstance(auth, dict) or not {"username", "password"} <= set(auth):
                raise InvalidConfig("endpoint 'basic_auth' takes username and password")
            kwargs["basic_auth"] = (str(auth["username"]), str(auth["password"]))
        for key in ("timeout", "connect_timeout", "max_response_bytes"):
            value = config.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidConfig(f"endpoint '{key}' must be a number")
            kwargs[key] = int(value) if key == "max_response_bytes" else float(value)
        return cls(**kwargs)

    @property
    def safe_url(self) -> str:
        """The URL for log lines: without its query (where a token may be)."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}{parts.path}"


@dataclass(frozen=True)
class ActionEndpoint(Endpoint):
    """``action_endpoint``: the action server (rasa_sdk's ``/webhook``)."""


@dataclass(frozen=True)
class NLGEndpoint(Endpoint):
    """``nlg``: a server that renders responses instead of the domain."""

    max_response_bytes: int = 2**20


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    content_type: str


def _is_token(name: str) -> bool:
    return bool(name) and all(c.isalnum() or c in "!#$%&'*+-.^_`|~" for c in name)


class _Target:
    """Where a URL's requests go, and the head of every request to it."""

    __slots__ = ("cafile", "host", "key", "port", "tls")

    def __init__(self, endpoint: Endpoint):
        parts = urlsplit(endpoint.url)
        self.tls = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.tls else 80)
        self.cafile = endpoint.cafile if self.tls else None
        self.key = (self.tls, self.host, self.port, self.cafile)


class _DeadlineReader(io.RawIOBase):
    """A socket's reads, each allowed only the time left before ``deadline``;
    closing it leaves the socket open (it may go back to the pool)."""

    def __init__(self, sock: socket.socket, deadline: float):
        super().__init__()
        self.sock = sock
        self.deadline = deadline
        self.received = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline")
        self.sock.settimeout(left)
        n = self.sock.recv_into(buffer)
        self.received += n
        return n


class _SocketShim:
    """What ``http.client.HTTPResponse`` asks of a socket: ``makefile``."""

    def __init__(self, reader: io.BufferedReader):
        self.reader = reader

    def makefile(self, mode: str) -> io.BufferedReader:
        return self.reader


class HttpClient:
    """POSTs JSON to endpoints; thread-safe, reuses connections per host.

    Idle connections are kept per (scheme, host, port), at most ``max_idle`` each;
    after a fork the child drops its parent's (they share the sockets).
    """

    def __init__(self, max_idle: int = 16):
        self.max_idle = max_idle
        self._idle: dict[tuple[bool, str, int, str | None], list[socket.socket]] = {}
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._tls: dict[str | None, ssl.SSLContext] = {}
        self._resolver: concurrent.futures.ThreadPoolExecutor | None = None

    def post_json(self, endpoint: Endpoint, body: bytes) -> Reply:
        """One POST; ``RemoteError`` for every way it can fail before a full answer
        (an HTTP error status is a ``Reply``, the caller judges it)."""
        target = _Target(endpoint)
        deadline = time.monotonic() + endpoint.timeout
        head = _request_head(endpoint, target, len(body))
        # NOTE: never retried, even on a kept-alive connection the server closed as
        # we sent: a POST runs an action, and an action must not run twice. Idle
        # connections the server closed are found before use (``_alive``).
        sock = self._checkout(target, endpoint, deadline)
        try:
            reply, keep = _exchange(sock, head + body, deadline, endpoint)
        except BaseException:
            sock.close()
            raise
        if keep:
            self._checkin(target, sock)
        else:
            sock.close()
        return reply

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for socks in idle.values():
            for sock in socks:
                sock.close()

    # ---- the pool --------------------------------------------------------------------
    def _checkout(
        self, target: _Target, endpoint: Endpoint, deadline: float
    ) -> socket.socket:
        with self._lock:
            if self._pid != os.getpid():
                # NOTE: a forked child has neither the parent's sockets nor the
                # threads of its resolver.
                self._idle, self._pid, self._resolver = {}, os.getpid(), None
            socks = self._idle.get(target.key) or []
            while socks:
                sock = socks.pop()
                if _alive(sock):
                    return sock
                sock.close()
        return self._connect(target, endpoint, deadline)

    def _checkin(self, target: _Target, sock: socket.socket) -> None:
        with self._lock:
            socks = self._idle.setdefault(target.key, [])
            if len(socks) < self.max_idle and self._pid == os.getpid():
                socks.append(sock)
                return
        sock.close()

    def _connect(
        self, target: _Target, endpoint: Endpoint, deadline: float
    ) -> socket.socket:
        wait = min(endpoint.connect_timeout, deadline - time.monotonic())
        connect_by = time.monotonic() + wait
        try:
            sock = _open(self._addresses(target, wait), connect_by)
        except TimeoutError:
            raise RemoteError(
                "timeout", f"no connection within {wait:.1f}s to {endpoint.safe_url}"
            ) from None
        except OSError as err:
            raise RemoteError(
                "refused", f"cannot connect to {endpoint.safe_url}: {err}"
            ) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not target.tls:
            return sock
        try:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            return self._context(target.cafile).wrap_socket(
                sock, server_hostname=target.host
            )
        except (OSError, ssl.SSLError) as err:
            sock.close()
            raise RemoteError(
                "refused", f"TLS with {endpoint.safe_url}: {err}"
            ) from None

    def _addresses(self, target: _Target, wait: float) -> list[Any]:
        """``getaddrinfo`` within ``wait`` seconds: a resolver that hangs holds
        one of a few helper threads, never the request's."""
        try:
            ipaddress.ip_address(target.host)
        except ValueError:
            pass
        else:  # NOTE: a literal address needs no lookup (and no thread)
            return socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        with self._lock:
            if self._resolver is None:
                self._resolver = concurrent.futures.ThreadPoolExecutor(
                    _RESOLVER_THREADS, thread_name_prefix="dialogd-resolve"
                )
            resolver = self._resolver
        lookup = resolver.submit(
            socket.getaddrinfo, target.host, target.port, type=socket.SOCK_STREAM
        )
        try:
            return lookup.result(timeout=max(0.0, wait))
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"no address for {target.host!r} in time") from None

    def _context(self, cafile: str | None) -> ssl.SSLContext:
        with self._lock:
            context = self._tls.get(cafile)
            if context is None:
                context = self._tls[cafile] = ssl.create_default_context(cafile=cafile)
            return context


def _open(addresses: list[Any], connect_by: float) -> socket.socket:
    """A connection to the first address that takes one before ``connect_by``
    (``socket.create_connection``'s loop, with a deadline for all of them)."""
    error: OSError = OSError("the host name has no address")
    for family, kind, proto, _, address in addresses:
        left = connect_by - time.monotonic()
        if left <= 0:
            raise TimeoutError("connect timeout")
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(left)
            sock.connect(address)
            return sock
        except OSError as err:
            sock.close()
            error = err
    raise error


def _alive(sock: socket.socket) -> bool:
    """An idle kept-alive connection is usable if nothing is waiting on it: data
    there is the server's close (or garbage), either way not ours to read."""
    poller = select.poll()
    poller.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
    return not poller.poll(0)


def _request_head(endpoint: Endpoint, target: _Target, length: int) -> bytes:
    parts = urlsplit(endpoint.url)
    path = parts.path or "/"
    query = parts.query
    if endpoint.token is not None:
        # NOTE: as Rasa's EndpointConfig: the token is a query parameter.
        token = f"{quote(endpoint.token_name)}={quote(endpoint.token, safe='')}"
        query = f"{query}&{token}" if query else token
    if query:
        path = f"{path}?{query}"
    default_port = 443 if target.tls else 80
    host = target.host if ":" not in target.host else f"[{target.host}]"
    if target.port != default_port:
        host = f"{host}:{target.port}"
    headers = {
        "Host": host,
        "User-Agent": _USER_AGENT,
        "Content-Type": "application/json",
        "Accept": "application/json",
        "Content-Length": str(length),
        **endpoint.headers,
    }
    if endpoint.basic_auth is not None:
        user, password = endpoint.basic_auth
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    lines = [f"POST {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


def _exchange(
    sock: socket.socket, request: bytes, deadline: float, endpoint: Endpoint
) -> tuple[Reply, bool]:
    """Send the request and read the whole answer within the deadline; the answer
    and whether the connection may be used again."""
    url = endpoint.safe_url
    limit = endpoint.max_response_bytes
    reader = _DeadlineReader(sock, deadline)
    try:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline")
        sock.settimeout(left)
        sock.sendall(request)
        response = http.client.HTTPResponse(
            _SocketShim(io.BufferedReader(reader, 65536)),  # type: ignore[arg-type]
            method="POST",
        )
        response.begin()
        if response.length is not None and response.length > limit:
            raise RemoteError(
                "too_large",
                f"{url} answered {response.length} bytes, over the {limit} allowed",
            )
        body = response.read(limit + 1)
        if len(body) > limit:
            raise RemoteError(
                "too_large", f"{url} answered more than the {limit} bytes allowed"
            )
    except TimeoutError:
        raise RemoteError(
            "timeout", f"no full answer from {url} within {endpoint.timeout:g}s"
        ) from None
    except (http.client.HTTPException, OSError, ValueError) as err:
        raise RemoteError("protocol", f"bad HTTP answer from {url}: {err!r}") from None
    keep = not response.will_close and response.isclosed()
    content_type = response.getheader("Content-Type") or ""
    return Reply(response.status, body, content_type), keep
