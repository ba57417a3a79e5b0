"""FallbackPolicy thresholds and MappingPolicy intent mappings."""

import numpy as np
import pytest

from worker.domain import Domain
from worker.errors import InvalidConfig
from worker.events import Restarted
from worker.policies import FallbackPolicy
from worker.policies import MappingPolicy

from .helpers import act
from .helpers import tracker
from .helpers import user

DOMAIN = Domain.from_yaml(
    """
intents:
  - greet
  - restart
  - back
  - joke: {triggers: utter_joke}
actions: [utter_greet, utter_joke]
"""
)
FALLBACK = DOMAIN.action_index["action_default_fallback"]
LISTEN = DOMAIN.action_index["action_listen"]


def scores(policy, *events):
    return policy.fit([], DOMAIN).predict(tracker(DOMAIN, *events), DOMAIN)


def only(index: int, value: float = 1.0) -> np.ndarray:
    out = np.zeros(len(DOMAIN.action_names))
    out[index] = value
    return out


@pytest.mark.parametrize(
    ("confidence", "expected"), [(0.29, 1.0), (0.3, 0.4), (0.9, 0.4), (None, 0.4)]
)
def test_fallback_nlu_threshold_after_a_user_message(confidence, expected):
    policy = FallbackPolicy(nlu_threshold=0.3, core_threshold=0.4)
    message = user("greet", confidence if confidence is not None else 1.0)
    if confidence is None:
        message.parse_data["intent"].pop("confidence")
    got = scores(policy, act("action_listen"), message)
    np.testing.assert_array_equal(got, only(FALLBACK, expected))


def test_fallback_needs_a_listen_before_low_confidence():
    policy = FallbackPolicy(nlu_threshold=0.5, core_threshold=0.2)
    got = scores(policy, act("action_listen"), user("greet", 0.1), act("utter_greet"))
    np.testing.assert_array_equal(got, only(FALLBACK, 0.2))


def test_fallback_action_is_followed_by_listen():
    got = scores(FallbackPolicy(), act("action_listen"), act("action_default_fallback"))
    np.testing.assert_array_equal(got, only(LISTEN))


def test_fallback_action_must_be_in_the_domain():
    with pytest.raises(InvalidConfig, match="utter_nope"):
        FallbackPolicy(fallback_action_name="utter_nope").fit([], DOMAIN)


def test_mapping_triggers_then_listens():
    policy = MappingPolicy()
    joke = DOMAIN.action_index["utter_joke"]
    got = scores(policy, act("action_listen"), user("joke"))
    np.testing.assert_array_equal(got, only(joke))
    got = scores(policy, act("action_listen"), user("joke"), act("utter_joke"))
    np.testing.assert_array_equal(got, only(LISTEN))
    got = scores(policy, act("action_listen"), user("joke"), act("utter_greet"))
    assert not got.any()


@pytest.mark.parametrize(
    ("intent", "action"), [("restart", "action_restart"), ("back", "action_back")]
)
def test_mapping_builtin_intents(intent, action):
    got = scores(MappingPolicy(), act("action_listen"), user(intent))
    np.testing.assert_array_equal(got, only(DOMAIN.action_index[action]))


def test_mapping_ignores_unmapped_intents_and_fresh_trackers():
    assert not scores(MappingPolicy(), act("action_listen"), user("greet")).any()
    assert not scores(MappingPolicy()).any()
    restarted = scores(
        MappingPolicy(), act("action_listen"), user("restart"), Restarted()
    )
    assert not restarted.any()
