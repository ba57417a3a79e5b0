"""``dialogd serve`` as a user runs it: embedded Redis, clean SIGTERM, data kept."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import requests

from tests.e2e.conftest import free_port


def start(model, data_dir, log_file) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "api",
            "serve",
            "-d",
            str(model / "core"),
            "-u",
            str(model / "nlu"),
            "-p",
            str(port),
            "--host",
            "127.0.0.1",
            "--workers",
            "2",
            "--data-dir",
            str(data_dir),
            "-o",
            str(log_file),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, log_file.read_text()
        try:
            if requests.get(url + "/status", timeout=1).ok:
                return proc, url
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError(log_file.read_text())


def test_embedded_redis_keeps_conversations_across_restarts(moodbot_model, tmp_path):
    data = tmp_path / "data"
    log = tmp_path / "dialogd.log"
    proc, url = start(moodbot_model, data, log)
    reply = requests.post(
        f"{url}/conversations/default/parse", json={"query": "hello there"}
    ).json()
    assert reply["next_action"] == "utter_greet"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert "Shutting down" in log.read_text()
    redis_left = subprocess.run(["pgrep", "-f", f"{data}"], capture_output=True)
    assert redis_left.returncode == 1, "the embedded Redis outlived the server"

    proc, url = start(moodbot_model, data, log)
    try:
        tracker = requests.get(f"{url}/conversations/default/tracker").json()
        assert tracker["latest_message"]["text"] == "hello there"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
