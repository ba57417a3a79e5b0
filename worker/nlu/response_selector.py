"""Rasa's ResponseSelector: which answer of a retrieval intent (``faq/ask_name``)
a text asks for.

The intent classifier learns ``faq``; this learns the response keys, from the
retrieval intents' examples only, with the same softmax model. Its output is Rasa
3's ``response_selector`` block, which the retrieval action ``utter_faq`` reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import Self

import numpy as np

from worker.nlu.base import Message
from worker.nlu.base import check_param
from worker.nlu.classifier import SoftmaxIntentClassifier
from worker.nlu.training_data import RETRIEVAL_DELIMITER
from worker.nlu.training_data import NLUData
from worker.nlu.training_data import base_intent

#: The block's key when one selector serves every retrieval intent.
DEFAULT_SELECTOR = "default"
#: What the softmax learns; absent when there was nothing to learn.
_LEARNED = ("classes_", "_class_names", "coef_", "intercept_", "dense_coef_")


class ResponseSelector(SoftmaxIntentClassifier):
    """A softmax over response keys; one per ``retrieval_intent``, or one for all.

    Without retrieval intents in the data it learns nothing and adds nothing, as
    Rasa's: configs copied from ``rasa init`` list it either way.
    """

    provides = frozenset({"response_selector"})
    fitted_attribute = "retrieval_intents_"
    #: The pipeline gives this component the full ``faq/ask_name`` labels.
    reads_response_keys = True

    def __init__(
        self,
        retrieval_intent: str | None = None,
        epochs: int = 30,
        batch_size: int = 64,
        learning_rate: float = 0.02,
        l2: float = 1e-5,
        class_weight: str | None = "balanced",
        validation_fraction: float = 0.1,
        min_validation_examples: int = 1000,
        patience: int = 3,
        ranking_length: int = 10,
        random_state: int = 0,
        dense_scale: float = 1.0,
        label_smoothing: float = 0.0,
        n_models: int = 1,
    ) -> None:
        super().__init__(
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            l2=l2,
            class_weight=class_weight,
            validation_fraction=validation_fraction,
            min_validation_examples=min_validation_examples,
            patience=patience,
            ranking_length=ranking_length,
            random_state=random_state,
            dense_scale=dense_scale,
            label_smoothing=label_smoothing,
            n_models=n_models,
        )
        self.retrieval_intent = retrieval_intent

    @property
    def selector_key(self) -> str:
        return self.retrieval_intent or DEFAULT_SELECTOR

    def fit(self, messages: Sequence[Message], data: NLUData) -> Self:
        """Learn the response keys of the retrieval intent's (or all) examples."""
        check_param(
            "retrieval_intent",
            self.retrieval_intent,
            self.retrieval_intent is None
            or (isinstance(self.retrieval_intent, str) and bool(self.retrieval_intent)),
            "an intent name or null",
        )
        rows = [
            (message, example)
            for message, example in zip(messages, data.examples, strict=True)
            if example.intent is not None
            and RETRIEVAL_DELIMITER in example.intent
            and self.retrieval_intent in (None, base_intent(example.intent))
        ]
        for stale in (*_LEARNED, "_responses_cache"):
            self.__dict__.pop(stale, None)  # NOTE: a refit may find no examples
        self.retrieval_intents_ = np.array(data.retrieval_intents, dtype=str)
        keys = {f"utter_{ex.intent}" for _, ex in rows}
        # NOTE: JSON text, so that the model's arrays stay numbers and strings.
        self.responses_ = np.array(
            [
                json.dumps({k: v})
                for k, v in sorted(data.responses.items())
                if k in keys
            ],
            dtype=str,
        )
        if rows:
            subset = NLUData(examples=tuple(example for _, example in rows))
            super().fit([message for message, _ in rows], subset)
        return self

    def process(self, message: Message) -> None:
        self.check_fitted()
        if not hasattr(self, "coef_"):
            return
        intent, ranking = message.intent, message.intent_ranking
        super().process(message)
        self._publish(message, intent, ranking)

    def process_batch(self, messages: Sequence[Message]) -> None:
        self.check_fitted()
        if not hasattr(self, "coef_") or not messages:
            return
        before = [(m.intent, m.intent_ranking) for m in messages]
        super().process_batch(messages)
        for message, (intent, ranking) in zip(messages, before, strict=True):
            self._publish(message, intent, ranking)

    def _publish(
        self,
        message: Message,
        intent: dict[str, Any] | None,
        ranking: list[dict[str, Any]],
    ) -> None:
        """Move the softmax's answer into ``response_selector``, restoring the
        intent the classifier gave (the parent class writes ``intent``)."""
        assert message.intent is not None
        top = message.intent
        key = top["name"]
        utter = f"utter_{key}"
        block = message.response_selector or {
            "all_retrieval_intents": self._retrieval_intents
        }
        block[self.selector_key] = {
            "response": {
                "id": None,
                "responses": self._responses.get(utter, []),
                "response_templates": self._responses.get(utter, []),
                "confidence": top["confidence"],
                "intent_response_key": key,
                "utter_action": utter,
                "template_name": utter,
            },
            "ranking": [
                {
                    "id": None,
                    "confidence": r["confidence"],
                    "intent_response_key": r["name"],
                }
                for r in message.intent_ranking
            ],
        }
        message.response_selector = block
        message.intent, message.intent_ranking = intent, ranking

    def to_arrays(self) -> dict[str, np.ndarray]:
        self.check_fitted()
        arrays = {
            "retrieval_intents_": self.retrieval_intents_,
            "responses_": self.responses_,
        }
        if hasattr(self, "coef_"):
            arrays.update(super().to_arrays())
        return arrays

    def _set_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.__dict__.pop("_responses_cache", None)
        self.retrieval_intents_ = np.asarray(arrays["retrieval_intents_"], dtype=str)
        self.responses_ = np.asarray(arrays["responses_"], dtype=str)
        if "coef_" in arrays:
            super()._set_arrays(arrays)

    @property
    def _retrieval_intents(self) -> list[str]:
        return self.retrieval_intents_.tolist()

    @property
    def _responses(self) -> dict[str, list[dict[str, Any]]]:
        cached = getattr(self, "_responses_cache", None)
        if cached is None:
            cached = {}
            for text in self.responses_.tolist():
                cached.update(json.loads(text))
            self._responses_cache = cached
        return cached
