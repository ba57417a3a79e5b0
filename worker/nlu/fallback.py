"""Out-of-scope handling by confidence: low-confidence intents become a fallback.

A trained ``out_of_scope`` class (CLINC150 style) catches what looks like its
training examples; this threshold catches the rest, texts unlike any class. The
threshold is a user setting, not tuned: a handful of out-of-scope examples makes
any tuned value noisy.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Self

import numpy as np

from worker.nlu.base import Component
from worker.nlu.base import Message
from worker.nlu.base import check_param
from worker.nlu.base import is_number
from worker.nlu.training_data import NLUData


class FallbackClassifier(Component):
    """Replaces the intent by ``fallback_intent`` when the classifier is unsure.

    Unsure means the top confidence is below ``threshold``, or (with
    ``ambiguity_threshold``) the top two are closer than that. The fallback goes
    first in the ranking with ``confidence = 1 - top confidence``; the original
    prediction stays in the ranking below it, as in Rasa's FallbackClassifier.
    """

    requires = frozenset({"intent"})
    provides = frozenset({"intent", "intent_ranking"})
    fitted_attribute = "fitted_"

    def __init__(
        self,
        threshold: float = 0.3,
        fallback_intent: str = "nlu_fallback",
        ambiguity_threshold: float | None = None,
    ) -> None:
        self.threshold = threshold
        self.fallback_intent = fallback_intent
        self.ambiguity_threshold = ambiguity_threshold

    def fit(self, messages: Sequence[Message], data: NLUData) -> Self:
        """Check the settings; nothing is learned."""
        check_param(
            "threshold",
            self.threshold,
            is_number(self.threshold, 0.0, 1.0),
            "in [0, 1]",
        )
        check_param(
            "fallback_intent",
            self.fallback_intent,
            isinstance(self.fallback_intent, str) and bool(self.fallback_intent),
            "a non-empty string",
        )
        check_param(
            "ambiguity_threshold",
            self.ambiguity_threshold,
            self.ambiguity_threshold is None
            or is_number(self.ambiguity_threshold, 0.0, 1.0),
            "null or in [0, 1]",
        )
        self.fitted_ = True
        return self

    def is_unsure(self, message: Message) -> bool:
        """True when the message's intent should become the fallback."""
        if not message.intent or message.intent.get("name") is None:
            return False
        top = float(message.intent["confidence"])
        if top < self.threshold:
            return True
        ranking = message.intent_ranking
        if self.ambiguity_threshold is not None and len(ranking) > 1:
            return top - float(ranking[1]["confidence"]) < self.ambiguity_threshold
        return False

    def process(self, message: Message) -> None:
        self.check_fitted()
        if not self.is_unsure(message):
            return
        assert message.intent is not None
        fallback = {
            "name": self.fallback_intent,
            "confidence": 1.0 - float(message.intent["confidence"]),
        }
        others = [r for r in message.intent_ranking if r["name"] != fallback["name"]]
        message.intent = dict(fallback)
        message.intent_ranking = [fallback, *others]

    def to_arrays(self) -> dict[str, np.ndarray]:
        self.check_fitted()
        return {}

    def _set_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.fit([], NLUData())
