"""Softmax (multinomial logistic regression) intent classifier on sparse features,
optionally joined by a dense sentence embedding (`Message.dense_features`).

numpy has no sparse matrices, so a batch is CSR-like arrays and ``X @ W`` is an
embedding-bag gather plus `np.add.reduceat`; the gradient is reduced per touched
feature the same way. Adam updates only the rows a batch touches ("lazy" Adam), so
an epoch costs O(nnz * classes), never O(features * classes) per step. Dense
features get their own small weight matrix, updated with plain Adam.
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

    requires_any = frozenset({"features", "dense_features"})
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
        dense_scale: float = 1.0,
        label_smoothing: float = 0.0,
        n_models: int = 1,
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
        self.dense_scale = dense_scale
        self.label_smoothing = label_smoothing
        self.n_models = n_models

    def _validate(self) -> None:
        for name in ("epochs", "batch_size", "patience", "ranking_length", "n_models"):
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
            "dense_scale",
            self.dense_scale,
            is_number(self.dense_scale, 0.0),
            "a number >= 0",
        )
        check_param(
            "label_smoothing",
            self.label_smoothing,
            is_number(self.label_smoothing, 0.0, 0.5),
            "in [0, 0.5]",
        )
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
            (m, ex.intent)
            for m, ex in zip(messages, data.examples, strict=True)
            if ex.intent is not None
        ]
        if not rows:
            raise TrainingDataError("no training example has an intent")
        vectors = [_sparse(m) for m, _ in rows]
        dense = _dense_matrix([m for m, _ in rows], self.dense_scale)
        classes, y = np.unique(
            np.array([label for _, label in rows]), return_inverse=True
        )
        self.classes_ = classes
        self._class_names = classes.tolist()
        X = _Inputs(SparseBatch.stack(vectors), dense)
        weights = self._sample_weights(y, classes.size)
        models = []
        for i in range(self.n_models):
            rng = np.random.default_rng(self.random_state + i)
            train, valid = self._split(y, rng)
            models.append(self._train(X, y, weights, train, valid, vectors[0].dim, rng))
        # NOTE: the logits are linear in the weights, so averaging the weights of
        # the members is averaging their logits: an ensemble at no parse cost.
        self.coef_, self.dense_coef_, self.intercept_ = (
            np.mean([m[k] for m in models], axis=0).astype(np.float32) for k in range(3)
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
        X: _Inputs,
        y: np.ndarray,
        weights: np.ndarray,
        train: np.ndarray,
        valid: np.ndarray,
        n_features: int,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n_classes = self.classes_.size
        params = [
            np.zeros((n_features, n_classes), np.float32),
            np.zeros(n_classes, np.float32),
            np.zeros((X.dense.shape[1], n_classes), np.float32),
        ]
        moments = [np.zeros_like(p) for p in params for _ in range(2)]
        best, best_loss, stale, step = None, np.inf, 0, 0
        for _ in range(self.epochs):
            order = rng.permutation(train)
            for start in range(0, order.size, self.batch_size):
                step += 1
                rows = order[start : start + self.batch_size]
                batch = _Inputs(_take(X.sparse, rows), X.dense[rows])
                self._step(params, moments, batch, y[rows], weights[rows], step)
            if valid.size:
                held_out = _Inputs(_take(X.sparse, valid), X.dense[valid])
                loss = _log_loss(held_out, y[valid], *params)
                if loss < best_loss - 1e-4:
                    best, best_loss, stale = [p.copy() for p in params], loss, 0
                else:
                    stale += 1
                    if stale >= self.patience:
                        break
        coef, intercept, dense_coef = best if best is not None else params
        return coef, dense_coef, intercept

    def _step(
        self,
        params: list[np.ndarray],
        moments: list[np.ndarray],
        inputs: _Inputs,
        y: np.ndarray,
        weights: np.ndarray,
        step: int,
    ) -> None:
        coef, intercept, dense_coef = params
        batch = inputs.sparse
        probs = _softmax(_logits(inputs, coef, intercept, dense_coef))
        if self.label_smoothing:
            probs -= self.label_smoothing / probs.shape[1]
            probs[np.arange(y.size), y] -= 1.0 - self.label_smoothing
        else:
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
        m_w, v_w, m_b, v_b, m_d, v_d = moments
        m_w[touched] = _BETA1 * m_w[touched] + (1 - _BETA1) * grad
        v_w[touched] = _BETA2 * v_w[touched] + (1 - _BETA2) * grad**2
        coef[touched] -= lr * m_w[touched] / (np.sqrt(v_w[touched]) + _EPS)
        grad_b = probs.sum(axis=0)
        m_b[:] = _BETA1 * m_b + (1 - _BETA1) * grad_b
        v_b[:] = _BETA2 * v_b + (1 - _BETA2) * grad_b**2
        intercept -= lr * m_b / (np.sqrt(v_b) + _EPS)
        if dense_coef.size:
            grad_d = inputs.dense.T @ probs + self.l2 * dense_coef
            m_d[:] = _BETA1 * m_d + (1 - _BETA1) * grad_d
            v_d[:] = _BETA2 * v_d + (1 - _BETA2) * grad_d**2
            dense_coef -= lr * m_d / (np.sqrt(v_d) + _EPS)

    def predict_proba(self, messages: Sequence[Message]) -> np.ndarray:
        """Class probabilities of featurized messages, columns in ``classes_`` order."""
        self.check_fitted()
        inputs = _Inputs(
            SparseBatch.stack([_sparse(m) for m in messages]),
            _dense_matrix(messages, self.dense_scale),
        )
        return _softmax(_logits(inputs, self.coef_, self.intercept_, self.dense_coef_))

    def predict(self, messages: Sequence[Message]) -> np.ndarray:
        """Most probable intent name per message."""
        return self.classes_[self.predict_proba(messages).argmax(axis=1)]

    def process_batch(self, messages: Sequence[Message]) -> None:
        if not messages:
            self.check_fitted()
            return
        probs = self.predict_proba(messages)
        for message, row in zip(messages, probs, strict=True):
            self._set_intent(message, row)

    def process(self, message: Message) -> None:
        self.check_fitted()
        vector = _sparse(message)
        # PERF: one text is a dot product of its few rows, no batch machinery.
        # Each numpy call costs about a microsecond here, so the rows are
        # gathered with ``take`` (not fancy indexing), np.dot skips matmul's
        # dispatch (same BLAS call), the softmax works in place, and the max of
        # a few logits is Python's (exact, so the same float32 softmax).
        logits = np.dot(vector.values, self.coef_.take(vector.indices, axis=0))
        logits += self.intercept_
        if self.dense_coef_.size:
            dense = _dense_vector(message, self.dense_coef_.shape[0])
            logits += (self.dense_scale * dense) @ self.dense_coef_
        logits -= max(logits.tolist())
        probs = np.exp(logits, out=logits)
        probs /= np.add.reduce(probs)
        self._set_intent(message, probs)

    def _set_intent(self, message: Message, probs: np.ndarray) -> None:
        top = (-probs).argsort(kind="stable")[: self.ranking_length].tolist()
        names, confidences = self._class_names, probs.tolist()
        ranking = [{"name": names[i], "confidence": confidences[i]} for i in top]
        message.intent = dict(ranking[0])
        message.intent_ranking = ranking

    def to_arrays(self) -> dict[str, np.ndarray]:
        self.check_fitted()
        return {
            "classes_": self.classes_,
            "coef_": self.coef_,
            "intercept_": self.intercept_,
            "dense_coef_": self.dense_coef_,
        }

    def _set_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.classes_ = np.asarray(arrays["classes_"], dtype=str)
        # PERF: Python strings once, not a numpy str scalar per parse and class.
        self._class_names = self.classes_.tolist()
        self.coef_ = np.asarray(arrays["coef_"], dtype=np.float32)
        self.intercept_ = np.asarray(arrays["intercept_"], dtype=np.float32)
        n_classes = self.classes_.size
        # NOTE: models saved before dense features existed have no dense_coef_.
        self.dense_coef_ = np.asarray(
            arrays.get("dense_coef_", np.zeros((0, n_classes))), dtype=np.float32
        )
        if (
            self.coef_.ndim != 2
            or self.coef_.shape[1] != n_classes
            or self.intercept_.shape != (n_classes,)
            or self.dense_coef_.ndim != 2
            or self.dense_coef_.shape[1] != n_classes
        ):
            raise ValueError("coef_/intercept_ shapes do not match classes_")


class _Inputs(NamedTuple):
    """A batch: sparse rows and a dense ``(rows, dim)`` block (dim may be 0)."""

    sparse: SparseBatch
    dense: np.ndarray


_EMPTY = SparseVector(np.empty(0, np.int32), np.empty(0, np.float32), 0)


def _sparse(message: Message) -> SparseVector:
    """The message's sparse features; an empty vector when only dense ones exist."""
    if message.features is None:
        if message.dense_features is None:
            raise ValueError(
                "SoftmaxIntentClassifier needs features; put a featurizer "
                "before it in the pipeline"
            )
        return _EMPTY
    return message.features


def _dense_vector(message: Message, dim: int) -> np.ndarray:
    vector = message.dense_features
    if vector is None or vector.shape != (dim,):
        raise ValueError(
            f"SoftmaxIntentClassifier was trained with {dim} dense features; "
            "the pipeline gave it none or another width"
        )
    return vector


def _dense_matrix(messages: Sequence[Message], scale: float) -> np.ndarray:
    """Stacked, scaled dense features, or a ``(n, 0)`` block when there are none."""
    vectors = [m.dense_features for m in messages if m.dense_features is not None]
    if not vectors or len(vectors) < len(messages):
        return np.zeros((len(messages), 0), np.float32)
    return (np.stack(vectors) * scale).astype(np.float32)


def _take(X: SparseBatch, rows: np.ndarray) -> SparseBatch:
    """The CSR sub-batch of ``rows`` (in that order)."""
    starts, ends = X.offsets[rows], X.offsets[rows + 1]
    lengths = ends - starts
    offsets = np.zeros(rows.size + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    # Entry positions: each row's start repeated, plus its position within the row.
    positions = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
    return SparseBatch(X.indices[positions], X.values[positions], offsets)


def _logits(
    inputs: _Inputs, coef: np.ndarray, intercept: np.ndarray, dense_coef: np.ndarray
) -> np.ndarray:
    X = inputs.sparse
    logits = _segment_sum(coef[X.indices] * X.values[:, None], X.offsets) + intercept
    if dense_coef.size:
        logits += inputs.dense @ dense_coef
    return logits


def _log_loss(
    inputs: _Inputs,
    y: np.ndarray,
    coef: np.ndarray,
    intercept: np.ndarray,
    dense_coef: np.ndarray,
) -> float:
    probs = _softmax(_logits(inputs, coef, intercept, dense_coef))
    return float(-np.log(probs[np.arange(y.size), y] + 1e-12).mean())
