"""Local servers for the action tests: a scripted JSON server (the test decides
each answer, and sees each request) and a raw socket server for the misbehaving
ones (silence, trickles, garbage)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import Any

from api.testing import free_port
from tests.data import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "actions"
Answer = tuple[int, Any]


class JsonServer:
    """``answer(path, body)`` returns (status, JSON value or raw bytes); requests
    are kept in ``requests`` and each new connection counted in ``connections``."""

    def __init__(
        self,
        answer: Callable[[str, Any], Answer],
        tls: ssl.SSLContext | None = None,
    ):
        self.requests: list[dict[str, Any]] = []
        self.connections = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                server.connections += 1
                super().setup()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                server.requests.append(
                    {"path": self.path, "body": body, "headers": dict(self.headers)}
                )
                status, value = answer(self.path, body)
                raw = value if isinstance(value, bytes) else json.dumps(value).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        scheme = "http"
        if tls is not None:  # an https server (``tls`` holds its certificate)
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_port}/webhook"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, args=(0.05,), daemon=True
        )

    def __enter__(self) -> JsonServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class RawServer:
    """Each connection is handed to ``behave(conn, stop)``; ``stop`` is set when
    the test ends, so a server that 'hangs' returns then."""

    def __init__(self, behave: Callable[[socket.socket, threading.Event], None]):
        self.behave = behave
        self.stop = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/webhook"
        self.threads: list[threading.Thread] = []
        self.conns: list[socket.socket] = []

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            # NOTE: counted before it runs: its answer may reach the test first
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            self.behave(conn, self.stop)

    def __enter__(self) -> RawServer:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.sock.close()
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self.threads:
            thread.join(5)


def read_request(conn: socket.socket) -> bytes:
    """The request's head and body (by its Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


class ActionServer:
    """A real action server on a free port: ``rasa_sdk`` (``python -m rasa_sdk
    --actions MODULE``, tests/fixtures/actions by default) or ``node``
    (tests/fixtures/actions/server.js, Node's standard library only); ``env`` is
    added to the server's environment."""

    def __init__(
        self,
        kind: str,
        module: str = "tests.fixtures.actions.actions",
        env: dict[str, str] | None = None,
    ):
        self.kind = kind
        self.module = module
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/webhook"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ActionServer:
        if self.kind == "node":
            command = ["node", str(FIXTURES / "server.js"), str(self.port)]
        else:
            command = [sys.executable, "-m", "rasa_sdk", "--actions", self.module]
            command += ["--port", str(self.port)]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            self._wait()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.kind} action server not ready after 60s")

    def __exit__(self, *exc: Any) -> None:
        """The server and what it started (its own process group, by its id)."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
