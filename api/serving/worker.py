"""dialogd's gunicorn worker: gthread, with two changes that a server facing the
internet needs.

**Reads before it serves.** The stock gthread worker gives a connection to a thread
as soon as it is accepted (gunicorn 27 waits up to 5 s for a first byte, in the
thread), and the thread then reads the request with blocking calls and no deadline.
A few hundred sockets that send nothing, or send their headers or body a byte at a
time, hold every thread, and every other client waits. This worker reads each
request in its event loop, without blocking, and hands the connection to the pool
only when the whole request (head and body) is in memory; a client that has not sent
a complete request ``DIALOGD_REQUEST_TIMEOUT`` seconds (10) after connecting, or
after its kept-alive connection became readable, is disconnected. What it buffers is
bounded: a head of 64 KiB, a body of 1 MiB (a larger Content-Length is handed over
at once: the app refuses it from the header alone, ``--max-body``); a larger head or
chunked body closes the connection.

**Drains on SIGTERM.** The stock worker only stops *accepting* and keeps its
listening socket open until it exits, so the kernel goes on completing connections
into the backlog during the whole graceful shutdown; nobody accepts them, and when
the worker exits they are reset, after the load balancer has already sent a request
on them. nginx cannot resend such a request if it is a POST: the client gets a 502
although the request never reached dialogd. Closing the listening socket at once
(the master has closed its copy already) makes new connections fail to connect
instead, which nginx retries on another instance for every method. In-flight
requests, and requests on kept-alive connections, are still served as before. Only
this process's file descriptor is closed: on SIGHUP or TTOU, where the master stops
some workers and keeps serving, the others keep the socket open.

**Takes its share.** The stock worker accepts whenever it can, and keeps what it
accepted: the worker that is awake when a burst of keep-alive connections arrives
takes them all, and does all the work while its peers idle. This worker stops
accepting while it holds more requests than a peer (:mod:`api.serving.balance`), and
closes a connection after ``DIALOGD_KEEPALIVE_REQUESTS`` requests (1000), saying so
in that answer (``Connection: close``), so connections that went to one worker move.

TLS (gunicorn's ``certfile``) and HTTP/2 prior knowledge are served as the stock
worker serves them: this worker reads plain HTTP/1 only.
"""

from __future__ import annotations

import errno
import os
import re
import selectors
import socket
import time
from collections import deque
from collections.abc import Mapping
from functools import partial
from typing import Any
from typing import Literal

from gunicorn import util
from gunicorn.http2 import negotiation
from gunicorn.workers.gthread import TConn
from gunicorn.workers.gthread import ThreadWorker

from api.http_errors import JsonErrors
from api.serving import balance

#: The largest request head (request line and headers) read before serving.
HEAD_LIMIT = 64 * 1024
#: The largest body read before serving; dialogd's default --max-body.
BODY_LIMIT = 1024 * 1024
_CHUNK = 64 * 1024
#: How often a worker that leaves the listening socket to its peers looks again.
GATED_POLL = 0.02
#: How long a closed connection is drained for the client's end (gunicorn's own).
LINGER = 2.0
_LINGER_BYTES = 64 * 1024

_LENGTH = re.compile(
    rb"\r\ncontent-length[ \t]*:[ \t]*(\d{1,18})[ \t]*(?:\r\n|$)", re.I
)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding[ \t]*:[^\r\n]*chunked", re.I)

State = Literal["more", "ready", "too large"]


def request_timeout(environ: Mapping[str, str] = os.environ) -> float:
    """Seconds a client has to send a whole request (``DIALOGD_REQUEST_TIMEOUT``)."""
    value = environ.get("DIALOGD_REQUEST_TIMEOUT", "").strip()
    seconds = float(value) if value else 10.0
    if not seconds > 0:
        raise ValueError(f"DIALOGD_REQUEST_TIMEOUT must be above 0, not {value!r}")
    return seconds


def request_state(data: bytes | bytearray) -> State:
    """Whether ``data``, the bytes a connection has sent so far, hold a whole HTTP/1
    request ("ready"), not yet ("more"), or more than is buffered ("too large").
    A malformed request is "ready": gunicorn's parser answers it."""
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        return "more" if len(data) <= HEAD_LIMIT else "too large"
    if head_end > HEAD_LIMIT:
        return "too large"
    head = bytes(data[:head_end])
    body = head_end + 4
    if _CHUNKED.search(head):
        return _chunked_state(data, body)
    length = _LENGTH.search(head)
    if length is None or int(length[1]) > BODY_LIMIT:
        return "ready"  # no body, or one the app refuses from its length alone
    return "ready" if len(data) - body >= int(length[1]) else "more"


def _chunked_state(data: bytes | bytearray, pos: int) -> State:
    # NOTE: a chunked body past the limit is served: the app has more than it reads
    # at hand and answers 413 without waiting for the rest (a declared length past
    # the limit is served the same way).
    more: State = "more" if len(data) - pos <= BODY_LIMIT else "ready"
    while True:
        line_end = data.find(b"\r\n", pos)
        if line_end < 0:
            return more
        size_text = bytes(data[pos:line_end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16) if len(size_text) <= 16 else -1
        except ValueError:
            size = -1
        if size < 0:
            return "ready"
        if size == 0:  # the last chunk, then trailers (if any) and an empty line
            return "ready" if data.find(b"\r\n\r\n", line_end) >= 0 else more
        pos = line_end + 2 + size + 2
        if pos > len(data):
            return more


class DrainingThreadWorker(JsonErrors, ThreadWorker):
    """gthread that reads a whole request before a thread serves it, takes no more
    than its share of the connections, and stops listening as soon as SIGTERM
    arrives (the module's docstring says why); what gunicorn refuses itself is
    answered in JSON (``api.http_errors``)."""

    #: This worker's row of the board, set by :func:`api.serving.balance.pre_fork`
    #: (None: accept without looking at the peers).
    slot: int | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request_timeout = request_timeout()
        self.keepalive_requests = balance.keepalive_requests()
        self.balanced = balance.enabled()
        #: Connections whose request is being read, oldest deadline first.
        self.reading: deque[TConn] = deque()
        #: Connections closed on our side, waiting for the client's end.
        self.lingering: deque[TConn] = deque()

    def init_process(self) -> None:
        # `ps` tells the workers from the master, and says which worker they are.
        util._setproctitle(f"worker [{self.cfg.proc_name}] {type(self).__name__}")
        super().init_process()

    # --- taking a share of the connections ------------------------------------------

    def held(self) -> int:
        """Requests this worker holds: being read, queued or served."""
        return int(self.nr_conns - len(self.keepalived_conns))

    def _my_turn(self) -> bool:
        """Whether to accept: no live peer holds fewer requests than this worker."""
        if self.slot is None or not self.balanced:
            return True
        least = balance.board().least_held(self.slot)
        return least is None or self.held() <= least

    def notify(self) -> None:
        """Once a loop: the heartbeat, what this worker holds, and whether it is
        its turn to accept."""
        super().notify()
        if self.slot is not None and self.alive:
            balance.board().publish(self.slot, self.pid, self.held())
            if self._accepting and not self._my_turn():
                super().set_accept_enabled(False)

    def set_accept_enabled(self, enabled: bool) -> None:
        super().set_accept_enabled(enabled and self._my_turn())

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        # NOTE: a worker that left the socket to a peer must look again soon, not
        # in a second: the peer may meanwhile hold more and leave it too.
        if self.alive and not self._accepting:
            timeout = min(timeout, GATED_POLL)
        super().wait_for_and_dispatch_events(timeout)

    def handle_request(self, req: Any, conn: TConn) -> Any:
        """The last request a connection may make is answered with
        ``Connection: close``: its client connects again, to the worker whose turn
        it is."""
        if self.keepalive_requests:
            conn.served = getattr(conn, "served", 0) + 1
            if conn.served >= self.keepalive_requests:
                req.must_close = True
        return super().handle_request(req, conn)

    # --- draining --------------------------------------------------------------------

    def handle_exit(self, sig: int, frame: Any) -> None:
        was_alive = self.alive
        super().handle_exit(sig, frame)
        if was_alive:
            # Not in the signal handler: in the main loop, between two events.
            self.method_queue.defer(self._stop_listening)

    def _stop_listening(self) -> None:
        if self.slot is not None:
            balance.board().leave(self.slot)
        self.set_accept_enabled(False)
        for listener in self.sockets:
            listener.close()

    # --- reading before serving ------------------------------------------------------

    def accept(self, listener: Any) -> None:
        # A listener closed above may still be in the batch of ready events.
        if getattr(listener, "sock", True) is None:
            return
        if self.cfg.is_ssl:
            super().accept(listener)
            return
        try:
            client_sock, client_addr = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = TConn(self.cfg, client_sock, client_addr, listener.getsockname())
        if negotiation.prior_knowledge_allowed(self.cfg, client_addr):
            self.enqueue_req(conn)
        else:
            self._read(conn)

    def on_client_socket_readable(self, conn: TConn, client: Any) -> None:
        """A kept-alive connection has a next request coming: read it first."""
        if self.cfg.is_ssl or conn.is_http2:
            super().on_client_socket_readable(conn, client)
            return
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._read(conn)
        self._on_readable(conn, client)

    def _read(self, conn: TConn) -> None:
        conn.preread = bytearray()
        conn.timeout = time.monotonic() + self.request_timeout
        self.reading.append(conn)
        self.poller.register(
            conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn)
        )

    def _on_readable(self, conn: TConn, client: Any) -> None:
        try:
            chunk = conn.sock.recv(_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        conn.preread += chunk
        state = request_state(conn.preread) if chunk else "too large"
        if state == "more":
            return
        self.poller.unregister(conn.sock)
        self.reading.remove(conn)
        if state == "ready":
            conn.data_ready = True
            self.enqueue_req(conn)
        else:  # closed by the client, or more than we read before serving
            self.nr_conns -= 1
            conn.close()

    def handle(self, conn: TConn) -> Any:
        """In a thread: the parser reads the request from what the loop read."""
        data = getattr(conn, "preread", None)
        if data:
            conn.preread = None
            conn.sock.setblocking(True)
            conn.init()
            conn.parser.unreader.unread(bytes(data))
        return super().handle(conn)

    def murder_keepalived(self, force: bool = False) -> None:
        """Also closes the connections that did not send a request in time, and
        those that lingered long enough."""
        super().murder_keepalived(force)
        now = time.monotonic()
        while self.reading and (force or self.reading[0].timeout <= now):
            conn = self.reading.popleft()
            self.poller.unregister(conn.sock)
            self.nr_conns -= 1
            conn.close()
        while self.lingering and (force or self.lingering[0].timeout <= now):
            conn = self.lingering.popleft()
            self.poller.unregister(conn.sock)
            conn.close()

    # --- closing without blocking the loop -------------------------------------------

    def finish_request(self, conn: TConn, fs: Any) -> None:
        """A connection that ends is closed as gunicorn closes it (RFC 9112 9.6:
        our end first, then what the client still sends is read until it closes,
        so no reset cuts off the last answer), but in the loop, not by blocking
        it: gunicorn waits there for the client, up to 2 s, and the whole worker
        with it. Every connection that reaches its last request ends here."""
        if fs.cancelled() or fs.exception() is not None or fs.result():
            super().finish_request(conn, fs)
            return
        self.nr_conns -= 1
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            conn.close()
            return
        conn.sock.setblocking(False)
        conn.timeout = time.monotonic() + LINGER
        conn.drained = 0
        self.lingering.append(conn)
        self.poller.register(
            conn.sock, selectors.EVENT_READ, partial(self._on_lingering, conn)
        )

    def _on_lingering(self, conn: TConn, client: Any) -> None:
        try:
            chunk = conn.sock.recv(_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        conn.drained += len(chunk)
        if chunk and conn.drained < _LINGER_BYTES:
            return
        self.poller.unregister(conn.sock)
        self.lingering.remove(conn)
        conn.close()
