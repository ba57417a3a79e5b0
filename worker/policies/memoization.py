"""Memoization: replay exactly what the stories did (Rasa Core 0.14, "Policies")."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Self

import numpy as np

from worker.domain import Domain
from worker.events import ActionExecuted
from worker.policies.base import Policy
from worker.policies.base import own_window
from worker.policies.featurizer import training_examples
from worker.policies.featurizer import window_key
from worker.tracker import State
from worker.tracker import Tracker
from worker.training.generator import TrainingDialogue
from worker.training.generator import replay

logger = logging.getLogger(__name__)


class MemoizationPolicy(Policy):
    """Predicts the story's action with 1.0 when the last states match exactly."""

    _metadata_attrs = ("n_actions_", "lookup_")

    def __init__(self, max_history: int = 5, priority: int = 2):
        self.max_history = max_history
        self.priority = priority

    def fit(
        self,
        dialogues: Sequence[TrainingDialogue],
        domain: Domain,
        *,
        validation: Sequence[TrainingDialogue] | None = None,
    ) -> Self:
        # NOTE: glued (augmented) stories are not memorised, as in 0.14: they would
        # memorise story boundaries that never happen in one conversation.
        stories = [d for d in dialogues if not d.is_augmented]
        windows, labels = training_examples(stories, domain, self.max_history)
        lookup: dict[str, int] = {}
        ambiguous: set[str] = set()
        for window, action in zip(windows, labels, strict=True):
            key = window_key(window, self.max_history)
            if key in ambiguous:
                continue
            if lookup.get(key, action) != action:
                # NOTE: the same states lead to different actions in two stories:
                # memorising either would be a guess, so neither is kept.
                ambiguous.add(key)
                del lookup[key]
                continue
            lookup[key] = action
        if ambiguous:
            logger.debug("%d contradicting state windows dropped", len(ambiguous))
        self.lookup_ = lookup
        self.n_actions_ = len(domain.action_names)
        return self

    def recall(self, tracker: Tracker) -> int | None:
        """The memorised action index for the tracker's states, if any."""
        return self._recall(tracker, tracker.states(self.max_history))

    def _recall(self, tracker: Tracker, window: Sequence[State]) -> int | None:
        """``recall`` given ``window``, the tracker's ``states(max_history)``."""
        return self.lookup_.get(window_key(window, self.max_history))

    def predict(self, tracker: Tracker, domain: Domain) -> np.ndarray:
        states = tracker.states(self.max_history)
        return np.array(self.predict_scores(tracker, domain, states))

    def predict_scores(
        self, tracker: Tracker, domain: Domain, states: Sequence[State]
    ) -> list[float]:
        scores = [0.0] * self._n_actions(domain)
        action = self._recall(tracker, own_window(states, self.max_history))
        if action is not None:
            scores[action] = 1.0
        return scores


class AugmentedMemoizationPolicy(MemoizationPolicy):
    """On a miss, forgets the oldest turns (and the slots they set) and retries.

    The retries rebuild fresh trackers from suffixes of ``tracker.window`` that start
    at one of its later ``action`` events, so slots set before that point are
    forgotten, as the original's "back to the future" replays from the second action.
    """

    def _recall(self, tracker: Tracker, window: Sequence[State]) -> int | None:
        found = super()._recall(tracker, window)
        if found is not None:
            return found
        previous = window_key(window, self.max_history)
        events = tracker.window
        starts = [i for i, e in enumerate(events) if isinstance(e, ActionExecuted)]
        for start in starts[1:]:
            suffix = replay(tracker.domain, events[start:], self.max_history)
            key = window_key(suffix.states(self.max_history), self.max_history)
            if key != previous:
                found = self.lookup_.get(key)
                if found is not None:
                    return found
                previous = key
        return None
