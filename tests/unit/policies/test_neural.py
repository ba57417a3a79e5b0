"""The neural policy learns the example bots and the binary featuriser's layout."""

import numpy as np
import pytest

from worker.domain import Domain
from worker.errors import InvalidConfig
from worker.policies import NeuralPolicy
from worker.policies import states_to_matrix
from worker.policies import training_examples

from .helpers import bot


@pytest.mark.parametrize("name", ["moodbot", "concertbot"])
def test_reaches_full_training_accuracy(name):
    domain, dialogues = bot(name)
    policy = NeuralPolicy().fit(dialogues, domain)
    windows, labels = training_examples(dialogues, domain, policy.max_history)
    predicted = policy.predict_windows(windows, domain).argmax(axis=1)
    assert (predicted == np.asarray(labels)).mean() == 1.0


def test_early_stopping_and_class_balance_still_learn():
    domain, dialogues = bot("moodbot")
    policy = NeuralPolicy(validation_split=0.2, patience=3, balance_classes=True)
    policy.fit(dialogues, domain)
    windows, labels = training_examples(dialogues, domain, 5)
    predicted = policy.predict_windows(windows, domain).argmax(axis=1)
    assert (predicted == np.asarray(labels)).mean() > 0.8


def test_max_training_samples_and_seed():
    domain, dialogues = bot("moodbot", factor=0)
    a = NeuralPolicy(epochs=5, max_training_samples=3, random_seed=1).fit(
        dialogues, domain
    )
    b = NeuralPolicy(epochs=5, max_training_samples=3, random_seed=2).fit(
        dialogues, domain
    )
    assert not np.array_equal(a.weights_[0], b.weights_[0])


def test_invalid_hyperparameters_fail_at_fit():
    domain, dialogues = bot("moodbot", factor=0)
    with pytest.raises(InvalidConfig, match="validation_split"):
        NeuralPolicy(validation_split=1.5).fit(dialogues, domain)


def test_binary_matrix_is_left_padded_in_feature_order():
    domain = Domain.from_yaml("intents: [b, a]\nactions: [utter_x]\n")
    windows = [({"intent_a": 1.0, "prev_action_listen": 1.0, "intent_unknown": 1.0},)]
    matrix = states_to_matrix(windows, domain, 3)
    assert matrix.shape == (1, 3, len(domain.input_features))
    assert (matrix[0, :2] == -1).all()
    row = dict(zip(domain.input_features, matrix[0, 2], strict=True))
    assert row["intent_a"] == 1.0 and row["prev_action_listen"] == 1.0
    assert sum(row.values()) == 2.0
    assert domain.input_features[:2] == ("intent_a", "intent_b")
