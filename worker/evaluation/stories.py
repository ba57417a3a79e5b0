"""Replaying test stories through a trained model, the way the server would.

Each story is folded into the server's own ``Tracker`` event by event; before every
action the story took, the model predicts the next action from that tracker, exactly
as ``/parse`` and ``/continue`` would, and the story then goes on with its own (gold)
action, as Rasa's ``rasa_core.evaluate`` did. End-to-end stories (``* intent: text``)
can run their text through an interpreter, so NLU mistakes count as well.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any
from typing import Protocol

from worker.domain import ACTION_LISTEN
from worker.domain import REQUESTED_SLOT
from worker.domain import Domain
from worker.errors import TrainingDataError
from worker.evaluation.metrics import Metrics
from worker.evaluation.metrics import classification_metrics
from worker.evaluation.metrics import text_report
from worker.event_codec import event_to_dict
from worker.events import ActionExecuted
from worker.events import Event
from worker.events import SlotSet
from worker.events import UserUttered
from worker.tracker import NeedsHistory
from worker.tracker import Tracker
from worker.training.files import read_stories
from worker.training.generator import TrainingDialogue
from worker.training.generator import generate_dialogues
from worker.training.generator import state_path
from worker.training.generator import user_fills
from worker.training.stories import StoryStep
from worker.training.stories import parse_stories

#: Policies whose predictions come straight from the training stories.
MEMO_POLICIES = ("MemoizationPolicy", "AugmentedMemoizationPolicy")


class PredictionLike(Protocol):
    @property
    def action(self) -> str: ...
    @property
    def confidence(self) -> float: ...
    @property
    def policy(self) -> str | None: ...


class CoreLike(Protocol):
    """What evaluation needs of a trained model (``worker.model.CoreModel``)."""

    domain: Domain

    @property
    def max_history(self) -> int: ...

    def next_action(self, tracker: Tracker) -> PredictionLike:
        """The action the server would answer (``CoreModel.next_action``)."""


class InterpreterLike(Protocol):
    def parse(self, text: str) -> dict[str, Any]: ...


# ---- results ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ActionResult:
    """One action the model had to predict."""

    story: str
    gold: str
    predicted: str
    policy: str | None
    confidence: float

    @property
    def correct(self) -> bool:
        return self.gold == self.predicted

    def as_dict(self) -> dict[str, Any]:
        return {
            "story": self.story,
            "gold": self.gold,
            "predicted": self.predicted,
            "policy": self.policy,
            "confidence": self.confidence,
        }


@dataclass(frozen=True, slots=True)
class UserResult:
    """One user message; ``predicted`` differs from ``gold`` only end to end.

    End to end, the entities found must be the story's annotated ones (entity and
    value, in any order), as in ``rasa test``."""

    story: str
    text: str | None
    gold: str | None
    predicted: str | None
    entities: tuple[tuple[str, Any], ...] = ()
    gold_entities: tuple[tuple[str, Any], ...] | None = None

    @property
    def correct(self) -> bool:
        if self.gold != self.predicted:
            return False
        if self.gold_entities is None:
            return True
        return sorted(map(repr, self.gold_entities)) == sorted(map(repr, self.entities))


@dataclass(frozen=True, slots=True)
class OtherEvent:
    """Any other story event (slots, forms, ...), kept for the turn-by-turn view."""

    story: str
    text: str

    @property
    def correct(self) -> bool:
        return True


Step = ActionResult | UserResult | OtherEvent


@dataclass(frozen=True, slots=True)
class StoryResult:
    name: str
    steps: tuple[Step, ...]

    @property
    def actions(self) -> list[ActionResult]:
        return [s for s in self.steps if isinstance(s, ActionResult)]

    @property
    def correct(self) -> bool:
        return all(s.correct for s in self.steps)


@dataclass(frozen=True)
class Evaluation:
    """Every story's replay, with the metrics computed from it; ``distinct`` is
    how many of the stories have different state paths (None: not counted)."""

    stories: tuple[StoryResult, ...]
    end_to_end: bool = False
    distinct: int | None = None

    @cached_property
    def actions(self) -> list[ActionResult]:
        return [a for s in self.stories for a in s.actions]

    @cached_property
    def user_turns(self) -> list[UserResult]:
        return [u for s in self.stories for u in s.steps if isinstance(u, UserResult)]

    @cached_property
    def action_metrics(self) -> Metrics:
        return classification_metrics(
            [a.gold for a in self.actions], [a.predicted for a in self.actions]
        )

    @cached_property
    def intent_metrics(self) -> Metrics:
        turns = self.user_turns
        return classification_metrics(
            [str(u.gold) for u in turns], [str(u.predicted) for u in turns]
        )

    @cached_property
    def combined_metrics(self) -> Metrics:
        """Actions, plus intents end to end: the targets Rasa's ``/evaluate`` used."""
        gold = [a.gold for a in self.actions]
        predicted = [a.predicted for a in self.actions]
        if self.end_to_end:
            gold += [str(u.gold) for u in self.user_turns]
            predicted += [str(u.predicted) for u in self.user_turns]
        return classification_metrics(gold, predicted)

    @property
    def story_accuracy(self) -> float:
        if not self.stories:
            return 0.0
        return sum(s.correct for s in self.stories) / len(self.stories)

    @property
    def failed_stories(self) -> list[StoryResult]:
        return [s for s in self.stories if not s.correct]

    @property
    def in_training_data_fraction(self) -> float:
        """Share of predictions made by a memoization policy (Rasa's definition)."""
        if not self.actions:
            return 0.0
        memo = sum(
            1
            for a in self.actions
            if a.policy and a.policy.endswith(tuple(f"_{p}" for p in MEMO_POLICIES))
        )
        return memo / len(self.actions)

    def text_report(self) -> str:
        return text_report(self.combined_metrics)

    def summary(self) -> dict[str, Any]:
        """The content of ``report.json``."""
        out: dict[str, Any] = {
            "is_end_to_end_evaluation": self.end_to_end,
            "stories": {
                "total": len(self.stories),
                "distinct": self.distinct,
                "correct": sum(s.correct for s in self.stories),
                "accuracy": self.story_accuracy,
                "failed": [s.name for s in self.failed_stories],
            },
            "actions": self.action_metrics.as_dict(),
            "in_training_data_fraction": self.in_training_data_fraction,
        }
        if self.end_to_end:
            out["intents"] = self.intent_metrics.as_dict()
        return out


# ---- replay ----------------------------------------------------------------------
class _Replay:
    """Folds one story into a tracker as the server does, predicting each action."""

    def __init__(self, core: CoreLike, dialogue: TrainingDialogue):
        self.core = core
        self.domain = core.domain
        self.dialogue = dialogue
        self.name = dialogue.name or "story"
        self.tracker = Tracker(self.name, self.domain, core.max_history)
        self.logged: list[Event] = []
        self.steps: list[Step] = []

    def log(self, event: Event) -> None:
        try:
            self.tracker.update(event)
        except NeedsHistory:
            self.tracker = Tracker.from_events(
                self.name, self.domain, [*self.logged, event], self.core.max_history
            )
        self.logged.append(event)

    def predictable(self, index: int, event: ActionExecuted) -> bool:
        if index in self.dialogue.unpredictable:
            return False
        # NOTE: a conversation's opening listen is logged by the server itself.
        return not (index == 0 and event.name == ACTION_LISTEN)

    def action(self, index: int, event: ActionExecuted) -> None:
        if self.predictable(index, event):
            p = self.core.next_action(self.tracker)
            self.steps.append(
                ActionResult(
                    self.name,
                    event.name,
                    p.action,
                    p.policy,
                    float(p.confidence),
                )
            )
        self.log(event)

    def user(self, event: UserUttered, interpreter: InterpreterLike | None) -> list:
        """Log the message (parsed again end to end); the gold slot fills to skip."""
        requested = self.tracker.slots.get(REQUESTED_SLOT)
        gold_fills = [
            SlotSet(name=n, value=v)
            for n, v in user_fills(self.domain, event, requested)
        ]
        parsed, gold_entities = event, None
        if interpreter is not None:
            parse_data = interpreter.parse(event.text or "")
            parsed = UserUttered(text=event.text, parse_data=parse_data)
            gold_entities = _entity_values(event)
        self.steps.append(
            UserResult(
                self.name,
                event.text,
                event.intent_name,
                parsed.intent_name,
                _entity_values(parsed),
                gold_entities,
            )
        )
        self.log(parsed)
        if interpreter is None:
            return []
        for name, value in user_fills(self.domain, parsed, requested):
            self.log(SlotSet(name=name, value=value))
        return gold_fills

    def run(self, interpreter: InterpreterLike | None) -> StoryResult:
        skip: list[Event] = []
        for index, event in enumerate(self.dialogue.events):
            if skip and event == skip[0]:
                skip.pop(0)
                continue
            skip = []
            if isinstance(event, ActionExecuted):
                self.action(index, event)
            elif isinstance(event, UserUttered):
                skip = self.user(event, interpreter)
            else:
                self.steps.append(OtherEvent(self.name, _event_text(event)))
                self.log(event)
        return StoryResult(self.name, tuple(self.steps))


def _entity_values(event: UserUttered) -> tuple[tuple[str, Any], ...]:
    return tuple((str(e.get("entity")), e.get("value")) for e in event.entities)


def _event_text(event: Event) -> str:
    data = event_to_dict(event)
    kind = data.pop("event")
    data.pop("timestamp", None)
    if isinstance(event, SlotSet):
        return f"slot{json.dumps({event.name: event.value}, ensure_ascii=False)}"
    return f"{kind}{json.dumps(data, ensure_ascii=False)}" if data else kind


def evaluate_dialogues(
    core: CoreLike,
    dialogues: Sequence[TrainingDialogue],
    *,
    interpreter: InterpreterLike | None = None,
    e2e: bool = False,
) -> Evaluation:
    """Replay complete dialogues; ``e2e`` parses user text with ``interpreter``.

    Every dialogue counts, also those sharing a state path with another (the
    number of distinct paths is reported beside the total)."""
    if e2e and interpreter is None:
        raise ValueError("end-to-end evaluation needs an interpreter")
    results = tuple(
        _Replay(core, d).run(interpreter if e2e else None) for d in dialogues
    )
    distinct = len({state_path(core.domain, d.events) for d in dialogues})
    return Evaluation(results, end_to_end=e2e, distinct=distinct)


def story_dialogues(
    steps: Sequence[StoryStep], domain: Domain, *, e2e: bool = False
) -> list[TrainingDialogue]:
    """The complete stories to test, every one given: no augmentation.

    Stories with the same state path are all kept (training keeps one of them):
    a test set of 200 stories scores 200. Only continuations of one story through
    checkpoints that reach a block in the same state are followed once; end to
    end, where texts differ, nothing is removed.
    """
    dialogues = generate_dialogues(
        steps,
        domain,
        augmentation_factor=0,
        remove_duplicates=not e2e,
        per_story=True,
    )
    if not dialogues:
        raise TrainingDataError("no stories to evaluate")
    return dialogues


def evaluate_stories(
    core: CoreLike,
    stories: str | Path,
    *,
    interpreter: InterpreterLike | None = None,
    e2e: bool = False,
) -> Evaluation:
    """Evaluate a story file or folder."""
    steps = read_stories(stories, core.domain)
    return evaluate_dialogues(
        core,
        story_dialogues(steps, core.domain, e2e=e2e),
        interpreter=interpreter,
        e2e=e2e,
    )


def evaluate_markdown(
    core: CoreLike,
    text: str,
    *,
    interpreter: InterpreterLike | None = None,
    e2e: bool = False,
    path: str = "<request body>",
) -> Evaluation:
    """Evaluate stories given as Markdown text (``POST /evaluate``)."""
    steps = parse_stories(text, core.domain, path)
    return evaluate_dialogues(
        core,
        story_dialogues(steps, core.domain, e2e=e2e),
        interpreter=interpreter,
        e2e=e2e,
    )
