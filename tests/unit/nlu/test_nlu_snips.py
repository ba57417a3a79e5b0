"""A held-out sanity floor on SNIPS: on the repository's slice (60 training and 20
validation examples per intent) always, and on the whole set when it is fetched.

Benchmark-level numbers belong to ``bench/``; this only catches a broken model.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from tests.data import SNIPS_SLICE
from tests.data import dataset
from worker.nlu import Example
from worker.nlu import NLUData
from worker.nlu import NLUPipeline
from worker.nlu import load_nlu_data

CONFIG = {
    "language": "en",
    "pipeline": [
        {"name": "Tokenizer"},
        {"name": "SparseFeaturizer"},
        {"name": "SoftmaxIntentClassifier"},
        {"name": "PerceptronEntityExtractor", "epochs": 5},
        {"name": "EntitySynonymMapper"},
    ],
}


def held_out_scores(train: NLUData, held_out: Sequence[Example]) -> tuple[float, float]:
    """(intent accuracy, entity F1 on exact spans) of a model fitted on ``train``."""
    model = NLUPipeline(CONFIG).fit(train)
    correct = true_pos = n_pred = n_gold = 0
    for example in held_out:
        result = model.parse(example.text)
        correct += result["intent"]["name"] == example.intent
        pred = {(e["start"], e["end"], e["entity"]) for e in result["entities"]}
        gold = {(e["start"], e["end"], e["entity"]) for e in example.entities}
        true_pos += len(pred & gold)
        n_pred += len(pred)
        n_gold += len(gold)
    return correct / len(held_out), 2 * true_pos / (n_pred + n_gold)


def test_snips_slice_held_out_floor() -> None:
    train = load_nlu_data(SNIPS_SLICE / "train.json")
    held_out = load_nlu_data(SNIPS_SLICE / "val.json").examples
    assert (len(train.examples), len(held_out)) == (420, 140)
    accuracy, f1 = held_out_scores(train, held_out)
    assert accuracy > 0.9
    assert f1 > 0.7


@pytest.mark.data("snips")
def test_snips_held_out_floor() -> None:
    """A fifth of the whole training set, scored on the whole val split."""
    snips = dataset("snips") / "rasa"
    train = load_nlu_data(snips / "train.json")
    subsample = NLUData(train.examples[::5], train.synonyms)
    accuracy, f1 = held_out_scores(
        subsample, load_nlu_data(snips / "val.json").examples
    )
    assert accuracy > 0.9
    assert f1 > 0.7
