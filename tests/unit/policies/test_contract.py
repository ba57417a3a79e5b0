"""One conformance suite for every policy."""

import inspect
import json

import numpy as np
import pytest

from worker.errors import NotFittedError
from worker.policies import POLICY_REGISTRY

from .helpers import act
from .helpers import bot
from .helpers import tracker
from .helpers import user

POLICIES = sorted(set(POLICY_REGISTRY.values()), key=lambda c: c.__name__)
DOMAIN, DIALOGUES = bot("moodbot", factor=5)
PROBES = [
    tracker(DOMAIN),
    tracker(DOMAIN, act("action_listen"), user("greet")),
    tracker(DOMAIN, act("action_listen"), user("greet", 0.1)),
    tracker(
        DOMAIN,
        act("action_listen"),
        user("greet"),
        act("utter_greet"),
        act("action_listen"),
        user("mood_unhappy"),
    ),
]


def fast(cls):
    """Default-constructed, with few epochs for the neural policy."""
    policy = cls()
    if "epochs" in policy.get_params():
        policy.epochs = 10
    return policy


def predictions(policy):
    return np.stack([policy.predict(t, DOMAIN) for t in PROBES])


@pytest.mark.parametrize("cls", POLICIES, ids=lambda c: c.__name__)
def test_constructor_only_stores_params(cls):
    policy = cls()
    params = inspect.signature(cls.__init__).parameters
    defaults = {k: p.default for k, p in params.items() if k != "self"}
    assert policy.get_params() == defaults
    assert vars(policy) == defaults
    assert isinstance(policy.priority, int)
    assert isinstance(policy.max_history, int)


@pytest.mark.parametrize("cls", POLICIES, ids=lambda c: c.__name__)
def test_predict_before_fit_raises(cls):
    with pytest.raises(NotFittedError):
        cls().predict(PROBES[0], DOMAIN)
    with pytest.raises(NotFittedError):
        cls().to_arrays()


@pytest.mark.parametrize("cls", POLICIES, ids=lambda c: c.__name__)
def test_fit_returns_self_and_refit_is_idempotent(cls):
    policy = fast(cls)
    assert policy.fit(DIALOGUES, DOMAIN) is policy
    once = predictions(policy)
    assert once.shape == (len(PROBES), len(DOMAIN.action_names))
    policy.fit(DIALOGUES, DOMAIN)
    np.testing.assert_array_equal(predictions(policy), once)
    np.testing.assert_array_equal(predictions(fast(cls).fit(DIALOGUES, DOMAIN)), once)


@pytest.mark.parametrize("cls", POLICIES, ids=lambda c: c.__name__)
def test_arrays_round_trip_keeps_predictions(cls):
    policy = fast(cls).fit(DIALOGUES, DOMAIN)
    arrays = policy.to_arrays()
    assert all(isinstance(a, np.ndarray) and a.dtype != object for a in arrays.values())
    metadata = json.loads(json.dumps(policy.learned_metadata()))
    params = json.loads(json.dumps(policy.get_params()))
    restored = cls.from_arrays(params, arrays, metadata)
    np.testing.assert_array_equal(predictions(restored), predictions(policy))
