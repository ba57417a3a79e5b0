"""Story steps joined into complete training dialogues (as Rasa Core's).

Dialogues are plain event tuples; the tracker that folds them is the server's own, so
the states a policy learns from are exactly the states it will see when serving.
"""

from __future__ import annotations

import json
import logging
import random
from collections import defaultdict
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import replace
from typing import Any

from worker.domain import ACTION_LISTEN
from worker.domain import REQUESTED_SLOT
from worker.domain import Domain
from worker.events import ActionExecuted
from worker.events import Event
from worker.events import SlotSet
from worker.events import UserUttered
from worker.tracker import NeedsHistory
from worker.tracker import Tracker
from worker.training.stories import GENERATED_PREFIX
from worker.training.stories import STORY_START
from worker.training.stories import Checkpoint
from worker.training.stories import Rule
from worker.training.stories import StoryStep

logger = logging.getLogger(__name__)

#: How often one dialogue may pass through the same step: loops are unrolled once.
MAX_STEP_VISITS = 2
#: Augmentation rounds after the normal generation, as in the original.
AUGMENTATION_ROUNDS = 3
#: Enough history to keep every state of a training dialogue.
_ALL_STATES = 1_000_000


@dataclass(frozen=True, slots=True)
class TrainingDialogue:
    """A complete story; ``unpredictable`` are event indices that are no labels.

    A ``rule`` dialogue is a Rasa 2+ rule snippet (its condition events first): only
    the rule policy learns from it, as in Rasa, where machine-learned policies
    train on stories alone.
    """

    name: str
    events: tuple[Event, ...]
    is_augmented: bool = False
    unpredictable: frozenset[int] = frozenset()
    rule: Rule | None = None


@dataclass(frozen=True, slots=True)
class _Walker:
    """A dialogue under construction, walking the story graph."""

    dialogue: TrainingDialogue
    visits: tuple[int, ...] = ()


def replay(domain: Domain, events: Sequence[Event], history: int) -> Tracker:
    """Fold events as the server does; undo/rewind fall back to a full replay."""
    tracker = Tracker("", domain, history)
    for i, event in enumerate(events):
        try:
            tracker.update(event)
        except NeedsHistory:
            tracker = Tracker.from_events("", domain, events[: i + 1], history)
    return tracker


def is_listen(event: Event) -> bool:
    return isinstance(event, ActionExecuted) and event.name == ACTION_LISTEN


def explicit_events(step: StoryStep, domain: Domain) -> tuple[list[Event], int | None]:
    """The step's events with implicit listens and slot fills, and the index of an
    opening action that cannot be predicted (no user turn before it), if any."""
    out: list[Event] = []
    unpredictable = None
    opening = step.starts_story
    for event in step.events:
        if isinstance(event, UserUttered):
            opening = False
            if not out or not is_listen(out[-1]):
                out.append(ActionExecuted(name=ACTION_LISTEN))
            out.append(event)
            out.extend(
                SlotSet(name=name, value=value)
                for name, value in user_fills(domain, event, requested_slot(out))
            )
            continue
        if opening and isinstance(event, ActionExecuted):
            opening = False
            unpredictable = len(out)
        out.append(event)
    if not step.end_checkpoints and (not out or not is_listen(out[-1])):
        out.append(ActionExecuted(name=ACTION_LISTEN))
    return out, unpredictable


def user_fills(
    domain: Domain, event: UserUttered, requested: str | None = None
) -> list[tuple[str, Any]]:
    """The slot fills a story's user message implies (no form is active in it),
    with ``requested`` the ``requested_slot`` its story step set before it, as the
    server fills a message with the conversation's."""
    return domain.auto_fill(
        event.entities,
        intent=event.intent_name,
        requested_slot=requested,
        text=event.text,
    )


def requested_slot(events: Sequence[Event]) -> str | None:
    """The value of ``requested_slot`` after ``events`` (its latest ``SlotSet``)."""
    for event in reversed(events):
        if isinstance(event, SlotSet) and event.name == REQUESTED_SLOT:
            return None if event.value is None else str(event.value)
    return None


def rule_dialogues(
    steps: Sequence[StoryStep], domain: Domain
) -> list[TrainingDialogue]:
    """Each rule as one dialogue: its condition events (no labels), a listen before
    each user message with the slots it fills, its actions, and a final listen
    unless ``wait_for_user_input: false``."""
    out = []
    for step in steps:
        if step.rule is None:
            continue
        events: list[Event] = list(step.rule.condition)
        # NOTE: the condition, and a listen that opens the rule, are no labels:
        # the rule says nothing about what came before it.
        opens_with_user = bool(step.events) and isinstance(step.events[0], UserUttered)
        unpredictable = frozenset(range(len(events) + opens_with_user))
        for event in step.events:
            if isinstance(event, UserUttered):
                if not events or not is_listen(events[-1]):
                    events.append(ActionExecuted(name=ACTION_LISTEN))
                events.append(event)
                events.extend(
                    SlotSet(name=n, value=v)
                    for n, v in user_fills(domain, event, requested_slot(events))
                )
            else:
                events.append(event)
        listens = step.rule.wait_for_user_input and not step.end_checkpoints
        if listens and not (events and is_listen(events[-1])):
            events.append(ActionExecuted(name=ACTION_LISTEN))
        out.append(
            TrainingDialogue(
                step.block_name, tuple(events), False, unpredictable, step.rule
            )
        )
    return out


def story_step(dialogue: TrainingDialogue, domain: Domain) -> StoryStep:
    """A complete dialogue written back as one story (the inverse of
    ``explicit_events``): its implicit listens and slot fills are dropped again, so
    a subset of dialogues can be trained on as if it were a story file."""
    events: list[Event] = []
    fills: list[Event] = []
    last = len(dialogue.events) - 1
    for i, event in enumerate(dialogue.events):
        if fills and event == fills[0]:
            fills.pop(0)
            continue
        fills = []
        if isinstance(event, UserUttered):
            requested = requested_slot(dialogue.events[:i])
            fills = [
                SlotSet(name=n, value=v)
                for n, v in user_fills(domain, event, requested)
            ]
        elif is_listen(event) and (
            i == last or isinstance(dialogue.events[i + 1], UserUttered)
        ):
            continue
        events.append(event)
    return StoryStep(
        dialogue.name, (Checkpoint(STORY_START),), tuple(events), (), dialogue.name
    )


def _states_key(tracker: Tracker) -> str:
    return json.dumps(tracker.states(_ALL_STATES), sort_keys=True)


def state_path(domain: Domain, events: Sequence[Event]) -> str:
    """A dialogue's whole state path as a key: equal keys train and score alike."""
    return _states_key(replay(domain, events, _ALL_STATES))


class _Generator:
    """Carries dialogues from end checkpoints to the steps that start there.

    With ``per_story``, duplicates are only removed among the paths that start at
    the same written story: every story given yields its own dialogues.
    """

    def __init__(
        self,
        steps: Sequence[StoryStep],
        domain: Domain,
        dedupe: bool,
        per_story: bool = False,
    ):
        self.steps = list(steps)
        self.domain = domain
        self.dedupe = dedupe
        self.per_story = per_story
        self.consumers: dict[str, list[int]] = defaultdict(list)
        for i, step in enumerate(self.steps):
            for cp in step.start_checkpoints:
                self.consumers[cp.name].append(i)
        self.expanded = [explicit_events(s, domain) for s in self.steps]
        self.reached: set[str] = set()
        self.seen_at_step: set[tuple[int, int, str]] = set()
        self.seen_ends: set[tuple[int, str]] = set()

    def _origin(self, visits: tuple[int, ...]) -> int:
        """The written story a path started at (-1: all share one namespace)."""
        return visits[0] if self.per_story and visits else -1

    def run(
        self, seeds: list[tuple[_Walker, list[int]]]
    ) -> tuple[list[TrainingDialogue], list[TrainingDialogue]]:
        """Walk from seed (walker, steps) pairs; (story ends, other finished)."""
        ends: list[TrainingDialogue] = []
        finished: list[TrainingDialogue] = []
        queue = deque(seeds)
        while queue:
            walker, step_ids = queue.popleft()
            looped = [i for i in step_ids if walker.visits.count(i) >= MAX_STEP_VISITS]
            if looped and len(looped) == len(step_ids):
                # NOTE: a loop is cut here; the dialogue so far is still a story.
                finished.append(walker.dialogue)
            for i in step_ids:
                out = None if i in looped else self._enter(walker, i)
                if out is None:
                    continue
                step = self.steps[i]
                if not step.end_checkpoints:
                    key = (
                        self._origin((*walker.visits, i)),
                        state_path(self.domain, out.events),
                    )
                    if not self.dedupe or key not in self.seen_ends:
                        self.seen_ends.add(key)
                        ends.append(out)
                    continue
                nxt = _Walker(out, (*walker.visits, i))
                dead_end = False
                for cp in step.end_checkpoints:
                    self.reached.add(cp.name)
                    if self.consumers.get(cp.name):
                        queue.append((nxt, self.consumers[cp.name]))
                    else:
                        dead_end = True
                if dead_end:
                    finished.append(out)
        return ends, finished

    def _enter(self, walker: _Walker, i: int) -> TrainingDialogue | None:
        """The dialogue after step ``i``; None if filtered out or seen before."""
        step = self.steps[i]
        dialogue = walker.dialogue
        tracker = replay(self.domain, dialogue.events, _ALL_STATES)
        if not any(
            all(tracker.slots.get(k) == v for k, v in cp.conditions.items())
            for cp in step.start_checkpoints
        ):
            return None
        if self.dedupe:
            key = (self._origin((*walker.visits, i)), i, _states_key(tracker))
            if key in self.seen_at_step:
                return None
            self.seen_at_step.add(key)
        events, unpredictable = self.expanded[i]
        marks = dialogue.unpredictable
        if unpredictable is not None:
            marks = marks | {len(dialogue.events) + unpredictable}
        names = dialogue.name.split(" > ") if dialogue.name else []
        if step.block_name not in names:
            names.append(step.block_name)
        return TrainingDialogue(
            " > ".join(names),
            (*dialogue.events, *events),
            dialogue.is_augmented,
            frozenset(marks),
        )

    def warn_unused(self) -> None:
        starts = {c.name for s in self.steps for c in s.start_checkpoints}
        if STORY_START not in starts:
            logger.warning("no story block starts without a checkpoint")
        for step in self.steps:
            for cp in step.start_checkpoints:
                if cp.name not in self.reached and cp.name != STORY_START:
                    _warn_checkpoint("start", cp.name, step)
            for cp in step.end_checkpoints:
                if cp.name not in starts:
                    _warn_checkpoint("end", cp.name, step)


def _warn_checkpoint(kind: str, name: str, step: StoryStep) -> None:
    if not name.startswith(GENERATED_PREFIX):
        logger.warning(
            "unsatisfied %s checkpoint '%s' in block '%s' (%s)",
            kind,
            name,
            step.block_name,
            step.source,
        )


def _unlisten(dialogue: TrainingDialogue) -> TrainingDialogue:
    """Drop the story end's ``action_listen`` so a glued story can follow it."""
    last = len(dialogue.events) - 1
    if last < 0 or not is_listen(dialogue.events[last]):
        return replace(dialogue, is_augmented=True)
    return replace(
        dialogue,
        events=dialogue.events[:last],
        is_augmented=True,
        unpredictable=dialogue.unpredictable - {last},
    )


def generate_dialogues(
    steps: Sequence[StoryStep],
    domain: Domain,
    *,
    augmentation_factor: int = 20,
    seed: int = 42,
    remove_duplicates: bool = True,
    per_story: bool = False,
) -> list[TrainingDialogue]:
    """Every dialogue the stories allow, then (seeded) glued stories as augmentation.

    ``remove_duplicates`` keeps one dialogue per state path, as training wants;
    ``per_story`` (evaluation) keeps every written story, even when two stories
    share their state path, and removes duplicates only within one story's
    checkpoint continuations, which still bounds the work.

    NOTE: the original sub-sampled all dialogues to ``10 x augmentation_factor``; we
    cap only the augmented ones, so large story sets keep every written story.
    The glue pairs per round are capped the same way, which bounds the work.
    """
    steps = [s for s in steps if s.rule is None]
    gen = _Generator(steps, domain, remove_duplicates, per_story)
    start_ids = gen.consumers.get(STORY_START, [])
    root = _Walker(TrainingDialogue("", ()))
    gen.reached.add(STORY_START)
    ends, finished = gen.run([(root, start_ids)])
    gen.warn_unused()
    if augmentation_factor <= 0 or not start_ids:
        return [*finished, *ends]
    rng = random.Random(seed)
    cap = 10 * augmentation_factor
    pool = list(ends)
    augmented: list[TrainingDialogue] = []
    for _ in range(AUGMENTATION_ROUNDS):
        picks = rng.sample(pool, min(augmentation_factor, len(pool)))
        pairs = [(p, i) for p in picks for i in start_ids]
        if len(pairs) > cap:
            pairs = [pairs[j] for j in sorted(rng.sample(range(len(pairs)), cap))]
        seeds = [(_Walker(_unlisten(p)), [i]) for p, i in pairs]
        new_ends, new_finished = gen.run(seeds)
        pool.extend(new_ends)
        augmented.extend(new_finished)
        augmented.extend(new_ends)
    if len(augmented) > cap:
        keep = sorted(rng.sample(range(len(augmented)), cap))
        augmented = [augmented[j] for j in keep]
    return [*finished, *ends, *augmented]
