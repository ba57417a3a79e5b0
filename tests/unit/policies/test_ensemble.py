"""The ensemble's 0.14 rules: confidence, priority, list order, fallback override."""

from collections.abc import Sequence

import numpy as np

from worker.domain import Domain
from worker.events import ActionExecutionRejected
from worker.policies import FallbackPolicy
from worker.policies import MemoizationPolicy
from worker.policies import Policy
from worker.policies import PolicyEnsemble
from worker.policies import window_key

from .helpers import act
from .helpers import tracker
from .helpers import user

DOMAIN = Domain.from_yaml("intents: [greet]\nactions: [utter_a, utter_b]\n")
A = DOMAIN.action_index["utter_a"]
B = DOMAIN.action_index["utter_b"]
LISTEN = DOMAIN.action_index["action_listen"]


class Fixed(Policy):
    """Always answers the same scores (a test double)."""

    max_history = 1

    def __init__(self, scores: Sequence[float] = (), priority: int = 1):
        self.scores = scores
        self.priority = priority

    def fit(self, dialogues, domain, *, validation=None):
        self.n_actions_ = len(domain.action_names)
        return self

    def predict(self, tracker, domain):
        out = self._scores(domain)
        out[: len(self.scores)] = self.scores
        return out


def vec(**scores: float) -> list[float]:
    out = [0.0] * len(DOMAIN.action_names)
    for name, value in scores.items():
        out[DOMAIN.action_index[name]] = value
    return out


def predict(policies, *events):
    ensemble = PolicyEnsemble(policies).fit([], DOMAIN)
    return ensemble.predict(tracker(DOMAIN, *events))


AFTER_ACTION = (act("action_listen"), user("greet"), act("utter_a"))


def test_highest_confidence_wins_then_priority_then_order():
    got = predict(
        [Fixed(vec(utter_a=0.6), 5), Fixed(vec(utter_b=0.9), 1)], *AFTER_ACTION
    )
    assert (got.action, got.policy) == ("utter_b", "policy_1_Fixed")
    got = predict(
        [Fixed(vec(utter_a=0.9), 1), Fixed(vec(utter_b=0.9), 2)], *AFTER_ACTION
    )
    assert (got.action, got.policy) == ("utter_b", "policy_1_Fixed")
    got = predict(
        [Fixed(vec(utter_a=0.9), 2), Fixed(vec(utter_b=0.9), 2)], *AFTER_ACTION
    )
    assert (got.action, got.policy) == ("utter_a", "policy_0_Fixed")


def test_probabilities_are_normalised_and_ties_go_to_the_lowest_index():
    got = predict([Fixed(vec(utter_a=0.5, utter_b=0.5))], *AFTER_ACTION)
    assert got.action == "utter_a"
    assert got.confidence == 0.5
    np.testing.assert_allclose(got.probabilities.sum(), 1.0)
    zero = predict([Fixed()], *AFTER_ACTION)
    assert zero.action == "action_listen"
    assert not zero.probabilities.any()


def test_rejected_action_is_zeroed():
    events = (*AFTER_ACTION, ActionExecutionRejected(name="utter_a"))
    got = predict([Fixed(vec(utter_a=0.9, utter_b=0.2))], *events)
    assert got.action == "utter_b"


def test_listen_after_a_user_message_falls_back():
    fallback = FallbackPolicy(core_threshold=0.3)
    events = (act("action_listen"), user("greet"))
    got = predict([Fixed(vec(action_listen=0.9)), fallback], *events)
    assert (got.action, got.policy) == (
        "action_default_fallback",
        "policy_1_FallbackPolicy",
    )
    assert got.confidence == 1.0
    # not after an action, and not without a fallback policy
    got = predict([Fixed(vec(action_listen=0.9)), fallback], *AFTER_ACTION)
    assert got.action == "action_listen"
    got = predict([Fixed(vec(action_listen=0.9))], *events)
    assert got.action == "action_listen"


def test_memoization_may_predict_listen_after_a_user_message():
    memo = MemoizationPolicy(max_history=1)
    memo.fit([], DOMAIN)
    memo.lookup_ = {}
    ensemble = PolicyEnsemble([memo, FallbackPolicy(core_threshold=0.0)]).fit(
        [], DOMAIN
    )
    t = tracker(DOMAIN, act("action_listen"), user("greet"))
    memo.lookup_[window_key(t.states(1), 1)] = LISTEN
    got = ensemble.predict(t)
    assert (got.action, got.policy) == ("action_listen", "policy_0_MemoizationPolicy")


def test_max_history_is_the_largest_any_policy_needs():
    ensemble = PolicyEnsemble([MemoizationPolicy(max_history=3), FallbackPolicy()])
    assert ensemble.max_history == 3
    assert ensemble.names == ["policy_0_MemoizationPolicy", "policy_1_FallbackPolicy"]
