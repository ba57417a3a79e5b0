"""A numpy MLP over the last ``max_history`` binary states (stands in for KerasPolicy).

Softmax over the domain's actions, cross-entropy, Adam, mini-batches, and early
stopping on validation dialogues or a validation split; seeded, so fitting is
reproducible. docs/policies.md has the measurements behind the defaults.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from typing import Self

import numpy as np

from worker.domain import Domain
from worker.errors import InvalidConfig
from worker.errors import ModelError
from worker.policies.base import Policy
from worker.policies.base import own_window
from worker.policies.featurizer import counted_examples
from worker.policies.featurizer import states_to_matrix
from worker.policies.featurizer import training_examples
from worker.policies.featurizer import window_vector
from worker.tracker import State
from worker.tracker import Tracker
from worker.training.generator import TrainingDialogue

logger = logging.getLogger(__name__)

_ADAM_BETAS = (0.9, 0.999)
_ADAM_EPS = 1e-8


class NeuralPolicy(Policy):
    """Learns the next action from the recent states; generalises past the stories.

    Examples are the distinct (state window, action) pairs of the dialogues. With
    ``weight_by_count`` each counts as often as it occurs, so where the stories
    disagree the common action wins (Rasa counted each pair once, which lets one
    odd story outvote a hundred). ``balance_classes`` then gives every action the
    same total weight.

    NOTE: ``validation_split`` defaults to 0.0, not Keras' 0.1: story data is small
    and each example is often the only one of its turn, so held-out examples would
    simply never be learned. Early stopping instead uses ``fit(...,
    validation=dev_dialogues)`` when given, else a split > 0: training stops once
    the validation loss has not improved for ``patience`` epochs and keeps the
    best weights. ``epochs_trained_`` tells how many epochs ran (not persisted).
    """

    _metadata_attrs = ("n_actions_", "n_features_")
    #: a softmax: no score above 1.0, even in float32
    score_bound = 1.0

    def __init__(
        self,
        max_history: int = 5,
        priority: int = 1,
        epochs: int = 100,
        batch_size: int = 32,
        validation_split: float = 0.0,
        patience: int = 5,
        hidden_layers_sizes: Sequence[int] = (64,),
        learning_rate: float = 0.003,
        random_seed: int = 42,
        max_training_samples: int | None = None,
        balance_classes: bool = False,
        weight_by_count: bool = True,
    ):
        self.max_history = max_history
        self.priority = priority
        self.epochs = epochs
        self.batch_size = batch_size
        self.validation_split = validation_split
        self.patience = patience
        self.hidden_layers_sizes = hidden_layers_sizes
        self.learning_rate = learning_rate
        self.random_seed = random_seed
        self.max_training_samples = max_training_samples
        self.balance_classes = balance_classes
        self.weight_by_count = weight_by_count

    # ---- training --------------------------------------------------------------------
    def _validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise InvalidConfig(
                f"{type(self).__name__}: epochs, batch_size and patience must be >= 1"
            )
        if not 0.0 <= self.validation_split < 1.0:
            raise InvalidConfig(
                f"{type(self).__name__}: validation_split must be in [0, 1)"
            )
        if any(int(h) < 1 for h in self.hidden_layers_sizes):
            raise InvalidConfig(
                f"{type(self).__name__}: hidden layer sizes must be >= 1"
            )

    def fit(
        self,
        dialogues: Sequence[TrainingDialogue],
        domain: Domain,
        *,
        validation: Sequence[TrainingDialogue] | None = None,
    ) -> Self:
        """Learn from the dialogues' examples.

        ``validation`` dialogues (a dev set) are used for early stopping instead of
        holding out ``validation_split`` of the training examples.
        """
        self._validate()
        windows, labels, counts = self._examples(dialogues, domain)
        if self.max_training_samples is not None:
            windows = windows[: self.max_training_samples]
            labels = labels[: self.max_training_samples]
            counts = counts[: self.max_training_samples]
        n_actions = len(domain.action_names)
        x = self._inputs(windows, domain)
        y = np.asarray(labels, dtype=np.int64)
        w = np.asarray(counts, dtype=np.float32)
        rng = np.random.default_rng(self.random_seed)
        sizes = [x.shape[1], *(int(h) for h in self.hidden_layers_sizes), n_actions]
        weights = [
            rng.normal(0.0, np.sqrt(2.0 / fan_in), (fan_in, fan_out)).astype(np.float32)
            for fan_in, fan_out in itertools.pairwise(sizes)
        ]
        biases = [np.zeros(n, dtype=np.float32) for n in sizes[1:]]
        params = [p for pair in zip(weights, biases, strict=True) for p in pair]
        order = rng.permutation(len(y))
        if validation is not None:
            val_windows, val_labels, val_counts = self._examples(validation, domain)
            held = (
                self._inputs(val_windows, domain),
                np.asarray(val_labels, np.int64),
                np.asarray(val_counts, np.float32),
            )
            train = order
        else:
            n_val = int(len(y) * self.validation_split)
            held = (x[order[:n_val]], y[order[:n_val]], w[order[:n_val]])
            train = order[n_val:]
        self.epochs_trained_ = 0
        if len(train):
            self.epochs_trained_ = self._train(params, (x, y, w), train, held, rng)
        self.weights_ = params[0::2]
        self.biases_ = params[1::2]
        self.n_actions_ = n_actions
        self.n_features_ = len(domain.input_features)
        return self

    def _examples(
        self, dialogues: Sequence[TrainingDialogue], domain: Domain
    ) -> tuple[list, list[int], list[int]]:
        """Distinct examples and their weights (counts, or 1 each)."""
        if self.weight_by_count:
            return counted_examples(dialogues, domain, self.max_history)
        windows, labels = training_examples(dialogues, domain, self.max_history)
        return windows, labels, [1] * len(labels)

    def _train(
        self,
        params: list[np.ndarray],
        data: tuple[np.ndarray, np.ndarray, np.ndarray],
        train: np.ndarray,
        held: tuple[np.ndarray, np.ndarray, np.ndarray],
        rng: np.random.Generator,
    ) -> int:
        """Adam on mini-batches; with held-out examples, early stopping on their
        weighted loss (the best weights are kept). Returns the epochs run."""
        x, y, w = data
        x_train, y_train = x[train], y[train]
        weight = w[train] * self._class_weights(y_train, int(params[-1].size), w[train])
        x_val, y_val, w_val = held
        moments = [np.zeros_like(p) for p in params]
        squares = [np.zeros_like(p) for p in params]
        best, best_loss, stale, step = [p.copy() for p in params], np.inf, 0, 0
        epoch = 0
        for epoch in range(1, self.epochs + 1):
            shuffled = rng.permutation(len(y_train))
            for start in range(0, len(shuffled), self.batch_size):
                batch = shuffled[start : start + self.batch_size]
                grads = self._gradients(
                    params, x_train[batch], y_train[batch], weight[batch]
                )
                step += 1
                _adam(params, grads, moments, squares, self.learning_rate, step)
            if not len(y_val):
                continue
            loss = _loss(self._forward(params, x_val)[-1], y_val, w_val)
            if loss < best_loss - 1e-6:
                best, best_loss, stale = [p.copy() for p in params], loss, 0
            else:
                stale += 1
                if stale >= self.patience:
                    logger.debug("early stop after %d epochs", epoch)
                    break
        if len(y_val):
            params[:] = best
        return epoch

    def _class_weights(
        self, y: np.ndarray, n_actions: int, counts: np.ndarray
    ) -> np.ndarray:
        """Per-example factors that give every action the same total weight."""
        if not self.balance_classes:
            return np.ones(len(y), dtype=np.float32)
        totals = np.bincount(y, weights=counts, minlength=n_actions)
        present = np.count_nonzero(totals)
        per_class = counts.sum() / (present * np.maximum(totals, 1e-9))
        return per_class[y].astype(np.float32)

    @staticmethod
    def _forward(params: list[np.ndarray], x: np.ndarray) -> list[np.ndarray]:
        """Activations of every layer; the last one is the softmax output."""
        acts = [x]
        last = len(params) // 2 - 1
        for layer in range(last + 1):
            z = acts[-1] @ params[2 * layer] + params[2 * layer + 1]
            acts.append(np.maximum(z, 0.0) if layer < last else _softmax(z))
        return acts

    def _gradients(
        self, params: list[np.ndarray], x: np.ndarray, y: np.ndarray, w: np.ndarray
    ) -> list[np.ndarray]:
        acts = self._forward(params, x)
        delta = acts[-1].copy()
        delta[np.arange(len(y)), y] -= 1.0
        delta *= (w / w.sum())[:, None]
        grads: list[np.ndarray] = [np.empty(0)] * len(params)
        for layer in range(len(params) // 2 - 1, -1, -1):
            grads[2 * layer] = acts[layer].T @ delta
            grads[2 * layer + 1] = delta.sum(axis=0)
            if layer:
                delta = (delta @ params[2 * layer].T) * (acts[layer] > 0)
        return grads

    # ---- prediction ------------------------------------------------------------------
    def _inputs(self, windows: Sequence[Sequence[dict]], domain: Domain) -> np.ndarray:
        matrix = states_to_matrix(windows, domain, self.max_history)
        return matrix.reshape(len(windows), -1)

    def _params(self) -> list[np.ndarray]:
        return [
            p for pair in zip(self.weights_, self.biases_, strict=True) for p in pair
        ]

    def predict(self, tracker: Tracker, domain: Domain) -> np.ndarray:
        states = tracker.states(self.max_history)
        return np.array(self.predict_scores(tracker, domain, states))

    def check(self, domain: Domain) -> None:
        self._n_actions(domain)
        if len(domain.input_features) != self.n_features_:
            raise ModelError(
                f"{type(self).__name__} was trained on {self.n_features_} features, "
                f"the domain has {len(domain.input_features)}: retrain the model"
            )

    def predict_scores(
        self, tracker: Tracker, domain: Domain, states: Sequence[State]
    ) -> list[float]:
        self.check(domain)
        window = own_window(states, self.max_history)
        return self._probabilities(window_vector(window, domain, self.max_history))

    def _probabilities(self, x: np.ndarray) -> list[float]:
        """``_forward``'s output for one input vector, bit for bit: the same BLAS
        and float32 operations, with fewer numpy calls.

        NOTE: ``x.dot(w)`` of a vector and a matrix makes the same ``sgemv`` call
        as ``x @ w`` of a one-row matrix, at half the call overhead.
        """
        last = len(self.weights_) - 1
        z = x
        for layer, (w, b) in enumerate(zip(self.weights_, self.biases_, strict=True)):
            z = z.dot(w)
            z += b
            if layer < last:
                np.maximum(z, 0.0, out=z)
        z -= max(z.tolist())  # float32 arithmetic, as with ``z.max()``
        np.exp(z, out=z)
        z /= np.add.reduce(z)
        return z.tolist()

    def predict_windows(
        self, windows: Sequence[Sequence[dict]], domain: Domain
    ) -> np.ndarray:
        """Probabilities for many state windows at once (accuracy, evaluation)."""
        self._check_fitted()
        return self._forward(self._params(), self._inputs(windows, domain))[-1]

    # ---- persistence -----------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        arrays = {f"w{i}": w for i, w in enumerate(self.weights_)}
        arrays.update({f"b{i}": b for i, b in enumerate(self.biases_)})
        return arrays

    @classmethod
    def from_arrays(
        cls, params: dict, arrays: dict[str, np.ndarray], metadata: dict
    ) -> Self:
        policy = super().from_arrays(params, {}, metadata)
        layers = len(policy.hidden_layers_sizes) + 1
        try:
            policy.weights_ = [
                np.asarray(arrays[f"w{i}"], np.float32) for i in range(layers)
            ]
            policy.biases_ = [
                np.asarray(arrays[f"b{i}"], np.float32) for i in range(layers)
            ]
        except KeyError as err:
            raise ModelError(f"{cls.__name__}: the model lacks array {err}") from None
        return policy


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _loss(probs: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Cross-entropy, weighted per example."""
    nll = -np.log(probs[np.arange(len(y)), y] + 1e-12)
    return float((nll * w).sum() / w.sum())


def _adam(
    params: list[np.ndarray],
    grads: list[np.ndarray],
    moments: list[np.ndarray],
    squares: list[np.ndarray],
    lr: float,
    step: int,
) -> None:
    b1, b2 = _ADAM_BETAS
    scale = lr * np.sqrt(1 - b2**step) / (1 - b1**step)
    for p, g, m, v in zip(params, grads, moments, squares, strict=True):
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        p -= scale * m / (np.sqrt(v) + _ADAM_EPS)
