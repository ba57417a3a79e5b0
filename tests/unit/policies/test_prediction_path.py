"""The per-turn prediction path gives exactly what the plain array code gives.

``predict_scores`` (lists, states built once), the one-row network forward and
the ensemble's skipping of bounded policies are speedups only: every test compares
them with the straightforward computation.
"""

import itertools
import random

import numpy as np
import pytest

from worker.domain import Domain
from worker.errors import NotFittedError
from worker.events import ActionExecuted
from worker.events import ActionExecutionRejected
from worker.policies import FallbackPolicy
from worker.policies import MappingPolicy
from worker.policies import MemoizationPolicy
from worker.policies import NeuralPolicy
from worker.policies import Policy
from worker.policies import PolicyEnsemble
from worker.policies import states_to_matrix
from worker.policies.featurizer import window_vector
from worker.training.generator import replay

from .helpers import bot

MOOD_DOMAIN, MOOD_DIALOGUES = bot("moodbot", factor=5)


def prefixes(domain, dialogues, history=5):
    """A tracker after every event of every dialogue."""
    for d in dialogues:
        for n in range(1, len(d.events) + 1):
            yield replay(domain, d.events[:n], history)


@pytest.fixture(scope="module")
def mood_ensemble():
    policies = [
        MemoizationPolicy(max_history=5),
        NeuralPolicy(epochs=10, max_history=5),
        FallbackPolicy(),
        MappingPolicy(),
    ]
    return PolicyEnsemble(policies).fit(MOOD_DIALOGUES, MOOD_DOMAIN)


def test_predict_scores_is_predict_as_floats(mood_ensemble):
    for t in itertools.islice(prefixes(MOOD_DOMAIN, MOOD_DIALOGUES), 300):
        longer = t.states(7)
        for policy in mood_ensemble.policies:
            expected = policy.predict(t, MOOD_DOMAIN)
            got = policy.predict_scores(t, MOOD_DOMAIN, longer)
            assert isinstance(got, list)
            np.testing.assert_array_equal(np.array(got), expected)


@pytest.mark.parametrize("hidden", [(64,), (1,), (7, 5)])
def test_one_row_forward_is_bit_for_bit_the_batch_forward(hidden):
    rng = np.random.default_rng(len(hidden))
    policy = NeuralPolicy(hidden_layers_sizes=hidden)
    sizes = [23 * 3, *hidden, 11]
    policy.weights_ = [
        rng.normal(0, 3, (a, b)).astype(np.float32)
        for a, b in itertools.pairwise(sizes)
    ]
    policy.biases_ = [rng.normal(0, 1, b).astype(np.float32) for b in sizes[1:]]
    for _ in range(200):
        x = (rng.random(sizes[0]) < 0.1).astype(np.float32)
        x[: 23 * int(rng.integers(0, 3))] = -1.0
        x[rng.integers(0, sizes[0])] = np.float32(rng.random())
        expected = policy._forward(policy._params(), x[None])[-1][0]
        assert np.array_equal(np.array(policy._probabilities(x.copy())), expected)


def test_window_vector_is_the_flattened_matrix():
    domain = Domain.from_yaml(
        "intents: [a, b]\nentities: [e]\nslots:\n  s: {type: float}\n"
        "actions: [utter_x]\n"
    )
    names = [*domain.input_features, "intent_unknown"]
    rng = random.Random(0)
    for _ in range(200):
        window = [
            {n: rng.choice([1.0, 0.3, 1e-9]) for n in rng.sample(names, 3)}
            for _ in range(rng.randint(1, 6))
        ]
        for history in (1, 3, 5):
            expected = states_to_matrix([window], domain, history).reshape(-1)
            assert np.array_equal(window_vector(window, domain, history), expected)


def test_memoization_recalls_what_every_story_did_next():
    """Memoization looks windows up by their canonical JSON key only (a second,
    tuple form saved 3 microseconds a turn and was dropped): it still answers
    every story's next action, or nothing where two stories disagree."""
    policy = MemoizationPolicy(max_history=3).fit(MOOD_DIALOGUES, MOOD_DOMAIN)
    answered = 0
    for d in MOOD_DIALOGUES:
        if d.is_augmented:
            continue
        for n, event in enumerate(d.events):
            if not isinstance(event, ActionExecuted) or n == 0:
                continue
            recalled = policy.recall(replay(MOOD_DOMAIN, d.events[:n], 3))
            expected = MOOD_DOMAIN.index_of_action(event.name)
            assert recalled in (expected, None)
            answered += recalled == expected
    assert answered >= 10


class Fixed(Policy):
    """Fixed scores; with ``bound`` it is skippable, and counts its calls."""

    max_history = 1

    def __init__(self, values=(), priority: int = 1, bound: float | None = None):
        self.values = values
        self.priority = priority
        self.bound = bound

    @property
    def score_bound(self):
        return self.bound

    def fit(self, dialogues, domain, *, validation=None):
        self.n_actions_ = len(domain.action_names)
        self.calls = 0
        return self

    def predict(self, tracker, domain):
        self.calls += 1
        out = self._scores(domain)
        out[: len(self.values)] = self.values
        return out


def reference(ensemble, tracker):
    """The 0.14 rules on arrays, every policy asked: the specification."""
    domain = tracker.domain
    latest = tracker.last_event
    rejected = (
        domain.action_index.get(latest.name)
        if isinstance(latest, ActionExecutionRejected)
        else None
    )
    best, best_rank, best_index = None, (-1.0, -1), -1
    for i, policy in enumerate(ensemble.policies):
        scores = np.asarray(policy.predict(tracker, domain), dtype=np.float64)
        if rejected is not None:
            scores[rejected] = 0.0
        rank = (float(scores.max(initial=0.0)), policy.priority)
        if rank > best_rank:
            best, best_rank, best_index = scores, rank, i
    total = best.sum()
    probabilities = best / total if total else best
    return probabilities, ensemble.names[best_index]


def test_skipping_bounded_policies_never_changes_the_winner():
    domain = Domain.from_yaml("intents: [greet]\nactions: [utter_a, utter_b]\n")
    t = replay(domain, list(MOOD_DIALOGUES[0].events[:1]), 5)
    rng = random.Random(3)
    n = len(domain.action_names)
    levels = [0.0, 0.3, 0.5, 1.0]
    skipped = 0
    for _ in range(500):
        policies = []
        for _ in range(rng.randint(1, 4)):
            values = [rng.choice(levels) for _ in range(n)]
            bound = rng.choice([None, max(values), 1.0])
            policies.append(Fixed(values, rng.randint(0, 3), bound))
        ensemble = PolicyEnsemble(policies).fit([], domain)
        got = ensemble.predict(t)
        skipped += sum(p.calls == 0 for p in policies)
        probabilities, name = reference(ensemble, t)
        assert got.policy == name
        np.testing.assert_array_equal(got.probabilities, probabilities)
    assert skipped > 50


def test_a_skipped_policy_still_reports_it_cannot_predict():
    domain = Domain.from_yaml("intents: [greet]\nactions: [utter_a]\n")
    t = replay(domain, list(MOOD_DIALOGUES[0].events[:1]), 5)
    sure = Fixed([1.0], priority=5).fit([], domain)
    with pytest.raises(NotFittedError):
        PolicyEnsemble([sure, NeuralPolicy()]).predict(t)


def test_nan_scores_never_win():
    neural = NeuralPolicy(epochs=2).fit(MOOD_DIALOGUES, MOOD_DOMAIN)
    neural.weights_[-1][:, 0] = np.nan
    fallback = FallbackPolicy().fit([], MOOD_DOMAIN)
    ensemble = PolicyEnsemble([neural, fallback])
    t = replay(MOOD_DOMAIN, list(MOOD_DIALOGUES[0].events[:2]), 5)
    assert np.isnan(neural.predict(t, MOOD_DOMAIN)).all()
    got = ensemble.predict(t)
    probabilities, name = reference(ensemble, t)
    assert got.policy == name == "policy_1_FallbackPolicy"
    np.testing.assert_array_equal(got.probabilities, probabilities)
