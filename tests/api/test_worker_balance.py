"""Every worker takes its share (issue 18): the board the workers publish on, and
for real, gunicorn with our settings and a stand-in app, where held connections
are dealt out over the workers and a connection is closed after its last request."""

from __future__ import annotations

import http.client
import logging
import os
import re
import selectors
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest
from gunicorn.config import Config
from gunicorn.workers.gthread import TConn

from api.serving import balance
from api.serving.balance import Board
from api.serving.balance import child_exit
from api.serving.balance import pre_fork
from api.serving.settings import gunicorn_settings
from api.serving.worker import DrainingThreadWorker
from api.testing import free_port


def test_a_worker_sees_the_fewest_requests_a_live_peer_holds() -> None:
    board = Board(slots=4)
    assert board.give(set()) == 0
    assert board.give({0}) == 1
    assert board.give({0, 1}) == 2
    assert board.least_held(0) is None  # given, but not yet looping
    board.publish(0, 100, held=3)
    board.publish(1, 101, held=5)
    board.publish(2, 102, held=4)
    assert board.least_held(0) == 4
    assert board.least_held(2) == 3
    board.leave(0)  # stopping: it no longer takes connections
    assert board.least_held(2) == 5
    assert board.least_held(1) == 4


def test_a_stuck_peer_is_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that stopped looping (stuck, SIGSTOPped) with few requests must not
    keep its peers from accepting for longer than STALE_MS."""
    board = Board(slots=2)
    now = [1_000_000]
    monkeypatch.setattr(balance, "_now_ms", lambda: now[0])
    board.give(set())
    board.give({0})
    board.publish(0, 100, held=0)
    board.publish(1, 101, held=2)
    assert board.least_held(1) == 0
    now[0] += balance.STALE_MS - 1
    board.publish(1, 101, held=2)
    assert board.least_held(1) == 0
    now[0] += 2
    assert board.least_held(1) is None


def test_the_master_gives_each_worker_a_free_slot() -> None:
    server = SimpleNamespace(WORKERS={})
    workers = []
    for pid in (11, 12, 13):
        worker = SimpleNamespace()
        pre_fork(server, worker)
        server.WORKERS[pid] = worker
        workers.append(worker)
    assert [w.slot for w in workers] == [0, 1, 2]
    board = balance.board()
    board.publish(1, 12, held=0)
    assert board.least_held(0) == 0
    del server.WORKERS[12]  # reaped: gunicorn pops it, then calls child_exit
    child_exit(server, workers[1])
    assert board.least_held(0) is None
    again = SimpleNamespace()
    pre_fork(server, again)
    assert again.slot == 1


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DIALOGD_KEEPALIVE_REQUESTS", "-1"),
        ("DIALOGD_KEEPALIVE_REQUESTS", "many"),
        ("DIALOGD_BALANCE", "yes"),
    ],
)
def test_a_bad_knob_fails_at_start(name: str, value: str) -> None:
    with pytest.raises(ValueError):
        gunicorn_settings({name: value})


def test_knob_defaults() -> None:
    assert balance.keepalive_requests({}) == 1000
    assert balance.keepalive_requests({"DIALOGD_KEEPALIVE_REQUESTS": "0"}) == 0
    assert balance.enabled({}) is True
    assert balance.enabled({"DIALOGD_BALANCE": "OFF"}) is False


def test_a_closed_connection_lingers_without_blocking_the_loop() -> None:
    """Every connection that reached its last request is closed; gunicorn's own
    close waits in the worker's loop for the client to close its end (2 s at most),
    and no other client of the worker is served meanwhile."""
    worker = DrainingThreadWorker(
        1, os.getpid(), [], None, 30, Config(), logging.getLogger("test")
    )
    worker.poller = selectors.DefaultSelector()
    ours, theirs = socket.socketpair()
    conn = TConn(worker.cfg, ours, ("127.0.0.1", 1), ("127.0.0.1", 2))
    worker.nr_conns = 1
    done: Future[bool] = Future()
    done.set_result(False)  # the connection ends (Connection: close was sent)
    try:
        worker.finish_request(conn, done)
        assert worker.nr_conns == 0
        assert conn.sock.fileno() != -1, "closed at once: the loop waited"
        theirs.settimeout(5)
        assert theirs.recv(16) == b""  # our end is closed: the client sees it
        theirs.sendall(b"late bytes")  # read and dropped, no reset
        for _ in range(3):
            worker.wait_for_and_dispatch_events(0.01)
        assert conn.sock.fileno() != -1 and list(worker.lingering) == [conn]
        theirs.close()
        for _ in range(100):
            if not worker.lingering:
                break
            worker.wait_for_and_dispatch_events(0.05)
        assert not worker.lingering and conn.sock.fileno() == -1
    finally:
        theirs.close()
        worker.poller.close()
        worker.tmp.close()


# --- for real ------------------------------------------------------------------------

APP = """
import os
import time

RELEASE = os.environ["RELEASE_FILE"]


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    if environ["PATH_INFO"] != "/hold":
        return [b"%d\\n" % os.getpid()]

    def held():
        yield b"%d\\n" % os.getpid()  # sent at once (chunked): the client knows who
        deadline = time.monotonic() + 60
        while not os.path.exists(RELEASE) and time.monotonic() < deadline:
            time.sleep(0.01)
        yield b"done\\n"

    return held()
"""


CONF = """
import os
from pathlib import Path

from api.serving.settings import gunicorn_settings
from api.serving.worker import DrainingThreadWorker

globals().update(gunicorn_settings())


def post_worker_init(worker):
    # Deferred to the worker's loop: it has published on the board by then.
    ready = Path(os.environ["READY_DIR"], str(worker.pid))
    worker.method_queue.defer(ready.touch)
"""


@contextmanager
def _gunicorn(tmp_path: Path, workers: int, **env: str) -> Iterator[int]:
    """gunicorn with our settings on a free port, once every worker loops."""
    (tmp_path / "standin.py").write_text(APP)
    conf = tmp_path / "conf.py"
    conf.write_text(CONF)
    ready = tmp_path / "ready"
    ready.mkdir()
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DIALOGD_")}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(conf),
            "--chdir",
            str(tmp_path),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "standin:app",
        ],
        env={
            **clean,
            "RELEASE_FILE": str(tmp_path / "release"),
            "READY_DIR": str(ready),
            **env,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while len(list(ready.iterdir())) < workers:
            assert server.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        yield port
    finally:
        (tmp_path / "release").touch()
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _hold(port: int) -> tuple[socket.socket, int]:
    """A connection whose request a worker holds; the pid of that worker."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET /hold HTTP/1.1\r\nHost: test\r\n\r\n")
    data = b""
    while (found := re.search(rb"\r\n\r\n[0-9a-fA-F]+\r\n(\d+)\n", data)) is None:
        chunk = sock.recv(4096)
        assert chunk, f"closed before the first chunk: {data!r}"
        data += chunk
    return sock, int(found[1])


@pytest.mark.e2e
def test_connections_opened_one_by_one_are_dealt_out_to_every_worker(
    tmp_path: Path,
) -> None:
    """Each worker holds one request before any holds a second: the stock worker
    lets whichever is awake take the next connection (so all 6 could go to one)."""
    served = []
    sockets = []
    with _gunicorn(tmp_path, workers=3, DIALOGD_THREADS="2") as port:
        try:
            for _ in range(6):
                sock, pid = _hold(port)
                sockets.append(sock)
                served.append(pid)
        finally:
            for sock in sockets:
                sock.close()
    counts = Counter(served)
    assert len(counts) == 3 and set(counts.values()) == {2}, served
    for n in range(0, 6, 3):
        assert len(set(served[n : n + 3])) == 3, served


@pytest.mark.e2e
def test_a_connection_is_closed_after_its_last_request(tmp_path: Path) -> None:
    with _gunicorn(tmp_path, workers=1, DIALOGD_KEEPALIVE_REQUESTS="3") as port:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            said = []
            for _ in range(3):
                connection.request("GET", "/")
                reply = connection.getresponse()
                reply.read()
                said.append(reply.getheader("Connection"))
            assert said[:2] == ["keep-alive", "keep-alive"]
            assert said[2] == "close"
            assert connection.sock is None  # http.client closed it, as told
        finally:
            connection.close()
