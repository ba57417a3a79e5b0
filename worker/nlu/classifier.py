"""Softmax (multinomial logistic regression) intent classifier on sparse features.

numpy has no sparse matrices, so a batch is CSR-like arrays and ``X @ W`` is an
embedding-bag gather plus `np.add.reduceat`; the gradient is reduced per touched
feature the same way. Adam updates only the rows a batch touches ("lazy" Adam), so
an epoch costs O(nnz * classes), never O(features * classes) per step.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import NamedTuple
from typing import Self

import numpy as np

from worker.errors import TrainingDataError
from worker.nlu.base import Component
from worker.nlu.base import Message
from worker.nlu.base import SparseVector
from worker.nlu.base import check_param
from worker.nlu.base import is_int
from worker.nlu.base import is_number
from worker.nlu.training_data import NLUData

_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8


class SparseBatch(NamedTuple):
    """CSR rows: row ``i`` is ``indices/values[offsets[i]:offsets[i + 1]]``."""

    indices: np.ndarray
    values: np.ndarray
    offsets: np.ndarray

    @classmethod
    def stack(cls, vectors: Sequence[SparseVector]) -> SparseBatch:
        lengths = [v.indices.size for v in vectors]
        offsets = np.zeros(len(vectors) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        if not vectors:
            return cls(np.empty(0, np.int32), np.empty(0, np.float32), offsets)
        return cls(
            np.concatenate([v.indices for v in vectors]),
            np.concatenate([v.values for v in vectors]),
            offsets,
        )


def _segment_sum(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Row sums of a CSR batch's per-entry rows (empty rows give zeros)."""
    out = np.zeros((offsets.size - 1, values.shape[1]), values.dtype)
    nonempty = np.diff(offsets) > 0
    if values.shape[0]:
        out[nonempty] = np.add.reduceat(values, offsets[:-1][nonempty], axis=0)
    return out


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


class SoftmaxIntentClassifier(Component):
    """Multinomial logistic regression, mini-batch lazy Adam, L2, early stopping."""

    requires = frozenset({"features"})
    provides = frozenset({"intent", "intent_ranking"})
    fitted_attribute = "coef_"

    def __init__(
        self,
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
    ) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.l2 = l2
        self.class_weight = class_weight
        self.validation_fraction = validation_fraction
        self.min_validation_examples = min_validation_examples
        self.patience = patience
        self.ranking_length = ranking_length
        self.random_state = random_state

    def _validate(self) -> None:
        for name in ("epochs", "batch_size", "patience", "ranking_length"):
            value = getattr(self, name)
            check_param(name, value, is_int(value, 1), "an int >= 1")
        for name in ("min_validation_examples", "random_state"):
            value = getattr(self, name)
            check_param(name, value, is_int(value), "an int >= 0")
        check_param(
            "learning_rate",
            self.learning_rate,
            is_number(self.learning_rate, 1e-12),
            "a positive number",
        )
        check_param("l2", self.l2, is_number(self.l2, 0.0), "a number >= 0")
        check_param(
            "validation_fraction",
            self.validation_fraction,
            is_number(self.validation_fraction, 0.0, 0.5),
            "in [0, 0.5]",
        )
        check_param(
            "class_weight",
            self.class_weight,
            self.class_weight in (None, "balanced"),
            "null or 'balanced'",
        )

    def fit(self, messages: Sequence[Message], data: NLUData) -> Self:
        """Train on the examples that have an intent; entity-only ones are skipped."""
        self._validate()
        rows = [
            (m.features, ex.intent)
            for m, ex in zip(messages, data.examples, strict=True)
            if ex.intent is not None
        ]
        if not rows:
            raise TrainingDataError("no training example has an intent")
        vectors = [_features(vector) for vector, _ in rows]
        classes, y = np.unique(
            np.array([label for _, label in rows]), return_inverse=True
        )
        self.classes_ = classes
        X = SparseBatch.stack(vectors)
        rng = np.random.default_rng(self.random_state)
        train, valid = self._split(y, rng)
        weights = self._sample_weights(y, classes.size)
        self.coef_, self.intercept_ = self._train(
            X, y, weights, train, valid, vectors[0].dim, rng
        )
        return self

    def _split(self, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """Stratified validation split, only when there is enough data to spare."""
        everything = np.arange(y.size)
        if y.size < self.min_validation_examples or self.validation_fraction == 0:
            return everything, everything[:0]
        valid = []
        for label in np.unique(y):
            members = rng.permutation(np.flatnonzero(y == label))
            valid.append(members[: int(members.size * self.validation_fraction)])
        held_out = np.sort(np.concatenate(valid))
        return np.setdiff1d(everything, held_out), held_out

    def _sample_weights(self, y: np.ndarray, n_classes: int) -> np.ndarray:
        if self.class_weight is None:
            return np.ones(y.size, np.float32)
        counts = np.bincount(y, minlength=n_classes)
        return (y.size / (n_classes * counts[y])).astype(np.float32)

    def _train(
        self,
        X: SparseBatch,
        y: np.ndarray,
        weights: np.ndarray,
        train: np.ndarray,
        valid: np.ndarray,
        n_features: int,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        n_classes = self.classes_.size
        params = [
            np.zeros((n_features, n_classes), np.float32),
            np.zeros(n_classes, np.float32),
        ]
        moments = [np.zeros_like(p) for p in params for _ in range(2)]
        best, best_loss, stale, step = None, np.inf, 0, 0
        for _ in range(self.epochs):
            order = rng.permutation(train)
            for start in range(0, order.size, self.batch_size):
                step += 1
                batch = _take(X, order[start : start + self.batch_size])
                rows = order[start : start + self.batch_size]
                self._step(params, moments, batch, y[rows], weights[rows], step)
            if valid.size:
                loss = _log_loss(_take(X, valid), y[valid], *params)
                if loss < best_loss - 1e-4:
                    best, best_loss, stale = [p.copy() for p in params], loss, 0
                else:
                    stale += 1
                    if stale >= self.patience:
                        break
        coef, intercept = best if best is not None else params
        return coef, intercept

    def _step(
        self,
        params: list[np.ndarray],
        moments: list[np.ndarray],
        batch: SparseBatch,
        y: np.ndarray,
        weights: np.ndarray,
        step: int,
    ) -> None:
        coef, intercept = params
        probs = _softmax(_logits(batch, coef, intercept))
        probs[np.arange(y.size), y] -= 1.0
        probs *= (weights / weights.sum())[:, None]
        # Gradient rows only for the features present in this batch.
        rows_of_entries = np.repeat(np.arange(y.size), np.diff(batch.offsets))
        touched, inverse = np.unique(batch.indices, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        starts = np.flatnonzero(np.diff(inverse[order], prepend=-1))
        entries = batch.values[:, None] * probs[rows_of_entries]
        grad = (
            np.add.reduceat(entries[order], starts, axis=0)
            if starts.size
            else np.zeros((0, coef.shape[1]), np.float32)
        )
        grad += self.l2 * coef[touched]
        lr = self.learning_rate * np.sqrt(1 - _BETA2**step) / (1 - _BETA1**step)
        m_w, v_w, m_b, v_b = moments
        m_w[touched] = _BETA1 * m_w[touched] + (1 - _BETA1) * grad
        v_w[touched] = _BETA2 * v_w[touched] + (1 - _BETA2) * grad**2
        coef[touched] -= lr * m_w[touched] / (np.sqrt(v_w[touched]) + _EPS)
        grad_b = probs.sum(axis=0)
        m_b[:] = _BETA1 * m_b + (1 - _BETA1) * grad_b
        v_b[:] = _BETA2 * v_b + (1 - _BETA2) * grad_b**2
        intercept -= lr * m_b / (np.sqrt(v_b) + _EPS)

    def predict_proba(self, X: SparseBatch) -> np.ndarray:
        """Class probabilities, columns in ``classes_`` order."""
        self.check_fitted()
        return _softmax(_logits(X, self.coef_, self.intercept_))

    def predict(self, X: SparseBatch) -> np.ndarray:
        """Most probable intent name per row."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def process(self, message: Message) -> None:
        self.check_fitted()
        vector = _features(message.features)
        # PERF: one text is a dot product of its few rows, no batch machinery.
        logits = vector.values @ self.coef_[vector.indices] + self.intercept_
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        top = np.argsort(-probs, kind="stable")[: self.ranking_length]
        ranking = [
            {"name": str(self.classes_[i]), "confidence": float(probs[i])} for i in top
        ]
        message.intent = dict(ranking[0])
        message.intent_ranking = ranking

    def to_arrays(self) -> dict[str, np.ndarray]:
        self.check_fitted()
        return {
            "classes_": self.classes_,
            "coef_": self.coef_,
            "intercept_": self.intercept_,
        }

    def _set_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.classes_ = np.asarray(arrays["classes_"], dtype=str)
        self.coef_ = np.asarray(arrays["coef_"], dtype=np.float32)
        self.intercept_ = np.asarray(arrays["intercept_"], dtype=np.float32)
        n_classes = self.classes_.size
        if (
            self.coef_.ndim != 2
            or self.coef_.shape[1] != n_classes
            or self.intercept_.shape != (n_classes,)
        ):
            raise ValueError("coef_/intercept_ shapes do not match classes_")


def _features(vector: SparseVector | None) -> SparseVector:
    if vector is None:
        raise ValueError(
            "SoftmaxIntentClassifier needs features; put a featurizer "
            "before it in the pipeline"
        )
    return vector


def _take(X: SparseBatch, rows: np.ndarray) -> SparseBatch:
    """The CSR sub-batch of ``rows`` (in that order)."""
    starts, ends = X.offsets[rows], X.offsets[rows + 1]
    lengths = ends - starts
    offsets = np.zeros(rows.size + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    # Entry positions: each row's start repeated, plus its position within the row.
    positions = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
    return SparseBatch(X.indices[positions], X.values[positions], offsets)


def _logits(X: SparseBatch, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    return _segment_sum(coef[X.indices] * X.values[:, None], X.offsets) + intercept


def _log_loss(
    X: SparseBatch, y: np.ndarray, coef: np.ndarray, intercept: np.ndarray
) -> float:
    probs = _softmax(_logits(X, coef, intercept))
    return float(-np.log(probs[np.arange(y.size), y] + 1e-12).mean())
