"""The policy contract shared by every dialogue policy.

``__init__`` stores keyword hyperparameters only, ``fit`` learns attributes ending in
``_`` and returns ``self``, and persistence goes through plain arrays plus JSON, so a
model file can never run code.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any
from typing import ClassVar
from typing import Self

import numpy as np

from worker.domain import Domain
from worker.errors import ModelError
from worker.errors import NotFittedError
from worker.tracker import State
from worker.tracker import Tracker
from worker.training.generator import TrainingDialogue


def own_window(states: Sequence[State], max_history: int) -> Sequence[State]:
    """What ``tracker.states(max_history)`` returns, cut from a longer window of
    the same tracker: the ensemble builds the states once for every policy."""
    return states[-max_history:] if max_history > 1 else states[-1:]


class Policy:
    """Scores every domain action for the tracker's current state."""

    #: Learned attributes that ``from_arrays`` restores from JSON metadata.
    _metadata_attrs: ClassVar[tuple[str, ...]] = ()
    #: Learned attributes that ``from_arrays`` restores from arrays.
    _array_attrs: ClassVar[tuple[str, ...]] = ()

    priority: int
    max_history: int
    #: set by ``fit``: the number of actions of the domain it was fitted on
    n_actions_: int
    #: The highest score ``predict`` can give, if known: the ensemble skips the
    #: policy when another one is sure to beat it (worth it for costly policies).
    score_bound: ClassVar[float | None] = None

    @classmethod
    def param_names(cls) -> list[str]:
        params = inspect.signature(cls.__init__).parameters
        return [p for p in params if p != "self"]

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments, read back from the signature (as sklearn)."""
        return {name: getattr(self, name) for name in self.param_names()}

    def fit(
        self,
        dialogues: Sequence[TrainingDialogue],
        domain: Domain,
        *,
        validation: Sequence[TrainingDialogue] | None = None,
    ) -> Self:
        """Learn from ``dialogues``; ``validation`` dialogues are for the policies
        that stop early on them, the others ignore them."""
        raise NotImplementedError

    def predict(self, tracker: Tracker, domain: Domain) -> np.ndarray:
        raise NotImplementedError

    def predict_scores(
        self, tracker: Tracker, domain: Domain, states: Sequence[State]
    ) -> list[float]:
        """``predict`` as a new list of floats, given ``tracker.states(n)`` for an
        ``n`` of at least ``max_history``: the ensemble's per-turn path, where
        numpy's per-call overhead would dwarf the work on ~20 scores."""
        return np.asarray(self.predict(tracker, domain), dtype=np.float64).tolist()

    # ---- persistence ---------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        return {name: getattr(self, name) for name in self._array_attrs}

    def learned_metadata(self) -> dict[str, Any]:
        """The JSON-able learned state (lookups, sizes) that is no array."""
        self._check_fitted()
        return {name: getattr(self, name) for name in self._metadata_attrs}

    @classmethod
    def from_arrays(
        cls,
        params: dict[str, Any],
        arrays: dict[str, np.ndarray],
        metadata: dict[str, Any],
    ) -> Self:
        """A fitted policy rebuilt from ``get_params``, ``to_arrays`` and metadata."""
        policy = cls(**params)
        missing = [a for a in cls._array_attrs if a not in arrays]
        missing += [m for m in cls._metadata_attrs if m not in metadata]
        if missing:
            raise ModelError(f"{cls.__name__}: the model lacks {missing}")
        for name in cls._array_attrs:
            setattr(policy, name, np.asarray(arrays[name]))
        for name in cls._metadata_attrs:
            setattr(policy, name, metadata[name])
        return policy

    # ---- helpers -------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "n_actions_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit first")

    def _scores(self, domain: Domain) -> np.ndarray:
        """All-zero scores, after checking the policy was fitted for this domain."""
        self._check_fitted()
        n = len(domain.action_names)
        if n != self.n_actions_:
            raise ModelError(
                f"{type(self).__name__} was trained for {self.n_actions_} actions, "
                f"the domain has {n}: retrain the model"
            )
        return np.zeros(n)

    def check(self, domain: Domain) -> None:
        """Raise what ``predict`` would for a domain it cannot score."""
        self._n_actions(domain)

    def _n_actions(self, domain: Domain) -> int:
        """The domain's action count, after the checks of ``_scores``."""
        n = len(domain.action_names)
        if n != getattr(self, "n_actions_", None):
            self._scores(domain)
        return n

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"
