"""Encoder outputs cached on disk, so benchmark runs and sweeps encode a text once.

The encoder's forward pass is most of the training time of an encoder pipeline
(CLINC150: 18k texts, encoded twice with ``--threshold-budget``). ``--vector-cache
DIR`` keeps each text's sentence vector and token vectors in
``DIR/<key>.npz``, the key naming the weights (their SHA-256), their kind (int8 or
float32) and the word-piece limit, so vectors of other weights are never reused.

Only the benchmark's own process uses the cache (training and val parsing); the
parse latency is still measured in a fresh process that runs the encoder. A
batch's int8 activation scales depend on the texts batched together, so a cached
vector can differ from a fresh one by int8 rounding noise (docs/nlu.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import numpy as np

from worker.nlu.base import Message
from worker.nlu.encoder import SentenceEncoderFeaturizer
from worker.nlu.encoder import weights_digest


class VectorCache:
    """Sentence and token vectors by text, one ``.npz`` file per encoder setting."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._stores: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
        self._dirty: set[str] = set()

    def _store(self, key: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        if key not in self._stores:
            self._stores[key] = _read(self.directory / f"{key}.npz")
        return self._stores[key]

    def featurize(
        self, featurizer: SentenceEncoderFeaturizer, messages: Sequence[Message]
    ) -> None:
        """Fill ``messages`` from the cache, encoding (and keeping) the missing ones."""
        key = cache_key(featurizer)
        store = self._store(key)
        missing = [m for m in messages if m.text not in store]
        if missing:
            _ENCODE(featurizer, missing)
            for message in missing:
                assert message.dense_features is not None
                assert message.token_vectors is not None
                store[message.text] = (message.dense_features, message.token_vectors)
            self._dirty.add(key)
        for message in messages:
            message.dense_features, message.token_vectors = store[message.text]

    def save(self) -> None:
        """Write the stores that gained vectors."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for key in sorted(self._dirty):
            _write(self.directory / f"{key}.npz", self._stores[key])
        self._dirty.clear()


_ENCODE = SentenceEncoderFeaturizer.process_batch


def cache_key(featurizer: SentenceEncoderFeaturizer) -> str:
    """Weights digest, weight kind and word-piece limit of a fitted featurizer."""
    digest = bytes(weights_digest(featurizer.model_path).tolist()).hex()[:16]
    bits = int(featurizer.weights_[0])
    return f"{digest}-int{bits}-len{featurizer.max_length}"


@contextmanager
def cached_vectors(directory: Path | None) -> Iterator[None]:
    """Within the block, every `SentenceEncoderFeaturizer` reads and fills the
    cache in ``directory`` (nothing changes when it is None); saved on exit."""
    if directory is None:
        yield
        return
    cache = VectorCache(directory)

    def process_batch(
        self: SentenceEncoderFeaturizer, messages: Sequence[Message]
    ) -> None:
        self.check_fitted()
        cache.featurize(self, messages)

    with mock.patch.object(SentenceEncoderFeaturizer, "process_batch", process_batch):
        try:
            yield
        finally:
            cache.save()


def _read(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as arrays:
        texts = arrays["texts"].tolist()
        sentences, offsets = arrays["sentences"], arrays["token_offsets"]
        tokens = arrays["token_vectors"]
    return {
        text: (sentences[i], tokens[offsets[i] : offsets[i + 1]])
        for i, text in enumerate(texts)
    }


def _write(path: Path, store: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    texts = sorted(store)
    lengths = [store[t][1].shape[0] for t in texts]
    offsets = np.zeros(len(texts) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    width = store[texts[0]][0].shape[0] if texts else 0
    tokens = [store[t][1] for t in texts]
    # NOTE: one partial file per process: runs sharing a folder may save at once.
    partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.npz")
    np.savez(
        partial,
        texts=np.array(texts, dtype=str),
        sentences=np.stack([store[t][0] for t in texts])
        if texts
        else np.zeros((0, width), np.float32),
        token_offsets=offsets,
        token_vectors=np.concatenate(tokens)
        if tokens
        else np.zeros((0, width), np.float32),
    )
    partial.replace(path)
