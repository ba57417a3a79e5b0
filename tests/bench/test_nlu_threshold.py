"""bench.nlu.threshold: the fallback threshold chosen on held-back train."""

from __future__ import annotations

import numpy as np
import pytest

from bench.nlu.threshold import choose
from bench.nlu.threshold import held_back_threshold
from bench.nlu.threshold import in_scope_accuracy
from worker.nlu import NLUData
from worker.nlu.training_data import Example

OOS = "out_of_scope"


def test_figures_with_a_threshold():
    gold = ["a", "a", "b", OOS, OOS]
    predicted = ["a", "b", "b", "a", OOS]
    confidence = np.array([0.9, 0.3, 0.2, 0.25, 0.8])
    assert in_scope_accuracy(gold, predicted, confidence, OOS, 0.0) == (2 / 3, 0.5)
    # 0.25 rejects the wrong "b" and the sure "b"; the out-of-scope "a" is caught.
    assert in_scope_accuracy(gold, predicted, confidence, OOS, 0.26) == (1 / 3, 1.0)


def test_the_largest_threshold_within_the_budget_is_chosen():
    # 100 in-scope texts: 90 right (confidences 0.400..0.845), 10 wrong (0.05..0.14).
    right = np.round(0.4 + 0.005 * np.arange(90), 3)
    wrong = np.round(0.05 + 0.01 * np.arange(10), 3)
    gold = ["a"] * 100 + [OOS] * 4
    predicted = ["a"] * 90 + ["b"] * 10 + ["a"] * 4
    confidence = np.concatenate([right, wrong, [0.1, 0.3, 0.42, 0.6]])
    # Rejecting wrong answers costs nothing: up to 0.40 only right ones are lost.
    result = choose(gold, predicted, confidence, OOS, budget=0.0)
    assert result["threshold"] == 0.4
    assert result["held_back"]["out_of_scope_recall"] == 0.5
    # Two points of budget: the two right answers below 0.41 may go, not four.
    assert choose(gold, predicted, confidence, OOS, budget=0.02)["threshold"] == 0.41


def test_held_back_threshold_trains_on_train_only():
    texts = {
        "greet": ["hello", "hi there", "good morning", "hey", "hello friend"],
        "bye": ["bye", "see you", "good night", "farewell", "bye bye"],
        OOS: ["what is the meaning of life", "how tall is a giraffe"],
    }
    examples = tuple(
        Example(text, intent) for intent, items in texts.items() for text in items
    )
    config = {
        "pipeline": [
            {"name": "Tokenizer"},
            {"name": "SparseFeaturizer"},
            {"name": "SoftmaxIntentClassifier", "epochs": 5},
            {"name": "FallbackClassifier", "threshold": 0.9, "fallback_intent": OOS},
        ]
    }
    result = held_back_threshold(config, NLUData(examples), budget=0.0)
    assert result["held_back"]["examples"] == 2
    assert result["threshold"] in [round(0.01 * i, 2) for i in range(61)]
    assert config["pipeline"][3]["threshold"] == 0.9
    with pytest.raises(ValueError, match="no FallbackClassifier"):
        held_back_threshold({"pipeline": config["pipeline"][:3]}, NLUData(examples), 0)
