"""Rasa 3 sessions over HTTP: a real gunicorn, the session's Redis, a domain whose
session expires after 0.02 minutes (1.2 s) of user silence."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from api.testing import Client
from api.testing import Server
from worker.train import train_models

DOMAIN = """\
version: "3.1"
intents: [greet, inform]
entities: [name]
slots:
  name:
    type: text
    influence_conversation: false
    mappings:
    - type: from_entity
      entity: name
responses:
  utter_greet: [{text: hi}]
session_config:
  session_expiration_time: 0.02
  carry_over_slots_to_new_session: true
"""
STORIES = """\
version: "3.1"
stories:
- story: greet
  steps:
  - intent: greet
  - action: utter_greet
"""
EXPIRY_SECONDS = 0.02 * 60


@pytest.fixture(scope="module")
def server(redis_url, tmp_path_factory) -> Iterator[Server]:
    out = tmp_path_factory.mktemp("sessions-model")
    (out / "domain.yml").write_text(DOMAIN)
    (out / "stories.yml").write_text(STORIES)
    config = {"policies": [{"name": "MemoizationPolicy", "max_history": 2}]}
    train_models(out, config, domain=out / "domain.yml", stories=out / "stories.yml")
    prefix = f"sessions:{uuid.uuid4().hex[:8]}:"
    logs = tmp_path_factory.mktemp("logs")
    with Server(out, redis_url, prefix, logs, workers=1) as server:
        yield server


def test_a_session_expires_after_the_users_silence(server):
    client = Client(server.url)
    cid = f"s-{uuid.uuid4().hex}"
    reply = client.parse(cid, '/inform{"name": "Ada"}')
    assert reply["tracker"]["slots"]["name"] == "Ada"
    client.post(f"/conversations/{cid}/continue", {"executed_action": "utter_greet"})
    events = client.get(f"/conversations/{cid}/tracker?include_events=ALL")["events"]
    seen = len(events)
    assert [(e["event"], e.get("name")) for e in events[:3]] == [
        ("action", "action_session_start"),
        ("session_started", None),
        ("action", "action_listen"),
    ]
    time.sleep(EXPIRY_SECONDS + 0.3)
    reply = client.parse(cid, "/greet")
    assert reply["next_action"] == "utter_greet"  # a fresh start for the policies
    events = client.get(f"/conversations/{cid}/tracker?include_events=ALL")["events"]
    assert [(e["event"], e.get("name"), e.get("value")) for e in events[seen:]] == [
        ("action", "action_session_start", None),
        ("session_started", None, None),
        ("slot", "name", "Ada"),
        ("action", "action_listen", None),
        ("user", None, None),
    ]
    assert reply["tracker"]["slots"]["name"] == "Ada"
    # AFTER_RESTART keeps the old session's events; APPLIED starts at the new one
    applied = client.get(f"/conversations/{cid}/tracker?include_events=APPLIED")
    assert applied["events"][0]["event"] == "slot"
