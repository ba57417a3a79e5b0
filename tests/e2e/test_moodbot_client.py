"""A client loop, as a team's own code would write it: moodbot's stories played
through ``/parse`` and ``/continue`` on a real server with the trained NLU model."""

from __future__ import annotations

import uuid

import pytest

from api.testing import Client as LoopClient
from tests.e2e.conftest import MOODBOT
from worker.domain import Domain
from worker.events import ActionExecuted
from worker.events import UserUttered
from worker.training import read_stories

DOMAIN = Domain.load(MOODBOT / "domain.yml")
STORIES = read_stories(MOODBOT / "data" / "stories.md", DOMAIN)

# One plain-language message per intent, none of them in the training data.
TEXTS = {
    "greet": "hello there",
    "goodbye": "bye for now",
    "mood_affirm": "yes it did",
    "mood_deny": "no, not really",
    "mood_great": "I am feeling great",
    "mood_unhappy": "I am very sad",
}


class Client(LoopClient):
    """Runs the bot's actions itself: it renders templates and reports them."""

    def __init__(self, url: str):
        super().__init__(url)
        self.cid = f"mood-{uuid.uuid4().hex}"
        self.said: list[str] = []

    def render(self, action: str, reply: dict) -> list[dict]:
        text = DOMAIN.templates[action][0]["text"]
        self.said.append(text)
        return [{"event": "bot", "text": text}]

    def send(self, message: str) -> list[str]:
        """One user turn; returns the actions the server asked for."""
        return self.turn(self.cid, message, self.render)


def turns(step) -> list[tuple[str, list[str]]]:
    """A story as (intent, actions the bot runs after it)."""
    out: list[tuple[str, list[str]]] = []
    for event in step.events:
        if isinstance(event, UserUttered):
            out.append((event.intent_name, []))
        elif isinstance(event, ActionExecuted) and event.name != "action_listen":
            out[-1][1].append(event.name)
    return out


@pytest.mark.parametrize("step", STORIES, ids=lambda s: s.block_name)
@pytest.mark.parametrize("style", ["intent", "text"])
def test_the_story_plays_through_parse_and_continue(moodbot_server, step, style):
    client = Client(moodbot_server[0].url)
    for intent, expected in turns(step):
        message = f"/{intent}" if style == "intent" else TEXTS[intent]
        assert client.send(message) == expected, (intent, message)
    events = client.get(f"/conversations/{client.cid}/tracker")["events"]
    bot_texts = [e["text"] for e in events if e["event"] == "bot"]
    assert bot_texts == client.said
