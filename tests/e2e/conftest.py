"""Real servers for end-to-end tests: models trained by ``dialogd train``, served by
gunicorn (``python -m api.server``, 2 workers each), sharing the session's Redis."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from api.cli import main as dialogd
from tests.data import RASA_EXAMPLES
from tests.data import ROOT

FIXTURES = RASA_EXAMPLES / "server_test_fixtures"
MOODBOT = ROOT / "examples" / "moodbot"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One ``python -m api.server`` instance on a free port; without a Redis URL it
    starts the embedded Redis (give ``--data-dir`` in ``extra``)."""

    def __init__(
        self,
        model: Path,
        redis_url: str | None,
        prefix: str,
        log_dir: Path,
        *,
        nlu: bool = False,
        workers: int = 2,
        extra: tuple = (),
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
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
            *extra,
        ]
        if redis_url is not None:
            cmd += ["--redis-url", redis_url]
        if nlu:
            cmd += ["-u", str(model / "nlu")]
        self.cmd = cmd
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0, poll_interval: float = 0.1) -> Server:
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if requests.get(self.url + "/status", timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(poll_interval)
        raise RuntimeError(f"server did not become ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_file.read_text() if self.log_file.exists() else "(no log)"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait()


def train(
    out: Path, domain: Path, stories: Path, config: str, nlu: Path | None = None
) -> Path:
    config_file = out / "config.yml"
    config_file.write_text(config)
    args = [
        "train",
        "--domain",
        str(domain),
        "--stories",
        str(stories),
        "--config",
        str(config_file),
        "--out",
        str(out),
    ]
    if nlu is not None:
        args += ["--nlu", str(nlu)]
    assert dialogd(args) == 0
    return out


AUGMENTED_MEMO = """
policies:
  - name: AugmentedMemoizationPolicy
    max_history: 3
"""


@pytest.fixture(scope="session")
def fixture_model(tmp_path_factory) -> Path:
    """The original server tests' model: default.yml, its stories, augmented memo."""
    return train(
        tmp_path_factory.mktemp("fixture-model"),
        FIXTURES / "default.yml",
        FIXTURES / "stories_defaultdomain.md",
        AUGMENTED_MEMO,
    )


@pytest.fixture(scope="session")
def slots_model(tmp_path_factory) -> Path:
    """The 'default agent' of the remote-client tests: default_with_slots.yml."""
    config = "policies:\n  - name: MemoizationPolicy\n    max_history: 3\n"
    return train(
        tmp_path_factory.mktemp("slots-model"),
        FIXTURES / "default_with_slots.yml",
        FIXTURES / "stories_defaultdomain.md",
        config,
    )


@pytest.fixture(scope="session")
def moodbot_model(tmp_path_factory) -> Path:
    return train(
        tmp_path_factory.mktemp("moodbot-model"),
        MOODBOT / "domain.yml",
        MOODBOT / "data" / "stories.md",
        (MOODBOT / "config.yml").read_text(),
        nlu=MOODBOT / "data" / "nlu.md",
    )


@pytest.fixture(scope="session")
def session_prefix() -> str:
    return f"e2e:{uuid.uuid4().hex[:8]}:"


def _servers(
    model: Path, redis_url: str, prefix: str, log_dir: Path, n: int, **kwargs
) -> Iterator[list[Server]]:
    servers = [Server(model, redis_url, prefix, log_dir, **kwargs) for _ in range(n)]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="session")
def pair(fixture_model, redis_url, session_prefix, tmp_path_factory) -> Iterator:
    """Two instances of the fixture model on one Redis: any request may go to either."""
    yield from _servers(
        fixture_model, redis_url, session_prefix, tmp_path_factory.mktemp("logs"), 2
    )


@pytest.fixture(scope="session")
def slots_server(slots_model, redis_url, tmp_path_factory) -> Iterator:
    yield from _servers(
        slots_model,
        redis_url,
        f"slots:{uuid.uuid4().hex[:8]}:",
        tmp_path_factory.mktemp("logs"),
        1,
    )


@pytest.fixture(scope="session")
def moodbot_server(moodbot_model, redis_url, tmp_path_factory) -> Iterator:
    yield from _servers(
        moodbot_model,
        redis_url,
        f"mood:{uuid.uuid4().hex[:8]}:",
        tmp_path_factory.mktemp("logs"),
        1,
        nlu=True,
    )
