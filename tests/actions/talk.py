"""A conversation in memory for the action tests: the log, and the tracker folded
from it, as the message loop keeps them."""

from __future__ import annotations

from typing import Any

from worker.actions import ActionRunner
from worker.domain import Domain
from worker.events import ActionExecuted
from worker.events import Event
from worker.events import UserUttered
from worker.tracker import NeedsHistory
from worker.tracker import Tracker


class Talk:
    def __init__(self, domain: Domain, sender: str = "talk"):
        self.domain = domain
        self.log: list[Event] = []
        self.tracker = Tracker(sender, domain)
        self.add(ActionExecuted(name="action_listen", timestamp=1.0))

    def add(self, *events: Event) -> None:
        for event in events:
            self.log.append(event)
            try:
                self.tracker.update(event)
            except NeedsHistory:
                self.tracker = Tracker.from_events(
                    self.tracker.sender_id, self.domain, self.log
                )

    def user(
        self, text: str, intent: str, entities: list[dict[str, Any]] | None = None
    ) -> None:
        parse = {
            "text": text,
            "intent": {"name": intent, "confidence": 1.0},
            "entities": entities or [],
            "intent_ranking": [{"name": intent, "confidence": 1.0}],
        }
        self.add(UserUttered(text=text, parse_data=parse, timestamp=2.0))

    def events(self) -> list[Event]:
        return list(self.log)

    def run(
        self, runner: ActionRunner, name: str, channel: str | None = None
    ) -> list[Event]:
        """The action's events, not applied."""
        return runner.run(name, self.tracker, self.events, channel)

    def step(self, runner: ActionRunner, name: str) -> list[Event]:
        """Run the action and log it with its events, as the loop does."""
        events = self.run(runner, name)
        self.add(ActionExecuted(name=name, timestamp=3.0), *events)
        return events

    def listen(self) -> None:
        self.add(ActionExecuted(name="action_listen", timestamp=4.0))
