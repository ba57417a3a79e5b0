"""``dialogd serve`` as a user runs it: embedded Redis, clean SIGTERM, data kept."""

from __future__ import annotations

import signal
import subprocess

import requests

from api.testing import Server


def serve(model, data_dir, log_dir) -> Server:
    return Server(
        model, None, "", log_dir, nlu=True, extra=("--data-dir", str(data_dir))
    ).start()


def test_embedded_redis_keeps_conversations_across_restarts(moodbot_model, tmp_path):
    data = tmp_path / "data"
    server = serve(moodbot_model, data, tmp_path)
    reply = requests.post(
        f"{server.url}/conversations/default/parse", json={"query": "hello there"}
    ).json()
    assert reply["next_action"] == "utter_greet"
    assert server.stop(signal.SIGTERM) == 0
    assert "Shutting down" in server.log()
    redis_left = subprocess.run(["pgrep", "-f", f"{data}"], capture_output=True)
    assert redis_left.returncode == 1, "the embedded Redis outlived the server"

    server = serve(moodbot_model, data, tmp_path)
    try:
        tracker = requests.get(f"{server.url}/conversations/default/tracker").json()
        assert tracker["latest_message"]["text"] == "hello there"
    finally:
        assert server.stop(signal.SIGTERM) == 0
