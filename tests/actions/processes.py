"""Real action servers in their own processes: rasa_sdk's (``python -m rasa_sdk
--actions MODULE``) and the Node.js one of tests/fixtures/actions/server.js."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping

from api.testing import free_port
from tests.data import ROOT


class ActionServer:
    """``with ActionServer("rasa_sdk", module) as server: server.url``."""

    def __init__(
        self,
        kind: str,
        module: str = "tests.fixtures.actions.actions",
        env: Mapping[str, str] | None = None,
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/webhook"
        if kind == "rasa_sdk":
            command = [sys.executable, "-m", "rasa_sdk", "--actions", module]
            command += ["--port", str(self.port)]
        elif kind == "node":
            script = ROOT / "tests" / "fixtures" / "actions" / "server.js"
            command = ["node", str(script), str(self.port)]
        else:
            raise ValueError(f"unknown action server {kind!r}")
        self.command = command
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> ActionServer:
        self.process = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"action server exited: {self.process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"action server not ready after {timeout:g} s")

    def stop(self) -> None:
        """The server and what it started (its own process group)."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def __enter__(self) -> ActionServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
