"""Several policies, one decision: Rasa Core 0.14's rules (the highest
confidence wins; a tie goes to the higher priority)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

import numpy as np

from worker.domain import ACTION_LISTEN
from worker.domain import Domain
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


class PolicyEnsemble:
    """Asks every policy and keeps the most confident; ties go to higher priority."""

    def __init__(self, policies: Sequence[Policy]):
        self.policies = list(policies)

    @property
    def names(self) -> list[str]:
        """``policy_<index>_<ClassName>``, the names reported with each prediction."""
        return [self._name(i) for i in range(len(self.policies))]

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
            policy.fit(dialogues, domain, validation=validation)
            if progress is not None:
                progress(name, done + 1, len(self.policies))
        return self

    def predict(self, tracker: Tracker) -> Prediction:
        """The next action; a forced ``followup_action`` is the turn logic's job.

        The highest (top score, priority) wins, the earlier policy on a tie. PERF:
        this runs on every turn, so the states are built once for all policies,
        the scores travel as lists (numpy's per-call overhead would dwarf the work
        on ~20 floats), a policy with a ``score_bound`` runs only if that bound
        could still win, and only the winner's scores become an array.
        """
        domain = tracker.domain
        rejected_name = tracker.rejected_action
        rejected = (
            domain.action_index.get(rejected_name)
            if rejected_name is not None
            else None
        )
        policies = self.policies
        states = tracker.states(self.max_history)
        best: list[float] | None = None
        best_rank = (-1.0, -1)
        best_index = -1
        deferred = []
        for i, policy in enumerate(policies):
            if policy.score_bound is not None:
                policy.check(domain)  # its errors come in order, as if it ran
                deferred.append(i)
                continue
            scores = policy.predict_scores(tracker, domain, states)
            rank = _rank(scores, rejected, policy.priority)
            if rank > best_rank:
                best, best_rank, best_index = scores, rank, i
        for i in deferred:
            policy = policies[i]
            bound = (max(policy.score_bound or 0.0, 0.0), policy.priority)
            if bound < best_rank or (bound == best_rank and best_index < i):
                continue
            scores = policy.predict_scores(tracker, domain, states)
            rank = _rank(scores, rejected, policy.priority)
            if rank > best_rank or (rank == best_rank and i < best_index):
                best, best_rank, best_index = scores, rank, i
        if best is None:
            best = [0.0] * len(domain.action_names)
        best, best_index = self._fallback_override(tracker, best, best_index)
        probabilities, index = _normalised(best)
        return Prediction(
            probabilities=probabilities,
            action=domain.action_names[index],
            confidence=float(probabilities[index]),
            policy=self._name(best_index) if best_index >= 0 else None,
        )

    def _name(self, index: int) -> str:
        return f"policy_{index}_{type(self.policies[index]).__name__}"

    def _fallback_override(
        self, tracker: Tracker, scores: list[float], index: int
    ) -> tuple[list[float], int]:
        """Listening right after a user message is a non-answer: fall back instead.

        Memoization policies are trusted: the stories said so.
        """
        if (
            index < 0
            or isinstance(self.policies[index], MemoizationPolicy)
            or tracker.latest_action_name != ACTION_LISTEN
            or scores.index(max(scores)) != tracker.domain.action_index[ACTION_LISTEN]
        ):
            return scores, index
        for i, policy in enumerate(self.policies):
            if isinstance(policy, FallbackPolicy):
                return policy.fallback_list(tracker.domain), i
        return scores, index


def _rank(
    scores: list[float], rejected: int | None, priority: int
) -> tuple[float, int]:
    """(top score but at least 0, priority); a rejected action's score is zeroed
    first, in the caller's ``scores``. NaN scores (all NaN, as a softmax gives
    them) rank NaN, which never wins, as with numpy's ``max``."""
    if rejected is not None:
        scores[rejected] = 0.0
    top = max(scores) if scores else 0.0
    return (0.0 if top <= 0.0 else top, priority)


def _normalised(scores: list[float]) -> tuple[np.ndarray, int]:
    """``scores / scores.sum()`` (unless that is 0) and its argmax, as numpy gives
    them. PERF: with at most two scores that are not zero (any policy but the
    network) every summation order gives the same total, so Python does it."""
    if len(scores) - scores.count(0.0) > 2:
        array = np.array(scores, dtype=np.float64)
        total = array.sum()
        probabilities = array / total if total else array
        return probabilities, int(probabilities.argmax())
    total = sum(scores)
    if total:
        scores = [v / total for v in scores]
    return np.array(scores, dtype=np.float64), scores.index(max(scores))
