"""bench.nlu.vector_cache: encoder outputs kept on disk, keyed by the weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.nlu import vector_cache
from bench.nlu.vector_cache import cached_vectors
from tests.unit.nlu.conftest import build_tiny_bert
from worker.nlu import NLUData
from worker.nlu import NLUPipeline
from worker.nlu.base import Message
from worker.nlu.encoder import SentenceEncoderFeaturizer
from worker.nlu.tokenizer import Tokenizer
from worker.nlu.training_data import Example

TEXTS = ["hello there", "good morning friend", "bye", "see you later alligator"]
DATA = NLUData(tuple(Example(t, "x") for t in TEXTS))


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("bert"))


def _featurize(bert: Path, texts: list[str], max_length: int = 128) -> list[Message]:
    featurizer = SentenceEncoderFeaturizer(model_path=str(bert), max_length=max_length)
    featurizer.fit([], DATA)
    tokenizer = Tokenizer().fit([], DATA)
    messages = [Message(t) for t in texts]
    for message in messages:
        tokenizer.process(message)
    featurizer.process_batch(messages)
    return messages


def _encodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the texts the real encoder is asked for."""
    calls: list[int] = []
    real = vector_cache._ENCODE

    def counting(self: SentenceEncoderFeaturizer, messages: list[Message]) -> None:
        calls.append(len(messages))
        real(self, messages)

    monkeypatch.setattr(vector_cache, "_ENCODE", counting)
    return calls


def test_cached_vectors_equal_fresh_ones_and_are_encoded_once(
    bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = _featurize(bert, TEXTS)
    calls = _encodes(monkeypatch)
    with cached_vectors(tmp_path):
        first = _featurize(bert, TEXTS[:2])
        both = _featurize(bert, TEXTS)
    assert calls == [2, 2]  # the second batch only encoded the two new texts
    assert len(list(tmp_path.glob("*.npz"))) == 1
    with cached_vectors(tmp_path):  # a new run reads them from disk
        again = _featurize(bert, TEXTS)
    assert calls == [2, 2]
    for a, b, c in zip(fresh, both, again, strict=True):
        assert a.dense_features is not None and a.token_vectors is not None
        assert b.dense_features is not None and c.token_vectors is not None
        np.testing.assert_allclose(b.dense_features, a.dense_features, atol=1e-6)
        np.testing.assert_allclose(c.token_vectors, a.token_vectors, atol=1e-6)
        assert c.token_vectors.shape == (len(c.tokens), 16)
    assert first[0].dense_features is not None


def test_other_settings_get_their_own_store(
    bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _encodes(monkeypatch)
    with cached_vectors(tmp_path):
        _featurize(bert, TEXTS)
        _featurize(bert, TEXTS, max_length=4)
    assert calls == [4, 4]
    assert len(list(tmp_path.glob("*.npz"))) == 2


def test_without_a_folder_nothing_is_patched(bert: Path, tmp_path: Path) -> None:
    config = {
        "pipeline": [
            {"name": "Tokenizer"},
            {"name": "SentenceEncoderFeaturizer", "model_path": str(bert)},
            {"name": "SoftmaxIntentClassifier", "epochs": 2},
        ]
    }
    with cached_vectors(None):
        model = NLUPipeline(config).fit(DATA)
    assert model.parse("hello there")["intent"]["name"] == "x"
    assert not list(tmp_path.iterdir())
