"""Memoization and augmented memoization: hits, misses, contradictions."""

import numpy as np

from worker.domain import Domain
from worker.events import SlotSet
from worker.policies import AugmentedMemoizationPolicy
from worker.policies import MemoizationPolicy
from worker.training import TrainingDialogue
from worker.training import generate_dialogues
from worker.training import parse_stories

from .helpers import EXAMPLES
from .helpers import act
from .helpers import bot
from .helpers import tracker
from .helpers import user

DOMAIN = Domain.from_yaml(
    """
intents: [greet, inform, goodbye]
entities: [name]
slots:
  name: {type: text}
actions: [utter_greet, utter_goodbye, utter_name]
"""
)


def dialogues(text: str, domain: Domain = DOMAIN):
    return generate_dialogues(
        parse_stories(text, domain), domain, augmentation_factor=0
    )


def best(policy, t, domain=DOMAIN):
    scores = policy.predict(t, domain)
    return domain.action_names[int(np.argmax(scores))] if scores.any() else None


def test_hit_scores_one_and_miss_scores_zero():
    policy = MemoizationPolicy(max_history=2).fit(
        dialogues("## s\n* greet\n - utter_greet\n"), DOMAIN
    )
    hit = policy.predict(tracker(DOMAIN, act("action_listen"), user("greet")), DOMAIN)
    assert hit[DOMAIN.action_index["utter_greet"]] == 1.0
    assert hit.sum() == 1.0
    miss = policy.predict(
        tracker(DOMAIN, act("action_listen"), user("goodbye")), DOMAIN
    )
    assert not miss.any()


def test_contradicting_examples_are_forgotten():
    text = "## a\n* greet\n - utter_greet\n## b\n* greet\n - utter_goodbye\n"
    policy = MemoizationPolicy(max_history=2).fit(dialogues(text), DOMAIN)
    t = tracker(DOMAIN, act("action_listen"), user("greet"))
    assert best(policy, t) is None
    # the states after either action are still known
    assert best(policy, tracker(DOMAIN)) == "action_listen"


def test_augmented_dialogues_are_not_memorised():
    (story,) = dialogues("## s\n* greet\n - utter_greet\n")
    glued = TrainingDialogue("glued", story.events, is_augmented=True)
    policy = MemoizationPolicy().fit([glued], DOMAIN)
    assert policy.lookup_ == {}


def test_only_augmented_memoization_forgets_old_slots():
    stories = dialogues("## s\n* greet\n - utter_greet\n")
    t = tracker(
        DOMAIN,
        act("action_listen"),
        user("inform", name="Ann"),
        SlotSet(name="name", value="Ann"),
        act("utter_name"),
        act("action_listen"),
        user("greet"),
        history=2,
    )
    plain = MemoizationPolicy(max_history=2).fit(stories, DOMAIN)
    augmented = AugmentedMemoizationPolicy(max_history=2).fit(stories, DOMAIN)
    # the slot set a turn ago makes the states unknown to plain memoization
    assert best(plain, t) is None
    assert best(augmented, t) == "utter_greet"


def test_augmented_memoization_misses_what_no_suffix_knows():
    stories = dialogues("## s\n* greet\n - utter_greet\n")
    policy = AugmentedMemoizationPolicy(max_history=2).fit(stories, DOMAIN)
    t = tracker(DOMAIN, act("action_listen"), user("goodbye"), act("utter_name"))
    assert best(policy, t) is None


def test_server_fixture_predicts_greet_on_a_new_conversation():
    domain = Domain.load(EXAMPLES / "server_test_fixtures" / "default.yml")
    text = (EXAMPLES / "server_test_fixtures" / "stories_defaultdomain.md").read_text()
    steps = parse_stories(text, domain)
    policy = AugmentedMemoizationPolicy(max_history=3).fit(
        generate_dialogues(steps, domain), domain
    )
    t = tracker(domain, act("action_listen"), user("greet"), history=3)
    assert best(policy, t, domain) == "utter_greet"


def test_moodbot_stories_are_replayed_exactly():
    domain, stories = bot("moodbot", factor=0)
    policy = MemoizationPolicy().fit(stories, domain)
    t = tracker(domain, act("action_listen"), user("greet"))
    assert best(policy, t, domain) == "utter_greet"
    t.update(act("utter_greet"))
    assert best(policy, t, domain) == "action_listen"
    t.update(act("action_listen"))
    t.update(user("mood_unhappy"))
    assert best(policy, t, domain) == "utter_cheer_up"
