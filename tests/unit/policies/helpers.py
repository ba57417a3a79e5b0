"""Small builders shared by the policy tests."""

from __future__ import annotations

from tests.data import RASA_EXAMPLES
from worker.domain import Domain
from worker.events import ActionExecuted
from worker.events import Event
from worker.events import UserUttered
from worker.tracker import Tracker
from worker.training import generate_dialogues
from worker.training import read_stories

EXAMPLES = RASA_EXAMPLES


def bot(name: str, factor: int = 20):
    """(domain, dialogues) of an example bot."""
    domain = Domain.load(EXAMPLES / name / "domain.yml")
    steps = read_stories(EXAMPLES / name / "data" / "stories.md", domain)
    return domain, generate_dialogues(steps, domain, augmentation_factor=factor)


def user(intent: str, confidence: float = 1.0, **entities: str) -> UserUttered:
    ents = [{"entity": k, "value": v} for k, v in entities.items()]
    data = {"intent": {"name": intent, "confidence": confidence}, "entities": ents}
    return UserUttered(text=f"/{intent}", parse_data=data)


def act(name: str) -> ActionExecuted:
    return ActionExecuted(name=name)


def tracker(domain: Domain, *events: Event, history: int = 5) -> Tracker:
    out = Tracker("test", domain, history)
    for event in events:
        out.update(event)
    return out
