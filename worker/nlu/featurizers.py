"""Hashed word and character n-gram features with TF-IDF weighting.

N-grams are hashed with a vectorised 64-bit rolling hash (stable across processes,
unlike ``hash()``), then reduced to ``n_buckets``. Only buckets seen in training are
kept, renumbered as compact columns, so a classifier's weight matrix has one row per
feature actually seen, not per bucket.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Self

import numpy as np

from worker.nlu.base import Component
from worker.nlu.base import Message
from worker.nlu.base import SparseVector
from worker.nlu.base import check_param
from worker.nlu.base import is_int
from worker.nlu.training_data import NLUData

_PRIME = np.uint64(0x100000001B3)
_CHAR_SALT = np.uint64(0x9E3779B97F4A7C15)
_WORD_SALT = np.uint64(0xC2B2AE3D27D4EB4F)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads rolling-hash bits before taking the modulo."""
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def ngram_hashes(codes: np.ndarray, low: int, high: int, salt: np.uint64) -> np.ndarray:
    """Hashes of every n-gram (``low <= n <= high``) of the uint64 symbol array."""
    out = []
    h = codes ^ salt
    for n in range(1, high + 1):
        if n > 1:
            h = h[:-1] * _PRIME ^ codes[n - 1 :]
        if n >= low and h.size:
            out.append(h + np.uint64(n))
    # PERF: one finaliser pass over all orders (it is elementwise): short texts
    # spend their time in numpy calls, not in arithmetic.
    return _mix(np.concatenate(out)) if out else np.empty(0, np.uint64)


class SparseFeaturizer(Component):
    """Word uni/bi-grams plus char n-grams across word boundaries, TF-IDF, L2-normed."""

    requires = frozenset({"tokens"})
    provides = frozenset({"features"})
    fitted_attribute = "idf_"

    def __init__(
        self,
        n_buckets: int = 2**20,
        max_word_ngram: int = 2,
        min_char_ngram: int = 2,
        max_char_ngram: int = 5,
        min_df: int = 1,
        sublinear_tf: bool = True,
    ) -> None:
        self.n_buckets = n_buckets
        self.max_word_ngram = max_word_ngram
        self.min_char_ngram = min_char_ngram
        self.max_char_ngram = max_char_ngram
        self.min_df = min_df
        self.sublinear_tf = sublinear_tf

    def _validate(self) -> None:
        check_param(
            "n_buckets", self.n_buckets, is_int(self.n_buckets, 2), "an int >= 2"
        )
        check_param(
            "max_word_ngram",
            self.max_word_ngram,
            is_int(self.max_word_ngram),
            "an int >= 0",
        )
        check_param(
            "min_char_ngram",
            self.min_char_ngram,
            is_int(self.min_char_ngram, 1),
            "an int >= 1",
        )
        check_param(
            "max_char_ngram",
            self.max_char_ngram,
            is_int(self.max_char_ngram)
            and (
                self.max_char_ngram == 0 or self.max_char_ngram >= self.min_char_ngram
            ),
            "0 (no char n-grams) or an int >= min_char_ngram",
        )
        check_param("min_df", self.min_df, is_int(self.min_df, 1), "an int >= 1")
        check_param(
            "sublinear_tf",
            self.sublinear_tf,
            isinstance(self.sublinear_tf, bool),
            "a bool",
        )

    def buckets(self, tokens: Sequence[str]) -> np.ndarray:
        """Hash buckets of every n-gram of the (already lower-cased) tokens."""
        parts = []
        if self.max_word_ngram and tokens:
            words = np.array([zlib.crc32(t.encode()) for t in tokens], dtype=np.uint64)
            parts.append(ngram_hashes(words, 1, self.max_word_ngram, _WORD_SALT))
        if self.max_char_ngram:
            # NOTE: one padded string gives n-grams inside words and across the
            # word boundary (" a b" grams), which help with short, typo'd inputs.
            text = f" {' '.join(tokens)} "
            codes = np.frombuffer(text.encode("utf-32-le"), np.uint32).astype(np.uint64)
            parts.append(
                ngram_hashes(
                    codes, self.min_char_ngram, self.max_char_ngram, _CHAR_SALT
                )
            )
        if not parts:
            return np.empty(0, np.uint64)
        return np.concatenate(parts) % np.uint64(self.n_buckets)

    def fit(self, messages: Sequence[Message], data: NLUData) -> Self:
        """Keep buckets with document frequency >= ``min_df``; learn smooth IDF."""
        self._validate()
        per_doc = [np.unique(self.buckets(_lower(m))) for m in messages]
        all_buckets = np.concatenate(per_doc) if per_doc else np.empty(0, np.uint64)
        buckets, df = np.unique(all_buckets, return_counts=True)
        keep = df >= self.min_df
        self.buckets_ = buckets[keep]
        n_docs = len(messages)
        self.idf_ = (np.log((1.0 + n_docs) / (1.0 + df[keep])) + 1.0).astype(np.float32)
        return self

    @property
    def n_features_(self) -> int:
        """Width of the feature vectors (kept buckets)."""
        self.check_fitted()
        return int(self.buckets_.size)

    def transform(self, tokens: Sequence[str]) -> SparseVector:
        """TF-IDF vector of lower-cased tokens; buckets unseen in training drop out."""
        self.check_fitted()
        buckets, counts = np.unique(self.buckets(tokens), return_counts=True)
        if not self.buckets_.size:
            empty = np.empty(0, np.int32)
            return SparseVector(empty, empty.astype(np.float32), 0)
        pos = np.searchsorted(self.buckets_, buckets)
        pos[pos == self.buckets_.size] = 0
        known = self.buckets_[pos] == buckets
        cols = pos[known].astype(np.int32)
        tf = counts[known].astype(np.float32)
        if self.sublinear_tf:
            tf = 1.0 + np.log(tf)
        values = tf * self.idf_[cols]
        norm = float(np.sqrt(values @ values))
        if norm > 0:
            values /= norm
        return SparseVector(cols, values.astype(np.float32), self.n_features_)

    def process(self, message: Message) -> None:
        message.features = self.transform(_lower(message))

    def to_arrays(self) -> dict[str, np.ndarray]:
        self.check_fitted()
        return {"buckets_": self.buckets_, "idf_": self.idf_}

    def _set_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.buckets_ = np.asarray(arrays["buckets_"], dtype=np.uint64)
        self.idf_ = np.asarray(arrays["idf_"], dtype=np.float32)
        if self.buckets_.shape != self.idf_.shape:
            raise ValueError("buckets_ and idf_ differ in length")


def _lower(message: Message) -> list[str]:
    return [t.text.lower() for t in message.tokens]
