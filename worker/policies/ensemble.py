"""Several policies, one decision: the 0.14 rules of reference 5.6."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

import numpy as np

from worker.domain import ACTION_LISTEN
from worker.domain import Domain
from worker.events import ActionExecutionRejected
from worker.policies.base import Policy
from worker.policies.memoization import MemoizationPolicy
from worker.policies.rules import FallbackPolicy
from worker.tracker import Tracker
from worker.training.generator import TrainingDialogue

logger = logging.getLogger(__name__)

#: Called as ``progress(policy_name, done, total)`` after each policy is fitted.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True, eq=False)
class Prediction:
    """The ensemble's answer: normalised scores and the action they choose."""

    probabilities: np.ndarray
    action: str
    confidence: float
    policy: str | None


def _takes_validation(policy: Policy) -> bool:
    return "validation" in inspect.signature(policy.fit).parameters


class PolicyEnsemble:
    """Asks every policy and keeps the most confident; ties go to higher priority."""

    def __init__(self, policies: Sequence[Policy]):
        self.policies = list(policies)

    @property
    def names(self) -> list[str]:
        """``policy_<index>_<ClassName>``, the names reported with each prediction."""
        return [f"policy_{i}_{type(p).__name__}" for i, p in enumerate(self.policies)]

    @property
    def max_history(self) -> int:
        """The most states any policy reads: how many the tracker must keep."""
        return max((p.max_history for p in self.policies), default=1)

    def fit(
        self,
        dialogues: Sequence[TrainingDialogue],
        domain: Domain,
        progress: Progress | None = None,
        *,
        validation: Sequence[TrainingDialogue] | None = None,
    ) -> Self:
        """Fit every policy; ``validation`` dialogues go to the policies that use
        them (early stopping), the others never see them."""
        priorities = [p.priority for p in self.policies]
        if len(set(priorities)) < len(priorities):
            logger.warning(
                "policies share a priority (%s); ties go to the earlier one",
                ", ".join(
                    f"{n}={p}" for n, p in zip(self.names, priorities, strict=True)
                ),
            )
        for done, (name, policy) in enumerate(
            zip(self.names, self.policies, strict=True)
        ):
            if validation is not None and _takes_validation(policy):
                policy.fit(dialogues, domain, validation=validation)
            else:
                policy.fit(dialogues, domain)
            if progress is not None:
                progress(name, done + 1, len(self.policies))
        return self

    def predict(self, tracker: Tracker) -> Prediction:
        """The next action; a forced ``followup_action`` is the turn logic's job."""
        domain = tracker.domain
        latest = tracker.last_event
        rejected = (
            domain.action_index.get(latest.name)
            if isinstance(latest, ActionExecutionRejected)
            else None
        )
        best: np.ndarray | None = None
        best_rank = (-1.0, -1)
        best_index = -1
        for i, policy in enumerate(self.policies):
            scores = np.asarray(policy.predict(tracker, domain), dtype=np.float64)
            if rejected is not None:
                scores[rejected] = 0.0
            rank = (float(scores.max(initial=0.0)), policy.priority)
            if rank > best_rank:
                best, best_rank, best_index = scores, rank, i
        if best is None:
            best = np.zeros(len(domain.action_names))
        best, best_index = self._fallback_override(tracker, best, best_index)
        total = best.sum()
        probabilities = best / total if total else best
        index = int(np.argmax(probabilities))
        return Prediction(
            probabilities=probabilities,
            action=domain.action_names[index],
            confidence=float(probabilities[index]),
            policy=self.names[best_index] if best_index >= 0 else None,
        )

    def _fallback_override(
        self, tracker: Tracker, scores: np.ndarray, index: int
    ) -> tuple[np.ndarray, int]:
        """Listening right after a user message is a non-answer: fall back instead.

        Memoization policies are trusted: the stories said so.
        """
        if (
            index < 0
            or isinstance(self.policies[index], MemoizationPolicy)
            or tracker.latest_action_name != ACTION_LISTEN
            or int(np.argmax(scores)) != tracker.domain.action_index[ACTION_LISTEN]
        ):
            return scores, index
        for i, policy in enumerate(self.policies):
            if isinstance(policy, FallbackPolicy):
                return policy.fallback_scores(tracker.domain), i
        return scores, index
