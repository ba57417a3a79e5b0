"""api/serving: its names are real gunicorn settings, its environment knobs work, the
worker count follows the container's CPUs, the access log is one valid JSON object per
request whatever the client sends, and the worker drains on SIGTERM."""

from __future__ import annotations

import datetime
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from gunicorn.config import Config

from api.server import _Gunicorn
from api.serving.access_log import JsonAccessLogger
from api.serving.settings import available_cpus
from api.serving.settings import gunicorn_settings
from api.serving.worker import DrainingThreadWorker
from api.serving.worker import request_state

ROOT = Path(__file__).resolve().parents[2]


def run_conf(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    for name in list(os.environ):
        if name.startswith("DIALOGD_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return gunicorn_settings()


def test_every_name_is_a_gunicorn_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """A typo (``graceful_timout``) would be silently ignored by gunicorn."""
    settings = run_conf(monkeypatch)
    unknown = set(settings) - set(Config().settings)
    assert not unknown
    assert {"workers", "threads", "timeout", "graceful_timeout", "keepalive"} <= set(
        settings
    )


def test_gunicorn_accepts_every_value(monkeypatch: pytest.MonkeyPatch) -> None:
    values = run_conf(monkeypatch, DIALOGD_ACCESS_LOG="-")
    cfg = Config()
    for name, value in values.items():
        if value is not None:
            cfg.set(name, value)
    assert cfg.worker_class is DrainingThreadWorker
    assert cfg.logger_class is JsonAccessLogger
    assert cfg.preload_app is True
    assert cfg.accesslog == "-"


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    values = run_conf(monkeypatch)
    assert values["workers"] == available_cpus() >= 1
    assert values["threads"] == 2
    assert values["timeout"] == 30
    assert values["graceful_timeout"] == 20
    assert values["keepalive"] == 75
    assert values["accesslog"] is None  # off unless asked for
    assert values["errorlog"] == "-"


def test_environment_knobs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    values = run_conf(
        monkeypatch,
        DIALOGD_WORKERS="5",
        DIALOGD_THREADS="4",
        DIALOGD_TIMEOUT="60",
        DIALOGD_GRACEFUL_TIMEOUT="7",
        DIALOGD_KEEPALIVE="9",
        DIALOGD_LOG_LEVEL="debug",
        DIALOGD_ACCESS_LOG="/tmp/access.log",
        DIALOGD_ACCESS_LOG_FORMAT="%(h)s",
        DIALOGD_WORKER_TMP_DIR=str(tmp_path),
    )
    assert (values["workers"], values["threads"]) == (5, 4)
    assert (values["timeout"], values["graceful_timeout"]) == (60, 7)
    assert values["keepalive"] == 9
    assert values["loglevel"] == "debug"
    assert values["accesslog"] == "/tmp/access.log"
    assert values["access_log_format"] == "%(h)s"
    assert values["worker_tmp_dir"] == str(tmp_path)


def test_a_missing_tmp_dir_falls_back(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    values = run_conf(monkeypatch, DIALOGD_WORKER_TMP_DIR=str(tmp_path / "none"))
    assert values["worker_tmp_dir"] is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DIALOGD_WORKERS", "many"),
        ("DIALOGD_REQUEST_TIMEOUT", "soon"),
        ("DIALOGD_REQUEST_TIMEOUT", "0"),
    ],
)
def test_a_bad_number_fails_at_start(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    with pytest.raises(ValueError):
        run_conf(monkeypatch, **{name: value})


def test_serve_runs_gunicorn_with_the_package_settings() -> None:
    app = _Gunicorn(None, {"workers": 3})
    assert app.cfg.worker_class is DrainingThreadWorker
    assert app.cfg.logger_class is JsonAccessLogger
    assert app.cfg.workers == 3


def test_an_unknown_setting_fails_at_start(capsys: pytest.CaptureFixture) -> None:
    """A setting gunicorn does not know used to be dropped without a word."""
    with pytest.raises(SystemExit):
        _Gunicorn(None, {"graceful_timout": 5})
    assert "graceful_timout" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("data", "state"),
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\n", "more"),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "ready"),
        (b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nab", "more"),
        (b"POST / HTTP/1.1\r\ncontent-length:4\r\n\r\nabcd", "ready"),
        (b"POST / HTTP/1.1\r\nContent-Length: 9999999999\r\n\r\n", "ready"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab", "more"),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2;x=1\r\nab\r\n0\r\n\r\n",
            "ready",
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: 1\r\n",
            "more",
        ),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "ready"),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 70_000, "too large"),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"100000\r\n"
            + b"a" * 1_100_000,
            "ready",  # past the body limit: the app answers 413
        ),
    ],
)
def test_the_worker_knows_when_a_request_is_whole(data: bytes, state: str) -> None:
    assert request_state(data) == state


@pytest.mark.parametrize(
    ("files", "cap"),
    [
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu.max": "150000 100000\n"}, 2),
        ({"cpu.max": "50000 100000\n"}, 1),
        ({"cpu.max": "400000 100000\n"}, 4),
        ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({"cpu.max": "garbage"}, None),
        ({}, None),
    ],
)
def test_available_cpus_follows_the_cgroup_limit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, files: dict, cap: int | None
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    run_conf(monkeypatch)
    cpus = len(os.sched_getaffinity(0))
    expected = cpus if cap is None else min(cpus, cap)
    assert available_cpus(str(tmp_path)) == expected


# --- the JSON access log -----------------------------------------------------------


def _access_line(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    environ: dict[str, str],
    headers: list[tuple[str, str]],
    sent: int | None,
    response_headers: list[tuple[str, str]] = (),
) -> dict[str, Any]:
    log = tmp_path / "access.log"
    values = run_conf(monkeypatch, DIALOGD_ACCESS_LOG=str(log))
    cfg = Config()
    for name, value in values.items():
        if value is not None:
            cfg.set(name, value)
    logger = cfg.logger_class(cfg)
    base = {
        "REQUEST_METHOD": "POST",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.0.0.7",
        "QUERY_STRING": "",
    }
    environ = {**base, **environ}
    environ.setdefault("RAW_URI", environ.get("PATH_INFO", "/"))
    resp = SimpleNamespace(status="200 OK", sent=sent, headers=list(response_headers))
    req = SimpleNamespace(headers=headers)
    logger.access(resp, req, environ, datetime.timedelta(microseconds=1234))
    for handler in logger.access_log.handlers:
        handler.flush()
    lines = log.read_text().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


def test_access_log_is_json_with_request_and_conversation_ids(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = "/conversations/ü x/parse".encode().decode("latin-1")  # as WSGI has it
    line = _access_line(
        monkeypatch,
        tmp_path,
        {"PATH_INFO": path, "QUERY_STRING": "a=1"},
        [("X-FORWARDED-FOR", "192.0.2.1")],
        sent=321,
        # the app answers every request with its id (the client's, or a new one)
        response_headers=[("X-Request-Id", "0123abcd")],
    )
    assert line["request_id"] == "0123abcd"
    assert line["forwarded_for"] == "192.0.2.1"
    assert line["conversation_id"] == "ü x"
    assert line["path"] == "/conversations/ü x/parse"
    assert line["method"] == "POST"
    assert line["status"] == 200
    assert line["bytes"] == 321
    assert line["duration_us"] == 1234
    assert line["query"] == "a=1"
    assert isinstance(line["pid"], int)
    assert line["time"].endswith("Z") and "T" in line["time"]


def test_access_log_stays_json_whatever_the_client_sends(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    nasty = 'a"b\\c\n\td\x01'
    line = _access_line(
        monkeypatch,
        tmp_path,
        {"PATH_INFO": "/conversation/" + nasty + "/continue", "QUERY_STRING": nasty},
        [("USER-AGENT", nasty)],
        sent=None,
        response_headers=[("X-Request-Id", nasty)],
    )
    assert line["request_id"] == nasty
    assert line["query"] == nasty
    assert line["conversation_id"] == nasty
    assert line["bytes"] == 0


def test_access_log_without_ids(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    line = _access_line(monkeypatch, tmp_path, {"PATH_INFO": "/status"}, [], sent=10)
    assert line["request_id"] == "-"
    assert line["conversation_id"] == ""
    assert line["path"] == "/status"


# --- graceful shutdown, for real --------------------------------------------------

APP = """
import time


def app(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(2.0)
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]
"""


def _get(port: int, path: str, timeout: float = 10) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.mark.e2e
def test_sigterm_finishes_in_flight_requests_and_refuses_new_ones(
    tmp_path: Path,
) -> None:
    """gunicorn with this file and a stand-in app: after SIGTERM, a request in flight
    completes, and a new connection is refused at once (so nginx sends it elsewhere),
    instead of waiting in the listen backlog to be reset when the worker exits."""
    (tmp_path / "standin.py").write_text(APP)
    conf = tmp_path / "conf.py"
    conf.write_text(
        "from api.serving.settings import gunicorn_settings\n"
        "globals().update(gunicorn_settings())\n"
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALOGD_")}
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
            "1",
            "standin:app",
        ],
        env={**env, "DIALOGD_GRACEFUL_TIMEOUT": "10"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                assert _get(port, "/", timeout=2) == 200
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        slow: dict[str, Any] = {}
        thread = threading.Thread(
            target=lambda: slow.update(status=_get(port, "/slow"), end=time.monotonic())
        )
        thread.start()
        time.sleep(0.3)
        server.send_signal(signal.SIGTERM)
        refused_at = None
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    pass
            except ConnectionRefusedError:
                refused_at = time.monotonic()
                break
            time.sleep(0.02)
        thread.join(timeout=15)
        assert slow.get("status") == 200, "the in-flight request was not finished"
        assert refused_at is not None, "new connections still queue after SIGTERM"
        assert refused_at < slow["end"], "refused only once the worker had exited"
        assert server.wait(timeout=15) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_access_log_off_builds_nothing_even_with_a_logging_dict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # ``dialogd serve`` always passes a logconfig_dict, which gunicorn alone would
    # count as "access log on": every request would then format its atoms.
    values = run_conf(monkeypatch)
    cfg = Config()
    for name, value in values.items():
        if value is not None:
            cfg.set(name, value)
    cfg.set("logconfig_dict", {"version": 1, "disable_existing_loggers": False})
    logger = cfg.logger_class(cfg)
    assert not logger.access_log_enabled
    logger.atoms = None  # would raise if access() went on to build the line
    logger.access(SimpleNamespace(), SimpleNamespace(), {}, datetime.timedelta(0))
    cfg.set("accesslog", "-")
    assert cfg.logger_class(cfg).access_log_enabled
