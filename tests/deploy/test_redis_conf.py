"""deploy/redis.conf (the compose Redis): persistence on, no eviction, and a real
redis-server accepts it (where one is installed)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import redis

from tests.data import ROOT

REDIS_CONF = ROOT / "deploy" / "redis.conf"


def settings(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition(" ")
            out.setdefault(name.lower(), []).append(value.strip())
    return out


def problems(text: str) -> list[str]:
    conf = settings(text)
    out = []
    if conf.get("appendonly") != ["yes"]:
        out.append("appendonly must be yes (AOF persistence)")
    if conf.get("appendfsync", ["everysec"])[-1] not in ("everysec", "always"):
        out.append("appendfsync must be everysec or always")
    if conf.get("maxmemory-policy") != ["noeviction"]:
        out.append("maxmemory-policy must be noeviction: never drop conversations")
    if "dir" in conf:
        out.append("no `dir`: the redis image's working directory is its /data volume")
    return out


def test_the_config_has_no_problems() -> None:
    assert problems(REDIS_CONF.read_text()) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("appendonly yes", "appendonly no", "appendonly"),
        ("appendfsync everysec", "appendfsync no", "appendfsync"),
        ("maxmemory-policy noeviction", "maxmemory-policy allkeys-lru", "noeviction"),
        ("appendonly yes", "appendonly yes\ndir /data", "`dir`"),
    ],
)
def test_the_checker_notices(old: str, new: str, expected: str) -> None:
    text = REDIS_CONF.read_text()
    assert old in text
    found = problems(text.replace(old, new))
    assert any(expected in p for p in found), found


@pytest.mark.e2e
def test_redis_server_accepts_it(redis_server: str, tmp_path: Path) -> None:
    socket_path = tmp_path / "redis.sock"
    process = subprocess.Popen(
        [
            redis_server,
            str(REDIS_CONF),
            "--port",
            "0",
            "--unixsocket",
            str(socket_path),
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while not socket_path.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"redis-server refused deploy/redis.conf:\n{output}")
            time.sleep(0.02)
        client = redis.Redis(unix_socket_path=str(socket_path))
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("maxmemory-policy")["maxmemory-policy"] == (
            "noeviction"
        )
        client.set("k", "v")
        client.close()
    finally:
        process.terminate()
        process.wait(timeout=10)
    # The AOF was written (Redis 7 keeps it in appendonlydir/, 6.2 in one file).
    assert list(tmp_path.glob("appendonly*")), "no AOF written"
