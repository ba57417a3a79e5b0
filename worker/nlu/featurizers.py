"""Hashed word and character n-gram features with TF-IDF weighting.

N-grams are hashed with a vectorised 64-bit rolling hash (stable across processes,
unlike ``hash()``), then reduced to ``n_buckets``. Only buckets seen in training are
kept, renumbered as compact columns, so a classifier's weight matrix has one row per
feature actually seen, not per bucket.
"""

from __future__ import annotations

import functools
import math
import struct
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

# PERF: 0-d arrays, not numpy scalars: a ufunc converts a scalar operand on every
# call, which costs as much as the arithmetic on a short text.
_PRIME = np.array(0x100000001B3, np.uint64)
_CHAR_SALT = np.array(0x9E3779B97F4A7C15, np.uint64)
#: Turns the char salt into the word salt (0xC2B2AE3D27D4EB4F) by one more xor.
_CHAR_TO_WORD_SALT = np.array(0x9E3779B97F4A7C15 ^ 0xC2B2AE3D27D4EB4F, np.uint64)
_UINT32 = np.dtype("<u4")
_ONE = np.array(1.0, np.float32)
_SHIFTS = [np.array(n, np.uint64) for n in (30, 27, 31)]
_FACTORS = [np.array(n, np.uint64) for n in (0xBF58476D1CE4E5B9, 0x94D049BB133111EB)]


@functools.lru_cache(maxsize=16)
def _orders(top: int) -> np.ndarray:
    """The column ``1..top``: each row of n-gram hashes gets its order added."""
    orders = np.arange(1, top + 1, dtype=np.uint64)[:, None]
    orders.flags.writeable = False
    return orders


@functools.lru_cache(maxsize=64)
def _fitting_ngrams(
    max_word: int, min_char: int, max_char: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the wanted n-grams, for words and for characters.

    Row ``n - 1`` is order ``n``; column ``k`` a start ``k`` symbols before the end
    of the words (or characters), where an n-gram fits if ``k >= n``. Reversed
    and cut to a text's length, a mask matches its row of n-gram hashes.
    """
    orders = np.arange(1, max(max_word, max_char) + 1)[:, None]
    fits = np.arange(width) >= orders
    masks = (
        fits & (orders <= max_word),
        fits & (min_char <= orders) & (orders <= max_char),
    )
    for mask in masks:
        mask.flags.writeable = False
    return masks


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, in place: spreads rolling-hash bits before the modulo."""
    h ^= h >> _SHIFTS[0]
    h *= _FACTORS[0]
    h ^= h >> _SHIFTS[1]
    h *= _FACTORS[1]
    h ^= h >> _SHIFTS[2]
    return h


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
        """Hash buckets of every n-gram of the (already lower-cased) tokens.

        The n-gram of symbols ``c[0..n-1]`` hashes to ``mix(h + n)``, where
        ``h = c[0] ^ salt`` and then ``h = h * prime ^ c[k]`` for each next symbol.
        """
        words = [zlib.crc32(t.encode()) for t in tokens] if self.max_word_ngram else []
        # NOTE: one padded string gives n-grams inside words and across the word
        # boundary (" a b" grams), which help with short, typo'd inputs.
        text = f" {' '.join(tokens)} " if self.max_char_ngram else ""
        n_words, n_chars = len(words), len(text)
        size, top = n_words + n_chars, max(self.max_word_ngram, self.max_char_ngram)
        if not size or not top:
            return np.empty(0, np.uint64)
        # PERF: short texts spend their time in numpy calls, not in arithmetic, so
        # words and characters share one pass per n-gram order over the symbols
        # (word crc32s, then code points, then zeros to read past the end): row
        # n - 1 of ``grams`` holds the hash of the n-gram at each position. One
        # boolean mask then keeps the n-grams that fit in the words or in the
        # characters, of the wanted orders.
        symbols = struct.pack(f"<{n_words}I", *words) + text.encode("utf-32-le")
        codes = np.frombuffer(symbols + bytes(4 * top), _UINT32).astype(np.uint64)
        grams = np.empty((top, size), np.uint64)
        h = grams[0]
        np.bitwise_xor(codes[:size], _CHAR_SALT, h)
        h[:n_words] ^= _CHAR_TO_WORD_SALT
        for n in range(2, top + 1):
            row = grams[n - 1]
            np.multiply(h, _PRIME, row)
            row ^= codes[n - 1 : n - 1 + size]
            h = row
        grams += _orders(top)
        word_fits, char_fits = _fitting_ngrams(
            self.max_word_ngram,
            self.min_char_ngram,
            self.max_char_ngram,
            1 << max(n_words, n_chars).bit_length(),
        )
        keep = np.concatenate(
            (word_fits[:, n_words:0:-1], char_fits[:, n_chars:0:-1]), axis=1
        )
        hashes = _mix(grams[keep])
        hashes %= self.n_buckets
        return hashes

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
        known = self.buckets_
        if not known.size:
            empty = np.empty(0, np.int32)
            return SparseVector(empty, empty.astype(np.float32), 0)
        # PERF: a text has a few dozen n-grams, so a few whole-array steps on
        # the sorted hashes replace np.unique, and the norm is ndarray.dot
        # (same BLAS sdot as ``@``, less dispatch).
        hashes = self.buckets(tokens)
        hashes.sort()
        # Searching all but the last bucket keeps every position in range.
        pos = known[:-1].searchsorted(hashes)
        columns = pos[known[pos] == hashes]
        repeats = columns[1:] == columns[:-1]
        if np.count_nonzero(repeats):
            # Run boundaries: the first of each run of equal columns, and the end.
            bounds = np.empty(columns.size + 1, bool)
            bounds[0] = bounds[-1] = True
            np.logical_not(repeats, bounds[1:-1])
            edges = bounds.nonzero()[0]
            tf = (edges[1:] - edges[:-1]).astype(np.float32)
            columns = columns[edges[:-1]]
            if self.sublinear_tf:
                np.log(tf, tf)
                tf += _ONE
            values = tf * self.idf_[columns]
        else:
            values = self.idf_[columns]
        norm = math.sqrt(values.dot(values))
        if norm > 0:
            values /= norm
        return SparseVector(columns.astype(np.int32), values, known.size)

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
