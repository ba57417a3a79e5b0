"""A held-out sanity floor on SNIPS (subsampled so the unit suite stays fast).

Benchmark-level numbers belong to ``bench/``; this only catches a broken model.
"""

from __future__ import annotations

import pytest

from tests.data import SHARED_DATA
from worker.nlu import NLUData
from worker.nlu import NLUPipeline
from worker.nlu import load_nlu_data

SNIPS = SHARED_DATA / "snips" / "rasa"
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

pytestmark = pytest.mark.skipif(not SNIPS.is_dir(), reason="SNIPS data not present")


def test_snips_held_out_floor() -> None:
    train = load_nlu_data(SNIPS / "train.json")
    subsample = NLUData(train.examples[::5], train.synonyms)
    if (SNIPS / "val.json").is_file():
        held_out = load_nlu_data(SNIPS / "val.json").examples
    else:
        held_out = train.examples[1::25]
    model = NLUPipeline(CONFIG).fit(subsample)

    correct = true_pos = n_pred = n_gold = 0
    for example in held_out:
        result = model.parse(example.text)
        correct += result["intent"]["name"] == example.intent
        pred = {(e["start"], e["end"], e["entity"]) for e in result["entities"]}
        gold = {(e["start"], e["end"], e["entity"]) for e in example.entities}
        true_pos += len(pred & gold)
        n_pred += len(pred)
        n_gold += len(gold)
    accuracy = correct / len(held_out)
    f1 = 2 * true_pos / (n_pred + n_gold)
    assert accuracy > 0.9
    assert f1 > 0.7
