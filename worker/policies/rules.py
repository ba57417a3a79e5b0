"""Rule policies that need no training data: fallback and intent mapping (ref. 5.5)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np

from worker.domain import ACTION_BACK
from worker.domain import ACTION_DEFAULT_FALLBACK
from worker.domain import ACTION_LISTEN
from worker.domain import ACTION_RESTART
from worker.domain import Domain
from worker.errors import InvalidConfig
from worker.policies.base import Policy
from worker.tracker import State
from worker.tracker import Tracker
from worker.training.generator import TrainingDialogue

#: Intents that MappingPolicy maps without a ``triggers`` entry (0.14.x final).
BUILTIN_MAPPINGS = {"restart": ACTION_RESTART, "back": ACTION_BACK}


class FallbackPolicy(Policy):
    """Predicts the fallback action when NLU or every other policy is unsure.

    0.14 semantics: a score of 1.0 on low NLU confidence right after a user message,
    otherwise ``core_threshold``, so it wins only when everything else scores lower.
    """

    max_history = 1
    _metadata_attrs = ("n_actions_",)

    def __init__(
        self,
        nlu_threshold: float = 0.3,
        core_threshold: float = 0.3,
        fallback_action_name: str = ACTION_DEFAULT_FALLBACK,
        priority: int = 3,
    ):
        self.nlu_threshold = nlu_threshold
        self.core_threshold = core_threshold
        self.fallback_action_name = fallback_action_name
        self.priority = priority

    def fit(
        self,
        dialogues: Sequence[TrainingDialogue],
        domain: Domain,
        *,
        validation: Sequence[TrainingDialogue] | None = None,
    ) -> Self:
        if self.fallback_action_name not in domain.action_index:
            raise InvalidConfig(
                f"FallbackPolicy: fallback action '{self.fallback_action_name}' "
                "is not in the domain"
            )
        self.n_actions_ = len(domain.action_names)
        return self

    def fallback_list(self, domain: Domain, score: float = 1.0) -> list[float]:
        """``score`` for the fallback action, 0 for every other one."""
        scores = [0.0] * self._n_actions(domain)
        scores[domain.action_index[self.fallback_action_name]] = float(score)
        return scores

    def predict(self, tracker: Tracker, domain: Domain) -> np.ndarray:
        return np.array(self.predict_scores(tracker, domain, ()))

    def predict_scores(
        self, tracker: Tracker, domain: Domain, states: Sequence[State]
    ) -> list[float]:
        latest = tracker.latest_action_name
        if latest == self.fallback_action_name:
            scores = [0.0] * self._n_actions(domain)
            scores[domain.action_index[ACTION_LISTEN]] = 1.0
            return scores
        confidence = (tracker.latest_message.get("intent") or {}).get("confidence")
        if confidence is None:
            # NOTE: no confidence (a client-built message) counts as certain, as in
            # the original, so it never triggers the NLU fallback.
            confidence = 1.0
        if confidence < self.nlu_threshold and latest == ACTION_LISTEN:
            return self.fallback_list(domain)
        return self.fallback_list(domain, self.core_threshold)


class MappingPolicy(Policy):
    """Maps intents straight to actions: ``triggers``, ``restart``, ``back``.

    After the mapped action ran it predicts ``action_listen``. NOTE: the original
    meant to do so only when it had predicted that action itself, but compared the
    wrong policy name, so the branch never fired; we compare the latest action with
    the latest intent's mapping instead, which is what the branch was for.
    """

    max_history = 1
    _metadata_attrs = ("n_actions_",)

    def __init__(self, priority: int = 5):
        self.priority = priority

    def fit(
        self,
        dialogues: Sequence[TrainingDialogue],
        domain: Domain,
        *,
        validation: Sequence[TrainingDialogue] | None = None,
    ) -> Self:
        self.n_actions_ = len(domain.action_names)
        return self

    @staticmethod
    def mapped_action(intent: str | None, domain: Domain) -> str | None:
        props = domain.intent_by_name.get(intent) if intent else None
        if props is not None and props.triggers:
            return props.triggers
        return BUILTIN_MAPPINGS.get(intent) if intent else None

    def predict(self, tracker: Tracker, domain: Domain) -> np.ndarray:
        return np.array(self.predict_scores(tracker, domain, ()))

    def predict_scores(
        self, tracker: Tracker, domain: Domain, states: Sequence[State]
    ) -> list[float]:
        scores = [0.0] * self._n_actions(domain)
        action = self.mapped_action(tracker.latest_intent, domain)
        if action is None or action not in domain.action_index:
            return scores
        if tracker.latest_action_name == ACTION_LISTEN:
            scores[domain.action_index[action]] = 1.0
        elif tracker.latest_action_name == action:
            scores[domain.action_index[ACTION_LISTEN]] = 1.0
        return scores
