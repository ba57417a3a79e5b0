"""``dialogd events tail`` against a real Redis."""

from __future__ import annotations

import json
import threading

import pytest

from api.cli import main
from trackerstore import RedisStore
from trackerstore.stream import StreamConfig


def user(text: str) -> dict:
    return {"event": "user", "timestamp": 1.0, "text": text}


def tail(capsysbinary, *args: str) -> list[dict]:
    assert main(["events", "tail", *args]) == 0
    return [json.loads(line) for line in capsysbinary.readouterr().out.splitlines()]


@pytest.fixture
def written(redis_url: str, key_prefix: str) -> RedisStore:
    store = RedisStore(redis_url, prefix=key_prefix, stream=StreamConfig())
    store.append("ada", [user("a"), user("b")], 0, {})
    return store


def test_tail_prints_every_entry_oldest_first(
    written, redis_url, key_prefix, capsysbinary
) -> None:
    base = ["--redis-url", redis_url, "--key-prefix", key_prefix]
    lines = tail(capsysbinary, *base)
    assert [(e["type"], e.get("seq")) for e in lines] == [
        ("reset", None),
        ("event", 0),
        ("event", 1),
    ]
    assert lines[2]["event"] == {"sender_id": "ada", **user("b")}
    after_first = tail(capsysbinary, *base, "--from", lines[0]["id"])
    assert after_first == lines[1:]
    assert tail(capsysbinary, *base, "-n", "1") == lines[:1]


def test_follow_waits_for_new_entries(
    written, redis_url, key_prefix, capsysbinary
) -> None:
    base = ["--redis-url", redis_url, "--key-prefix", key_prefix]
    last = tail(capsysbinary, *base)[-1]["id"]
    later = threading.Timer(0.2, written.append, ("ada", [user("c")], 1, {}))
    later.start()
    try:
        lines = tail(capsysbinary, *base, "--follow", "--from", last, "-n", "1")
    finally:
        later.join()
    assert lines[0]["event"]["text"] == "c" and lines[0]["seq"] == 2


def test_tail_needs_a_redis(monkeypatch, capsys) -> None:
    monkeypatch.delenv("DIALOGD_REDIS_URL", raising=False)
    assert main(["events", "tail"]) == 1
    assert "--redis-url" in capsys.readouterr().err
    assert main(["events", "tail", "--redis-url", "redis+cluster://h:1"]) == 1
    assert "Cluster" in capsys.readouterr().err
