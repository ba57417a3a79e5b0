"""The contract every NLU pipeline component follows, and the values they pass on.

A component is sklearn-like: ``__init__`` stores keyword hyperparameters verbatim,
``fit`` validates them, learns attributes ending in ``_`` and returns ``self``, and
``process`` (the predict side) raises `NotFittedError` before ``fit``. Components talk
only through `Message` fields named in ``requires``/``provides``, so the pipeline can
chain any registered component without knowing what it does.
"""

from __future__ import annotations

import inspect
from abc import ABC
from abc import abstractmethod
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import ClassVar
from typing import NamedTuple
from typing import Self

import numpy as np

from worker.errors import InvalidConfig
from worker.errors import NotFittedError
from worker.nlu.training_data import NLUData


class Token(NamedTuple):
    """A token and its character span in the original text.

    A named tuple, not a frozen dataclass: the tokenizer builds one per word on
    every parse, and a tuple is built in half the time.
    """

    text: str
    start: int
    end: int


class SparseVector(NamedTuple):
    """One text's features: sorted column indices and their values, of width ``dim``."""

    indices: np.ndarray
    values: np.ndarray
    dim: int


class Message:
    """One text on its way through the pipeline; each component fills its fields."""

    __slots__ = (
        "dense_features",
        "entities",
        "features",
        "intent",
        "intent_ranking",
        "response_selector",
        "text",
        "token_vectors",
        "tokens",
    )

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[Token] = []
        self.features: SparseVector | None = None
        #: A sentence embedding ``(dim,)`` (float32), from a dense featurizer.
        self.dense_features: np.ndarray | None = None
        #: One contextual vector per token ``(len(tokens), dim)``, if any.
        self.token_vectors: np.ndarray | None = None
        self.intent: dict[str, Any] | None = None
        self.intent_ranking: list[dict[str, Any]] = []
        self.entities: list[dict[str, Any]] = []
        #: Rasa's ``response_selector`` block, from a `ResponseSelector`.
        self.response_selector: dict[str, Any] | None = None


class Component(ABC):
    """Base class: parameter introspection and the fitted check."""

    #: Message fields this component reads / writes (checked when a pipeline is built).
    requires: ClassVar[frozenset[str]] = frozenset()
    #: Fields of which at least one must come from an earlier component.
    requires_any: ClassVar[frozenset[str]] = frozenset()
    provides: ClassVar[frozenset[str]] = frozenset()
    #: A learned attribute that exists exactly when the component is fitted.
    fitted_attribute: ClassVar[str]
    #: Whether ``fit`` sees retrieval intents whole (``faq/ask_name``); every
    #: other component sees only the intent (``faq``).
    reads_response_keys: ClassVar[bool] = False

    @classmethod
    def param_names(cls) -> list[str]:
        """Hyperparameter names, read from the ``__init__`` signature like sklearn."""
        signature = inspect.signature(cls.__init__)
        return [name for name in signature.parameters if name != "self"]

    def get_params(self) -> dict[str, Any]:
        """The hyperparameters as passed to ``__init__`` (JSON-serialisable)."""
        return {name: getattr(self, name) for name in self.param_names()}

    def check_fitted(self) -> None:
        """Raise `NotFittedError` unless ``fit`` (or ``from_arrays``) has run."""
        if not hasattr(self, self.fitted_attribute):
            raise NotFittedError(
                f"{type(self).__name__} is not fitted yet; call fit() first"
            )

    @abstractmethod
    def fit(self, messages: Sequence[Message], data: NLUData) -> Self:
        """Learn from ``messages`` (upstream fields filled), aligned with ``data``."""

    @abstractmethod
    def process(self, message: Message) -> None:
        """Fill this component's fields of one message (the per-turn hot path)."""

    def process_batch(self, messages: Sequence[Message]) -> None:
        """`process` for many messages; components that batch well override it."""
        for message in messages:
            self.process(message)

    @abstractmethod
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Learned state as arrays of numbers or fixed-width ``str`` (no objects)."""

    @abstractmethod
    def _set_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Restore learned state from `to_arrays` output."""

    @classmethod
    def from_arrays(
        cls, params: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
    ) -> Self:
        """Rebuild a fitted component without training (model loading)."""
        component = cls(**params)
        component._set_arrays(arrays)
        return component


def check_param(name: str, value: Any, valid: bool, expected: str) -> None:
    """Raise `InvalidConfig` for a bad hyperparameter (called from ``fit``)."""
    if not valid:
        raise InvalidConfig(f"invalid {name}={value!r}: expected {expected}")


def is_int(value: Any, minimum: int = 0) -> bool:
    """True for a real int (not bool) of at least ``minimum``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def is_number(value: Any, low: float, high: float = float("inf")) -> bool:
    """True for an int or float (not bool) in ``[low, high]``."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and low <= value <= high
    )
