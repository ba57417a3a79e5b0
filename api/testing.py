"""Running dialogd for tests and benchmarks, in the spirit of ``falcon.testing``:
:class:`Server` starts a real ``dialogd serve`` (gunicorn, on a free port, with its
own embedded Redis or a given one), :class:`Client` plays the parse/continue loop
against it. Standard library only, so an installed ``dialogd`` has it too.

    with Server(Path("models/moodbot"), nlu=True, log_dir=Path("/tmp/logs")) as server:
        client = Client(server.url)
        actions = client.turn("alice", "hello", lambda action, reply: [])
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ACTION_LISTEN = "action_listen"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """One ``dialogd serve`` (``python -m api.server``) on a free port of 127.0.0.1.

    ``model`` holds ``core/`` (and ``nlu/`` with ``nlu=True``). Without
    ``redis_url`` the server starts its embedded Redis in ``data_dir`` (default: a
    folder beside the log). ``extra`` is more command-line flags."""

    def __init__(
        self,
        model: Path,
        redis_url: str | None = None,
        prefix: str = "",
        log_dir: Path | None = None,
        *,
        nlu: bool = False,
        workers: int = 2,
        data_dir: Path | None = None,
        extra: Sequence[str] = (),
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        log_dir = Path(log_dir or tempfile.mkdtemp(prefix="dialogd-"))
        self.log_file = log_dir / f"server-{self.port}.log"
        cmd = [
            sys.executable,
            "-m",
            "api.server",
            "-d",
            str(model / "core"),
            "-p",
            str(self.port),
            "--host",
            "127.0.0.1",
            "--workers",
            str(workers),
            "--key-prefix",
            prefix,
            "-o",
            str(self.log_file),
        ]
        if redis_url is not None:
            cmd += ["--redis-url", redis_url]
        elif "--data-dir" not in extra:
            cmd += ["--data-dir", str(data_dir or log_dir / f"redis-{self.port}")]
        if nlu:
            cmd += ["-u", str(model / "nlu")]
        self.cmd = [*cmd, *extra]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0, poll_interval: float = 0.1) -> Server:
        """Start it and wait until ``/status`` answers 200."""
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/status", timeout=1) as reply:
                    if reply.status == 200:
                        return self
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(poll_interval)
        self.stop()
        raise RuntimeError(f"server did not become ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_file.read_text() if self.log_file.exists() else "(no log)"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        """Stop it with ``sig`` (SIGKILL after ``timeout``); its exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class HTTPError(Exception):
    """The server answered an error status."""

    def __init__(self, status: int, body: bytes):
        super().__init__(f"HTTP {status}: {body[:200]!r}")
        self.status = status
        self.body = body


#: The client's own code for one action: given the action's name and the server's
#: reply that asked for it, it runs the action and returns the events to report.
RunAction = Callable[[str, dict[str, Any]], list[dict[str, Any]]]


class Client:
    """A client of the parse/continue loop on one kept-alive connection (not
    thread-safe: one per thread)."""

    def __init__(self, url: str, timeout: float = 30.0):
        parts = urlsplit(url)
        self.url = url.rstrip("/")
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.timeout = timeout
        self._connection: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """The JSON the server answers; :class:`HTTPError` for a status >= 400."""
        if self._connection is None:
            self._connection = http.client.HTTPConnection(
                self.host, self.port, timeout=self.timeout
            )
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        try:
            self._connection.request(method, path, body=data, headers=headers)
            reply = self._connection.getresponse()
            payload = reply.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if reply.will_close:
            self.close()
        if reply.status >= 400:
            raise HTTPError(reply.status, payload)
        return json.loads(payload) if payload else None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def parse(self, cid: str, message: str) -> dict[str, Any]:
        reply: dict[str, Any] = self.post(
            f"/conversations/{cid}/parse", {"query": message}
        )
        return reply

    def follow(
        self, cid: str, reply: dict[str, Any], run: RunAction, max_actions: int = 10
    ) -> list[str]:
        """Run each action the server asks for and report it with ``/continue``,
        until it listens (or pauses), at most ``max_actions``; the actions run."""
        actions: list[str] = []
        while reply.get("next_action") not in (None, ACTION_LISTEN):
            if len(actions) >= max_actions:
                break  # the bot is looping
            action = reply["next_action"]
            actions.append(action)
            events = run(action, reply)
            reply = self.post(
                f"/conversations/{cid}/continue",
                {"executed_action": action, "events": events},
            )
        return actions

    def turn(
        self, cid: str, message: str, run: RunAction, max_actions: int = 10
    ) -> list[str]:
        """One user message and the bot's actions after it."""
        return self.follow(cid, self.parse(cid, message), run, max_actions)
