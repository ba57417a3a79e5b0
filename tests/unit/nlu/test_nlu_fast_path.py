"""The per-message fast paths against plain references: the vectorised n-gram
hashing against the hash written out per n-gram, and `parse` against `parse_batch`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from worker.nlu import NLUPipeline
from worker.nlu import SparseFeaturizer
from worker.nlu import load_nlu_data

_MASK = (1 << 64) - 1
_PRIME = 0x100000001B3
_CHAR_SALT = 0x9E3779B97F4A7C15
_WORD_SALT = 0xC2B2AE3D27D4EB4F

TOKENS = [
    [],
    ["a"],
    ["yes"],
    ["i", "am", "feeling", "great"],
    ["ok"] * 7,
    ["héllo", "wörld", "😀", "日本語", ","],
    ["a", "longer", "text", "of", "many", "words"] * 6,
]


def _mix(h: int) -> int:
    h ^= h >> 30
    h = h * 0xBF58476D1CE4E5B9 & _MASK
    h ^= h >> 27
    h = h * 0x94D049BB133111EB & _MASK
    return h ^ h >> 31


def _ngram_hashes(codes: list[int], salt: int, low: int, high: int) -> Iterator[int]:
    for i in range(len(codes)):
        h = codes[i] ^ salt
        for n in range(1, min(high, len(codes) - i) + 1):
            if n > 1:
                h = h * _PRIME & _MASK ^ codes[i + n - 1]
            if n >= low:
                yield _mix(h + n & _MASK)


def _reference_buckets(featurizer: SparseFeaturizer, tokens: list[str]) -> list[int]:
    """The hash of every n-gram, one at a time."""
    hashes = []
    if featurizer.max_word_ngram and tokens:
        words = [zlib.crc32(t.encode()) for t in tokens]
        hashes += _ngram_hashes(words, _WORD_SALT, 1, featurizer.max_word_ngram)
    if featurizer.max_char_ngram:
        chars = [ord(c) for c in f" {' '.join(tokens)} "]
        low, high = featurizer.min_char_ngram, featurizer.max_char_ngram
        hashes += _ngram_hashes(chars, _CHAR_SALT, low, high)
    return sorted(h % featurizer.n_buckets for h in hashes)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"max_word_ngram": 0},
        {"max_char_ngram": 0},
        {"max_word_ngram": 3, "min_char_ngram": 1, "max_char_ngram": 3},
        {"n_buckets": 1000, "max_word_ngram": 1, "min_char_ngram": 4},
        {"max_word_ngram": 0, "max_char_ngram": 0},
        {"max_char_ngram": 20},
    ],
)
def test_buckets_match_the_hash_of_each_ngram(params: dict[str, Any]) -> None:
    featurizer = SparseFeaturizer(**params)
    for tokens in TOKENS:
        buckets = featurizer.buckets(tokens)
        assert buckets.dtype == np.uint64
        assert sorted(buckets.tolist()) == _reference_buckets(featurizer, tokens)


@pytest.fixture(scope="module")
def model(nlu_md: Path) -> NLUPipeline:
    return NLUPipeline().fit(load_nlu_data(nlu_md))


def test_parse_equals_parse_batch(model: NLUPipeline) -> None:
    texts = [
        "hello there",
        "show me thai food in Paris",
        "i want Chinese food near Rome please",
        "bye bye bye",
        "zzz",
        "Berlin",
    ]
    batch = model.parse_batch(texts)
    for text, expected in zip(texts, batch, strict=True):
        single = model.parse(text)
        assert single.keys() == expected.keys()
        ranking = single["intent_ranking"]
        assert [r["name"] for r in ranking] == [
            r["name"] for r in expected["intent_ranking"]
        ]
        assert [r["confidence"] for r in ranking] == pytest.approx(
            [r["confidence"] for r in expected["intent_ranking"]], abs=1e-6
        )
        assert single["intent"] == ranking[0]
        assert single["entities"] == [
            {**e, "confidence": pytest.approx(e["confidence"], abs=1e-6)}
            for e in expected["entities"]
        ]
    assert any(result["entities"] for result in batch)
