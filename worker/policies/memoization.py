"""Memoization: replay exactly what the stories did (Rasa Core 0.14, "Policies")."""

from __future__ import annotations

import json
import logging
from collections.abc import Hashable
from collections.abc import Sequence
from typing import Any
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

#: A state window as hashable values: see ``window_tuple``.
WindowTuple = tuple[frozenset[tuple[str, float]] | None, ...]


class MemoizationPolicy(Policy):
    """Predicts the story's action with 1.0 when the last states match exactly."""

    _metadata_attrs = ("n_actions_", "lookup_")
    #: (lookup_, its size, its tuple table): see ``_tuples``.
    _tuple_cache: tuple[Any, int, Any] = (None, -1, None)

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
        self._tuples()
        return self

    @classmethod
    def from_arrays(
        cls,
        params: dict[str, Any],
        arrays: dict[str, np.ndarray],
        metadata: dict[str, Any],
    ) -> Self:
        policy = super().from_arrays(params, arrays, metadata)
        policy._tuples()  # PERF: at load time, not on the first turn
        return policy

    def recall(self, tracker: Tracker) -> int | None:
        """The memorised action index for the tracker's states, if any."""
        return self._recall(tracker, tracker.states(self.max_history))

    def _recall(self, tracker: Tracker, window: Sequence[State]) -> int | None:
        """``recall`` given ``window``, the tracker's ``states(max_history)``."""
        table = self._tuples()
        if table is None:
            return self.lookup_.get(window_key(window, self.max_history))
        key = table.get(window_tuple(window, self.max_history))
        return None if key is None else self.lookup_.get(key)

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

    # ---- lookup keys -------------------------------------------------------------
    def _tuples(self) -> dict[WindowTuple, str] | None:
        """``lookup_``'s keys by ``window_tuple``, rebuilt whenever ``lookup_`` is
        replaced or changes size; None if the tuple form cannot be trusted."""
        lookup = self.lookup_
        source, size, table = self._tuple_cache
        if source is not lookup or size != len(lookup):
            table = tuple_table(lookup)
            self._tuple_cache = (lookup, len(lookup), table)
        return table

    def _key(self, window: Sequence[State]) -> Hashable:
        if self._tuples() is None:
            return window_key(window, self.max_history)
        return window_tuple(window, self.max_history)

    def _action(self, key: Any) -> int | None:
        """The action memorised under a ``_key``."""
        table = self._tuples()
        if table is None:
            return self.lookup_.get(key)
        found = table.get(key)
        return None if found is None else self.lookup_.get(found)


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
        previous = self._key(window)
        events = tracker.window
        starts = [i for i, e in enumerate(events) if isinstance(e, ActionExecuted)]
        for start in starts[1:]:
            suffix = replay(tracker.domain, events[start:], self.max_history)
            key = self._key(suffix.states(self.max_history))
            if key != previous:
                found = self._action(key)
                if found is not None:
                    return found
                previous = key
        return None


def window_tuple(window: Sequence[State | None], max_history: int) -> WindowTuple:
    """``window_key`` as a tuple of frozensets: far cheaper to build and hash."""
    pad: WindowTuple = (None,) * (max_history - len(window))
    return pad + tuple(
        [None if s is None else frozenset(s.items()) for s in window[-max_history:]]
    )


def tuple_table(lookup: dict[str, int]) -> dict[WindowTuple, str] | None:
    """The ``window_tuple`` of every key of ``lookup``, mapped to the key.

    Two windows have equal tuples exactly when their ``window_key`` is equal, as
    long as feature values are floats other than zero and NaN (the only ones a
    state holds); None if some key breaks that, or is not canonical JSON. Equal
    states share one frozenset: windows repeat the same few states.
    """
    table: dict[WindowTuple, str] = {}
    shared: dict[Any, Any] = {None: None}
    for key in lookup:
        try:
            window = json.loads(key)
        except ValueError:
            return None
        if not isinstance(window, list) or not all(map(_plain_state, window)):
            return None
        if json.dumps(window, sort_keys=True, separators=(",", ":")) != key:
            return None
        states = window_tuple(window, len(window))
        table[tuple([shared.setdefault(s, s) for s in states])] = key
    return table


def _plain_state(state: Any) -> bool:
    return state is None or (
        isinstance(state, dict)
        and all(type(v) is float and v == v and v != 0.0 for v in state.values())
    )
