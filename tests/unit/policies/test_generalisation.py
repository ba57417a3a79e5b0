"""The neural policy on conversations the stories never show: slots given in other
orders and combinations, small talk at other points, and longer dialogues (several
interruptions and a restart in one conversation). Memoization cannot do this."""

from __future__ import annotations

import pytest

from worker.domain import Domain
from worker.evaluation import evaluate_dialogues
from worker.evaluation import story_dialogues
from worker.model import CoreModel
from worker.policies import AugmentedMemoizationPolicy
from worker.policies import MemoizationPolicy
from worker.policies import NeuralPolicy
from worker.policies import PolicyEnsemble
from worker.training import generate_dialogues
from worker.training import parse_stories

from . import simulator

DOMAIN = Domain.from_yaml(simulator.DOMAIN)
TRAIN = simulator.stories(
    1, 30, any_order=True, interruptions=1, restarts=0
) + simulator.stories(3, 10, any_order=True, interruptions=0, restarts=1).replace(
    "## story", "## restart story"
)
TEST = simulator.stories(2, 50, any_order=True, interruptions=2, restarts=1)


@pytest.fixture(scope="module")
def data():
    train = generate_dialogues(parse_stories(TRAIN, DOMAIN), DOMAIN, seed=1)
    test = story_dialogues(parse_stories(TEST, DOMAIN), DOMAIN)
    return train, test


def score(policy, train, test) -> float:
    ensemble = PolicyEnsemble([policy]).fit(train, DOMAIN)
    model = CoreModel(DOMAIN, ensemble, "test", "", {})
    return evaluate_dialogues(model, test).action_metrics.accuracy


def test_test_dialogues_are_new_and_longer(data):
    train, test = data
    seen = {d.events for d in train}
    assert not any(d.events in seen for d in test)
    stories = [d for d in train if not d.is_augmented]
    assert max(len(d.events) for d in test) > max(len(d.events) for d in stories)


def test_neural_policy_generalises_where_memoization_cannot(data):
    train, test = data
    neural = score(NeuralPolicy(max_history=3), train, test)
    memo = score(MemoizationPolicy(max_history=3), train, test)
    augmented = score(AugmentedMemoizationPolicy(max_history=3), train, test)
    assert neural >= 0.95
    assert memo < 0.8 and augmented < 0.9
    assert neural > augmented > memo
