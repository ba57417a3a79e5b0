"""The server runs the bot, on real gunicorn servers and the session's Redis:
Rasa's REST channel and the conversation routes of its server-side loop, a real
rasa_sdk action server, two instances serving one conversation, the action
server's faults, and ``dialogd shell``."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from api.cli import main as dialogd
from api.testing import Server
from api.testing import free_port
from tests.actions.servers import ActionServer
from tests.actions.servers import JsonServer
from tests.data import ROOT

LOOPBOT = ROOT / "tests" / "fixtures" / "loopbot"
SHELL = [sys.executable, "-m", "api", "shell"]
GREETING = {
    "text": "Hey! How are you?",
    "buttons": [
        {"title": "great", "payload": "great"},
        {"title": "super sad", "payload": "super sad"},
    ],
}


def rest(server: Server, sender: str, message: str, **params: Any) -> Any:
    reply = requests.post(
        f"{server.url}/webhooks/rest/webhook",
        json={"sender": sender, "message": message},
        params=params,
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


def events(server: Server, cid: str) -> list[dict[str, Any]]:
    reply = requests.get(
        f"{server.url}/conversations/{cid}/tracker",
        params={"include_events": "ALL"},
        timeout=30,
    )
    return reply.json()["events"]


def steps(server: Server, cid: str) -> list[tuple[str, Any]]:
    return [
        (e["event"], e.get("name") or e.get("text"))
        for e in events(server, cid)
        if e["event"] in ("user", "bot", "action", "slot")
    ]


# ---- moodbot: responses only -----------------------------------------------------
@pytest.fixture(scope="module")
def moodbot(moodbot_server) -> Server:
    return moodbot_server[0]


def test_the_rest_channel_talks_with_moodbot(moodbot):
    sender = f"rest-{uuid.uuid4().hex}"
    assert rest(moodbot, sender, "hello") == [{"recipient_id": sender, **GREETING}]
    assert rest(moodbot, sender, "/mood_unhappy") == [
        {"recipient_id": sender, "text": "Here is something to cheer you up:"},
        {"recipient_id": sender, "image": "https://i.imgur.com/nGF1K8f.jpg"},
        {"recipient_id": sender, "text": "Did that help you?"},
    ]
    log = events(moodbot, sender)
    users = [e for e in log if e["event"] == "user"]
    assert [u["input_channel"] for u in users] == ["rest", "rest"]
    assert users[0]["parse_data"]["intent"]["name"] == "greet"
    bots = [e for e in log if e["event"] == "bot"]
    assert bots[0]["data"]["buttons"] == GREETING["buttons"]
    assert bots[0]["metadata"]["utter_action"] == "utter_greet"
    assert steps(moodbot, sender)[-4:] == [
        ("bot", "Here is something to cheer you up:"),
        ("action", "utter_did_that_help"),
        ("bot", "Did that help you?"),
        ("action", "action_listen"),
    ]


def test_the_rest_channel_streams_each_message(moodbot):
    sender = f"stream-{uuid.uuid4().hex}"
    rest(moodbot, sender, "/greet")
    reply = requests.post(
        f"{moodbot.url}/webhooks/rest/webhook?stream=true",
        json={"sender": sender, "message": "/mood_unhappy"},
        stream=True,
        timeout=30,
    )
    assert reply.headers["Content-Type"].startswith("text/event-stream")
    lines = [json.loads(line) for line in reply.iter_lines() if line]
    assert [m.get("text") or m.get("image") for m in lines] == [
        "Here is something to cheer you up:",
        "https://i.imgur.com/nGF1K8f.jpg",
        "Did that help you?",
    ]
    assert steps(moodbot, sender)[-1] == ("action", "action_listen")


def test_a_rest_message_is_checked(moodbot):
    url = f"{moodbot.url}/webhooks/rest/webhook"
    for body, parameter in [
        ({"sender": "x"}, "message"),
        ({"sender": "", "message": "hi"}, "sender"),
        ({"sender": ["x"], "message": "hi"}, "sender"),
        ({"sender": "x", "message": "hi", "metadata": [1]}, "metadata"),
    ]:
        reply = requests.post(url, json=body, timeout=30)
        assert reply.status_code == 400, body
        assert reply.json()["details"]["parameter"] == parameter
    assert requests.get(f"{moodbot.url}/webhooks/rest/").json() == {"status": "ok"}
    # Rasa's default sender
    assert rest(moodbot, "default", "/greet")[0]["recipient_id"] == "default"


def test_the_conversation_routes_of_the_loop(moodbot):
    url, cid = moodbot.url, f"routes-{uuid.uuid4().hex}"
    conv = f"{url}/conversations/{cid}"
    # /messages: logged, nothing predicted
    tracker = requests.post(
        f"{conv}/messages", json={"text": "/greet", "sender": "user"}, timeout=30
    ).json()
    assert tracker["latest_message"]["intent"]["name"] == "greet"
    assert tracker["latest_action_name"] == "action_listen"
    # /predict: scores sorted, nothing written
    before = len(events(moodbot, cid))
    predicted = requests.post(f"{conv}/predict", timeout=30).json()
    assert predicted["scores"][0]["action"] == "utter_greet"
    scores = [s["score"] for s in predicted["scores"]]
    assert scores == sorted(scores, reverse=True)
    assert len(events(moodbot, cid)) == before
    # /execute: one action, no prediction after it
    executed = requests.post(
        f"{conv}/execute",
        json={"name": "utter_greet", "policy": "me", "confidence": 1.0},
        timeout=30,
    ).json()
    assert executed["messages"] == [{"recipient_id": cid, **GREETING}]
    assert executed["tracker"]["latest_action_name"] == "utter_greet"
    listened = requests.post(
        f"{conv}/execute", json={"name": "action_listen"}, timeout=30
    ).json()
    assert listened["messages"] == []
    # /trigger_intent: the whole loop
    triggered = requests.post(
        f"{conv}/trigger_intent", json={"name": "mood_great"}, timeout=30
    ).json()
    assert [m["text"] for m in triggered["messages"]] == ["Great carry on!"]
    assert triggered["tracker"]["latest_message"]["text"] == "EXTERNAL: mood_great"
    unknown = requests.post(f"{conv}/trigger_intent", json={"name": "x"}, timeout=30)
    assert unknown.status_code == 404
    # /respond, the 0.9+ shape, GET and POST
    said = requests.get(f"{conv}/respond", params={"q": "/goodbye"}, timeout=30)
    assert said.json() == [{"recipient_id": cid, "text": "Bye"}]
    said = requests.post(f"{conv}/respond", json={"query": "/greet"}, timeout=30)
    assert said.json() == [{"recipient_id": cid, **GREETING}]
    # /story: YAML, and Markdown on request
    story = requests.get(f"{conv}/story", timeout=30)
    assert story.headers["Content-Type"].startswith("application/x-yaml")
    assert f"- story: {cid}" in story.text and "- action: utter_greet" in story.text
    markdown = requests.get(f"{conv}/story", params={"format": "md"}, timeout=30)
    lines = [line.strip() for line in markdown.text.splitlines()]
    assert lines[:3] == [f"## {cid}", "* greet: /greet", "- utter_greet"]


def test_dialogd_shell(moodbot):
    sender = f"shell-{uuid.uuid4().hex}"
    shell = subprocess.run(
        [*SHELL, "--url", moodbot.url, "--sender", sender],
        input="hello\n2\n/stop\nnever sent\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shell.returncode == 0, shell.stderr
    out = shell.stdout.splitlines()
    assert "Hey! How are you?" in out
    assert "  1: great (great)" in out and "  2: super sad (super sad)" in out
    # "2" chose the second button: its payload was sent
    assert "Here is something to cheer you up:" in out
    assert "Image: https://i.imgur.com/nGF1K8f.jpg" in out
    texts = [t for kind, t in steps(moodbot, sender) if kind == "user"]
    assert texts == ["hello", "super sad"]


def test_dialogd_shell_without_a_server():
    shell = subprocess.run(
        [
            sys.executable,
            "-m",
            "api",
            "shell",
            "--url",
            f"http://127.0.0.1:{free_port()}",
        ],
        input="hello\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shell.returncode == 1 and "cannot reach the bot" in shell.stderr


# ---- loopbot: a custom action on a real rasa_sdk server -----------------------------
@pytest.fixture(scope="module")
def loopbot_model(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("loopbot-model")
    assert (
        dialogd(
            [
                "train",
                "--domain",
                str(LOOPBOT / "domain.yml"),
                "--data",
                str(LOOPBOT / "data"),
                "--config",
                str(LOOPBOT / "config.yml"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    return out


@pytest.fixture(scope="module")
def calls(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("calls") / "calls.tsv"


@pytest.fixture(scope="module")
def counting_server(calls) -> Iterator[ActionServer]:
    server = ActionServer(
        "rasa_sdk",
        "tests.fixtures.loopbot.counting",
        env={"LOOPBOT_CALLS": str(calls)},
    )
    with server:
        yield server


def _endpoints(folder: Path, url: str, timeout: float = 10) -> str:
    path = folder / f"endpoints-{uuid.uuid4().hex[:6]}.yml"
    path.write_text(f"action_endpoint:\n  url: {url}\n  timeout: {timeout}\n")
    return str(path)


@pytest.fixture(scope="module")
def loop_pair(
    loopbot_model, counting_server, redis_url, tmp_path_factory
) -> Iterator[list[Server]]:
    logs = tmp_path_factory.mktemp("loop-logs")
    endpoints = _endpoints(logs, counting_server.url)
    prefix = f"loop:{uuid.uuid4().hex[:8]}:"
    servers = [
        Server(loopbot_model, redis_url, prefix, logs, extra=["--endpoints", endpoints])
        for _ in range(2)
    ]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


def _calls(path: Path, sender: str) -> list[str]:
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [line.split("\t", 1)[1] for line in lines if line.startswith(sender + "\t")]


def test_a_custom_action_through_the_rest_channel(loop_pair, calls):
    server, sender = loop_pair[0], f"count-{uuid.uuid4().hex}"
    assert rest(server, sender, "/greet") == [
        {"recipient_id": sender, "text": "Hello! Say /count."}
    ]
    assert rest(server, sender, "/count") == [
        {"recipient_id": sender, "text": "/count is message 1"}
    ]
    assert rest(loop_pair[1], sender, "/count") == [
        {"recipient_id": sender, "text": "/count is message 2"}
    ]
    assert _calls(calls, sender) == ["/count", "/count"]
    assert steps(server, sender)[-5:] == [
        ("user", "/count"),
        ("action", "action_count"),
        ("bot", "/count is message 2"),
        ("slot", "count"),
        ("action", "action_listen"),
    ]


def test_two_senders_on_two_instances_never_interleave(loop_pair, calls):
    """Two clients hammer one conversation, each through its own instance: every
    message's loop is logged whole, one after the other, and the action server
    is called once per message (each call sees the count the one before left)."""
    cid, per_sender = f"hammer-{uuid.uuid4().hex}", 12
    errors: list[str] = []

    def send(who: int) -> None:
        for i in range(per_sender):
            text = f'/count{{"tag": "s{who}m{i}"}}'
            reply = requests.post(
                f"{loop_pair[who].url}/webhooks/rest/webhook",
                json={"sender": cid, "message": text},
                timeout=60,
            )
            if reply.status_code != 200 or len(reply.json()) != 1:
                errors.append(f"{text}: {reply.status_code} {reply.text}")

    threads = [threading.Thread(target=send, args=(who,)) for who in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not errors, errors

    texts = _calls(calls, cid)
    assert len(texts) == len(set(texts)) == 2 * per_sender, "an action ran twice"
    log = steps(loop_pair[0], cid)
    users = [i for i, (kind, _) in enumerate(log) if kind == "user"]
    assert len(users) == 2 * per_sender
    for n, start in enumerate(users, 1):
        text = log[start][1]
        assert log[start + 1 : start + 5] == [
            ("action", "action_count"),
            ("bot", f"{text} is message {n}"),
            ("slot", "count"),
            ("action", "action_listen"),
        ], f"message {n} interleaved: {log[start : start + 6]}"
    # the calls happened in the order of the log
    assert texts == [log[i][1] for i in users]


@pytest.mark.parametrize("fault", ["refused", "error", "timeout", "rejection"])
def test_action_server_faults_give_documented_outcomes(
    fault, loopbot_model, redis_url, tmp_path
):
    """A failing action server: the action is logged without events and the bot
    goes on (Rasa 3); a rejection is logged as a rejection only. Either way the
    message's turn ends with the bot listening, never half applied."""

    def answer(path: str, body: Any) -> tuple[int, Any]:
        if fault == "timeout":
            time.sleep(3)
        if fault == "rejection":
            return 400, {"error": "not now", "action_name": "action_count"}
        return 500, {"error": "boom"}

    with JsonServer(answer) as actions:
        url = actions.url if fault != "refused" else f"http://127.0.0.1:{free_port()}/"
        endpoints = _endpoints(tmp_path, url, timeout=1)
        with Server(
            loopbot_model,
            redis_url,
            f"fault:{uuid.uuid4().hex[:8]}:",
            tmp_path,
            workers=1,
            extra=["--endpoints", endpoints],
        ) as server:
            sender = f"fault-{fault}"
            assert rest(server, sender, "/count") == []
            log = [(e["event"], e.get("name")) for e in events(server, sender)]
            text = server.log()
    after = log[[kind for kind, _ in log].index("user") + 1 :]
    if fault == "rejection":
        assert after[0] == ("action_execution_rejected", "action_count")
        assert ("action", "action_count") not in after
        assert "rejected" in text
    else:
        assert after == [("action", "action_count"), ("action", "action_listen")]
        assert "action 'action_count' failed" in text
    assert after[-1] == ("action", "action_listen")
    assert not [kind for kind, _ in after if kind in ("bot", "slot")]
