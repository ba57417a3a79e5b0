"""SCAFFOLD (wave/loop only): replaced by wave/actions' package at merge."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from worker.domain import Domain
from worker.errors import DialogdError
from worker.events import BotUttered
from worker.events import Event
from worker.events import Restarted
from worker.tracker import Tracker


class ActionRejected(DialogdError):
    pass


class ActionFailed(DialogdError):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ActionEndpoint:
    url: str
    token: str | None = None
    timeout: float = 10.0


@dataclass(frozen=True)
class NLGEndpoint:
    url: str
    token: str | None = None
    timeout: float = 5.0


class ActionRunner:
    def __init__(
        self,
        domain: Domain,
        action_endpoint: ActionEndpoint | None = None,
        nlg_endpoint: NLGEndpoint | None = None,
        *,
        rng: random.Random | None = None,
    ):
        self.domain = domain
        self.rng = rng or random.Random()

    def run(
        self,
        name: str,
        tracker: Tracker,
        events: Callable[[], list[Event]],
        channel: str | None = None,
    ) -> list[Event]:
        if name == "action_listen":
            return []
        if name == "action_restart":
            return [Restarted()]
        if name in self.domain.templates:
            v: dict[str, Any] = self.rng.choice(self.domain.templates[name])
            return [
                BotUttered(text=v.get("text"), data={}, metadata={"utter_action": name})
            ]
        raise ActionFailed(f"no action server for '{name}'")

    def close(self) -> None:
        pass
