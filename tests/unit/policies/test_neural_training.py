"""The neural policy's training knobs: validation and early stopping, class
balancing, frequency weights, max_history, augmentation and seeds."""

from __future__ import annotations

import random

import numpy as np
import pytest

from worker.domain import Domain
from worker.policies import NeuralPolicy
from worker.policies import training_examples
from worker.training import generate_dialogues
from worker.training import parse_stories

from .helpers import act
from .helpers import bot
from .helpers import tracker
from .helpers import user

DOMAIN = Domain.from_yaml(
    """
intents: [a, b, c, d, e, f]
actions: [utter_x, utter_y, utter_a_end, utter_b_end, utter_1, utter_2, utter_3]
"""
)


def dialogues(text: str, factor: int = 0):
    steps = parse_stories(text, DOMAIN)
    return generate_dialogues(
        steps, DOMAIN, augmentation_factor=factor, remove_duplicates=False
    )


def accuracy(policy, dialogues) -> float:
    windows, labels = training_examples(dialogues, DOMAIN, policy.max_history)
    predicted = policy.predict_windows(windows, DOMAIN).argmax(axis=1)
    return float((predicted == np.asarray(labels)).mean())


def prob(policy, action: str, *events) -> float:
    scores = policy.predict(tracker(DOMAIN, *events), DOMAIN)
    return float(scores[DOMAIN.action_index[action]])


def test_max_history_decides_how_far_back_the_policy_sees():
    text = (
        "## s1\n* a\n - utter_x\n* c\n - utter_y\n* c\n - utter_a_end\n\n"
        "## s2\n* b\n - utter_x\n* c\n - utter_y\n* c\n - utter_b_end\n"
    )
    data = dialogues(text)
    # The two endings differ only by the first message, five states back.
    assert accuracy(NeuralPolicy(max_history=3).fit(data, DOMAIN), data) < 1.0
    assert accuracy(NeuralPolicy(max_history=5).fit(data, DOMAIN), data) == 1.0


def _random_stories(seed: int, n: int) -> str:
    rng = random.Random(seed)
    intents = "abcdef"
    actions = ["utter_1", "utter_2", "utter_3", "utter_x", "utter_y"]
    return "\n".join(
        f"## r{seed}-{i}\n* {rng.choice(intents)}\n - {rng.choice(actions)}\n"
        f"* {rng.choice(intents)}\n - {rng.choice(actions)}\n"
        for i in range(n)
    )


def test_early_stopping_on_validation_dialogues():
    train = dialogues(_random_stories(1, 40))
    # Unrelated random dialogues: the validation loss can only get worse.
    noise = dialogues(_random_stories(2, 40))
    stopped = NeuralPolicy(epochs=300, patience=3).fit(train, DOMAIN, validation=noise)
    assert stopped.epochs_trained_ < 30
    full = NeuralPolicy(epochs=300, patience=3).fit(train, DOMAIN)
    assert full.epochs_trained_ == 300
    # The validation set is only for stopping: the same data trains the same way.
    same = NeuralPolicy(epochs=300, patience=3).fit(train, DOMAIN, validation=train)
    assert same.epochs_trained_ > stopped.epochs_trained_
    assert accuracy(same, train) > accuracy(stopped, train)


def test_early_stopping_on_a_validation_split_keeps_the_best_weights():
    train = dialogues(_random_stories(3, 60))
    policy = NeuralPolicy(epochs=300, patience=3, validation_split=0.3)
    policy.fit(train, DOMAIN)
    assert policy.epochs_trained_ < 300
    with pytest.raises(Exception, match="validation_split"):
        NeuralPolicy(validation_split=1.0).fit(train, DOMAIN)


AMBIGUOUS = "## {name}\n* a\n - {action}\n"


def _ambiguous(n_x: int, n_y: int):
    text = "\n".join(
        [AMBIGUOUS.format(name=f"x{i}", action="utter_x") for i in range(n_x)]
        + [AMBIGUOUS.format(name=f"y{i}", action="utter_y") for i in range(n_y)]
    )
    return dialogues(text)


def test_duplicates_count_so_the_majority_wins():
    data = _ambiguous(9, 1)
    events = (act("action_listen"), user("a"))
    weighted = NeuralPolicy(epochs=200).fit(data, DOMAIN)
    assert prob(weighted, "utter_x", *events) > 0.8
    deduplicated = NeuralPolicy(epochs=200, weight_by_count=False).fit(data, DOMAIN)
    assert prob(deduplicated, "utter_x", *events) < 0.65


def test_class_balancing_lifts_a_rare_action():
    data = _ambiguous(9, 1)
    events = (act("action_listen"), user("a"))
    plain = NeuralPolicy(epochs=200).fit(data, DOMAIN)
    balanced = NeuralPolicy(epochs=200, balance_classes=True).fit(data, DOMAIN)
    assert prob(balanced, "utter_y", *events) > prob(plain, "utter_y", *events) + 0.2


def test_seeded_training_is_reproducible():
    domain, data = bot("moodbot", factor=10)
    a = NeuralPolicy(epochs=20, random_seed=3).fit(data, domain)
    b = NeuralPolicy(epochs=20, random_seed=3).fit(data, domain)
    for x, y in zip(a.weights_, b.weights_, strict=True):
        np.testing.assert_array_equal(x, y)
    again = generate_dialogues(
        parse_stories("## s\n* a\n - utter_x\n* b\n - utter_y\n", DOMAIN),
        DOMAIN,
        augmentation_factor=5,
        seed=7,
    )
    assert again == generate_dialogues(
        parse_stories("## s\n* a\n - utter_x\n* b\n - utter_y\n", DOMAIN),
        DOMAIN,
        augmentation_factor=5,
        seed=7,
    )


def test_augmentation_teaches_conversations_that_go_on_after_a_story():
    text = (
        "## one\n* a\n - utter_1\n\n## two\n* b\n - utter_2\n\n"
        "## three\n* c\n - utter_3\n"
    )
    # One conversation, three stories in a row: the windows span story ends.
    events = [act("action_listen"), user("a"), act("utter_1"), act("action_listen")]
    events += [user("b"), act("utter_2"), act("action_listen"), user("c")]
    plain = NeuralPolicy(max_history=5, epochs=100).fit(dialogues(text), DOMAIN)
    augmented = NeuralPolicy(max_history=5, epochs=100).fit(
        dialogues(text, factor=20), DOMAIN
    )
    assert prob(augmented, "utter_3", *events) > 0.9
    assert prob(augmented, "utter_3", *events) > prob(plain, "utter_3", *events)
