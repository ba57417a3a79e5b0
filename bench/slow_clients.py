"""A normal client's latency while hundreds of slow clients hold connections.

``SlowClients`` keeps ``n`` sockets open to a server on 127.0.0.1: a third send
nothing, a third send a request head a byte at a time, a third send a whole head and
then its body a byte at a time; a socket the server closes is opened again at once.
The bench measures one normal client's ``/parse`` latency (p50, p99, failures)
against ``dialogd serve`` (2 workers, embedded Redis), first alone, then under the
attack:

    python -m bench.slow_clients [--sockets 200] [--requests 300] [--pause 0.05]
        [--timeout 5]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import selectors
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from api.testing import Client
from api.testing import Server
from bench.turn_latency import moodbot_model
from bench.turn_latency import percentile

HEAD = (
    b"POST /conversations/slow/parse HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Type: application/json\r\nX-Slow: " + b"a" * 4000 + b"\r\n\r\n"
)
BODY_HEAD = (
    b"POST /conversations/slow/parse HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n"
)


class SlowClients:
    """``n`` slow sockets to ``port``, kept open (reopened when closed) and fed one
    byte each every ``interval`` seconds until ``stop()``; ``seconds`` bounds the
    whole attack."""

    def __init__(
        self, port: int, n: int = 200, interval: float = 0.5, seconds: float = 120.0
    ):
        self.port, self.n, self.interval, self.seconds = port, n, interval, seconds
        self.opened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._selector = selectors.DefaultSelector()
        self._socks: dict[socket.socket, list[int | bytes]] = {}

    def _open(self, kind: int) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.setblocking(False)
        if kind == 2:
            sock.send(BODY_HEAD)
        # what is still to send: nothing, a head, or a body
        rest = {0: b"", 1: HEAD, 2: b'{"query": "' + b"a" * 3980 + b'"}'}[kind]
        self._socks[sock] = [kind, rest]
        self._selector.register(sock, selectors.EVENT_READ)
        self.opened += 1

    def _close(self, sock: socket.socket) -> int:
        kind = self._socks.pop(sock)[0]
        self._selector.unregister(sock)
        sock.close()
        return int(kind)

    def __enter__(self) -> SlowClients:
        for i in range(self.n):
            self._open(i % 3)
        self._thread.start()
        return self

    def _run(self) -> None:
        end = time.monotonic() + self.seconds
        while not self._stop.is_set() and time.monotonic() < end:
            # closed (or answered) by the server: the attacker comes back
            for key, _ in self._selector.select(0):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                with contextlib.suppress(OSError):
                    if sock.recv(4096):
                        continue  # an answer; the socket may stay open
                with contextlib.suppress(OSError):
                    self._open(self._close(sock))
            for sock, state in list(self._socks.items()):
                rest = state[1]
                assert isinstance(rest, bytes)
                if rest:
                    try:
                        sock.send(rest[:1])
                        state[1] = rest[1:]
                    except OSError:
                        with contextlib.suppress(OSError):
                            self._open(self._close(sock))
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        for sock in list(self._socks):
            self._close(sock)

    def __exit__(self, *exc: object) -> None:
        self.stop()


def normal_client(
    url: str, requests: int, timeout: float, pause: float = 0.0, max_failures: int = 5
) -> dict[str, float]:
    """``requests`` turns of one client, one after the other: latency and failures
    (an error or no answer within ``timeout`` seconds); it gives up after
    ``max_failures``. ``pause`` seconds between two requests make the run last
    longer than the server's request timeout (reconnecting slow clients)."""
    client = Client(url, timeout=timeout)
    timings: list[float] = []
    failures = 0
    for i in range(requests):
        start = time.perf_counter()
        try:
            client.parse(f"normal-{i % 20}", "/greet")
            timings.append((time.perf_counter() - start) * 1000)
        except Exception:
            failures += 1
            client.close()
            if failures >= max_failures:
                break
        time.sleep(pause)
    return {
        "requests": len(timings) + failures,
        "failures": failures,
        "p50_ms": round(statistics.median(timings), 2) if timings else -1,
        "p99_ms": round(percentile(timings, 0.99), 2) if timings else -1,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=200)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--pause", type=float, default=0.05)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with Server(moodbot_model(work), log_dir=work, workers=args.workers) as server:
            normal_client(server.url, 50, args.timeout)  # warm up
            alone = normal_client(server.url, args.requests, args.timeout, args.pause)
            with SlowClients(server.port, args.sockets) as attack:
                time.sleep(1)  # every slow socket connected and sending
                attacked = normal_client(
                    server.url, args.requests, args.timeout, args.pause
                )
            report = {
                "workers": args.workers,
                "slow_sockets": args.sockets,
                "alone": alone,
                "under_attack": {**attacked, "slow_connections_opened": attack.opened},
            }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
