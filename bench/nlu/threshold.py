"""The out-of-scope fallback threshold, chosen on a held-back part of train.

Val has 100 out-of-scope texts in CLINC150: a threshold tuned on them is tuned on
noise, and a test split with ten times as many told us so. Instead, the pipeline
is trained on 80% of the train split (stratified, seed 0) and parses the other
20%; the threshold is the largest one whose in-scope accuracy there stays within
``budget`` of the accuracy without a threshold. Only in-scope texts decide (about
3,000 of them in CLINC150), so the choice rests on many examples; the recall it
buys is then measured on val like any other figure.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np

from worker.nlu import NLUData
from worker.nlu import NLUPipeline
from worker.nlu.evaluation import stratified_split

HELD_BACK_FRACTION = 0.2
HELD_BACK_SEED = 0
#: Candidate thresholds: 0, 0.01, ..., 0.6.
GRID = tuple(round(0.01 * i, 2) for i in range(61))


def fallback_step(config: dict[str, Any]) -> dict[str, Any] | None:
    """The pipeline's ``FallbackClassifier`` entry, if it has one."""
    steps = [s for s in config["pipeline"] if s.get("name") == "FallbackClassifier"]
    return steps[0] if steps else None


def in_scope_accuracy(
    gold: Sequence[str],
    predicted: Sequence[str],
    confidence: np.ndarray,
    fallback: str,
    threshold: float,
) -> tuple[float, float | None]:
    """``(in-scope accuracy, out-of-scope recall or None)`` with ``threshold``."""
    labels = np.array(gold)
    guess = np.where(confidence < threshold, fallback, np.array(predicted))
    inside = labels != fallback
    accuracy = float((guess[inside] == labels[inside]).mean()) if inside.any() else 0.0
    recall = float((guess[~inside] == fallback).mean()) if (~inside).any() else None
    return accuracy, recall


def choose(
    gold: Sequence[str],
    predicted: Sequence[str],
    confidence: np.ndarray,
    fallback: str,
    budget: float,
) -> dict[str, Any]:
    """The largest threshold of `GRID` within ``budget`` of the in-scope accuracy
    without one, and the held-back figures at 0 and at that threshold."""
    base, base_recall = in_scope_accuracy(gold, predicted, confidence, fallback, 0.0)
    chosen = max(
        t
        for t in GRID
        if in_scope_accuracy(gold, predicted, confidence, fallback, t)[0]
        >= base - budget
    )
    accuracy, recall = in_scope_accuracy(gold, predicted, confidence, fallback, chosen)
    return {
        "threshold": chosen,
        "budget": budget,
        "held_back": {
            "examples": len(gold),
            "out_of_scope_examples": int(sum(g == fallback for g in gold)),
            "in_scope_accuracy_without": base,
            "out_of_scope_recall_without": base_recall,
            "in_scope_accuracy": accuracy,
            "out_of_scope_recall": recall,
        },
    }


def held_back_threshold(
    config: dict[str, Any], train: NLUData, budget: float
) -> dict[str, Any]:
    """Train on 80% of ``train`` with no threshold, parse the rest, `choose`."""
    step = fallback_step(config)
    if step is None:
        raise ValueError("the pipeline has no FallbackClassifier to set")
    fallback = step.get("fallback_intent", "nlu_fallback")
    trial = copy.deepcopy(config)
    fallback_step(trial)["threshold"] = 0.0  # type: ignore[index]
    rest, held = stratified_split(train, HELD_BACK_FRACTION, HELD_BACK_SEED)
    pipeline = NLUPipeline(trial).fit(rest)
    parsed = pipeline.parse_batch([ex.text for ex in held.examples])
    gold = [str(ex.intent) for ex in held.examples]
    predicted = [str(p["intent"]["name"]) for p in parsed]
    confidence = np.array([p["intent"]["confidence"] for p in parsed])
    return choose(gold, predicted, confidence, fallback, budget)
