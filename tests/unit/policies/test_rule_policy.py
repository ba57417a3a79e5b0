"""RulePolicy: Rasa 2+'s rules learned from YAML rules, with Rasa's semantics."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.domain import Domain
from worker.errors import TrainingDataError
from worker.events import Form
from worker.events import SlotSet
from worker.model import CoreModel

from .helpers import act
from .helpers import tracker
from .helpers import user

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
RASA_INIT = FIXTURES / "rasa_init"

DOMAIN = """\
version: "3.1"
intents: [greet, ask, stop, inform, affirm]
slots:
  vip:
    type: bool
    mappings:
    - type: from_intent
      intent: affirm
      value: true
  city:
    type: text
    influence_conversation: false
    mappings:
    - type: from_text
      conditions:
      - active_loop: city_form
        requested_slot: city
responses:
  utter_welcome: [{text: welcome}]
  utter_hi: [{text: hi}]
  utter_vip: [{text: vip}]
  utter_answer: [{text: answer}]
  utter_more: [{text: more}]
  utter_stopped: [{text: stopped}]
  utter_done: [{text: done}]
  utter_ask_city: [{text: "city?"}]
forms:
  city_form:
    required_slots: [city]
"""

RULES = """\
version: "3.1"
rules:
- rule: welcome at the start only
  conversation_start: true
  steps:
  - intent: greet
  - action: utter_welcome
- rule: greet later
  steps:
  - intent: greet
  - action: utter_hi
- rule: vip greeting
  condition:
  - slot_was_set:
    - vip: true
  steps:
  - intent: greet
  - action: utter_vip
- rule: two actions, then the bot goes on
  steps:
  - intent: ask
  - action: utter_answer
  - action: utter_more
  wait_for_user_input: false
- rule: start the form
  steps:
  - intent: inform
  - action: city_form
  - active_loop: city_form
- rule: stop inside the form
  condition:
  - active_loop: city_form
  steps:
  - intent: stop
  - action: utter_stopped
- rule: submit
  condition:
  - active_loop: city_form
  steps:
  - action: city_form
  - active_loop: null
  - action: utter_done
"""

CONFIG = {"policies": [{"name": "RulePolicy"}]}


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> CoreModel:
    folder = tmp_path_factory.mktemp("bot")
    (folder / "domain.yml").write_text(DOMAIN)
    (folder / "rules.yml").write_text(RULES)
    domain = Domain.load(folder / "domain.yml")
    return CoreModel.train(domain, folder / "rules.yml", CONFIG)


def next_action(model: CoreModel, *events) -> tuple[str, str | None]:
    prediction = model.predict(tracker(model.domain, *events, history=8))
    return prediction.action, prediction.policy


def test_conversation_start_rule_only_at_the_start(model):
    assert next_action(model, act("action_listen"), user("greet"))[0] == (
        "utter_welcome"
    )
    later = (act("action_listen"), user("greet"), act("utter_welcome"))
    assert next_action(model, *later)[0] == "action_listen"
    again = (*later, act("action_listen"), user("greet"))
    assert next_action(model, *again) == ("utter_hi", "policy_0_RulePolicy")


def test_condition_on_a_slot_is_the_more_specific_rule(model):
    events = (
        act("action_listen"),
        user("greet"),
        act("utter_welcome"),
        SlotSet(name="vip", value=True),
        act("action_listen"),
        user("greet"),
    )
    assert next_action(model, *events)[0] == "utter_vip"


def test_several_actions_and_no_listen_after_wait_false(model):
    start = (act("action_listen"), user("greet"), act("utter_welcome"))
    ask = (*start, act("action_listen"), user("ask"))
    assert next_action(model, *ask)[0] == "utter_answer"
    assert next_action(model, *ask, act("utter_answer"))[0] == "utter_more"
    # no rule says what follows: not a listen, only the fallback's low score
    after = tracker(model.domain, *ask, act("utter_answer"), act("utter_more"))
    scores = model.ensemble.policies[0].predict(after, model.domain)
    fallback = model.domain.action_index["action_default_fallback"]
    assert scores.max() == scores[fallback] == pytest.approx(0.3)


def test_form_loop_rules(model):
    begin = (act("action_listen"), user("inform"))
    assert next_action(model, *begin)[0] == "city_form"
    active = (*begin, act("city_form"), Form(name="city_form"))
    assert next_action(model, *active)[0] == "action_listen"
    # the user answers: the active form runs again (no rule needed)
    answered = (*active, act("action_listen"), user("inform"))
    assert next_action(model, *answered)[0] == "city_form"
    # a rule with the loop in its condition wins over the loop
    stopped = (*active, act("action_listen"), user("stop"))
    assert next_action(model, *stopped)[0] == "utter_stopped"
    # the form is done: the submit rule, then listen
    # the form asked again: it listens (the submit rule needs the form ended)
    again = (*active, act("action_listen"), user("affirm"))
    assert next_action(model, *again)[0] == "city_form"
    assert next_action(model, *again, act("city_form"))[0] == "action_listen"
    done = (*answered, act("city_form"), Form(name=None))
    assert next_action(model, *done)[0] == "utter_done"
    assert next_action(model, *done, act("utter_done"))[0] == "action_listen"


def test_round_trip(model, tmp_path):
    loaded = CoreModel.load(model.save(tmp_path / "core"))
    events = (act("action_listen"), user("greet"))
    assert next_action(loaded, *events) == next_action(model, *events)


def write_bot(tmp_path: Path, rules: str, stories: str = "") -> tuple[Domain, Path]:
    (tmp_path / "domain.yml").write_text(DOMAIN)
    data = tmp_path / "data"
    data.mkdir()
    (data / "rules.yml").write_text(rules)
    if stories:
        (data / "stories.yml").write_text(stories)
    return Domain.load(tmp_path / "domain.yml"), data


def test_contradicting_rules_are_named(tmp_path):
    rules = RULES.split("- rule: vip")[0] + (
        "- rule: greet differently\n  steps:\n  - intent: greet\n"
        "  - action: utter_answer\n"
    )
    domain, data = write_bot(tmp_path, rules)
    with pytest.raises(TrainingDataError, match="'greet later' and 'greet differ"):
        CoreModel.train(domain, data, CONFIG)


def test_a_rule_contradicting_a_story_is_named(tmp_path):
    story = (
        "stories:\n- story: rude\n  steps:\n  - intent: ask\n  - action: utter_answer"
        "\n  - action: utter_done\n"
    )
    domain, data = write_bot(tmp_path, RULES, story)
    config = {"policies": [{"name": "RulePolicy"}, {"name": "MemoizationPolicy"}]}
    with pytest.raises(TrainingDataError) as info:
        CoreModel.train(domain, data, config)
    message = str(info.value)
    assert "rule 'two actions, then the bot goes on'" in message
    assert "story 'rude'" in message


def test_a_rule_has_one_user_message(tmp_path):
    rules = (
        "rules:\n- rule: long\n  steps:\n  - intent: greet\n  - action: utter_hi\n"
        "  - intent: ask\n  - action: utter_answer\n"
    )
    domain, data = write_bot(tmp_path, rules)
    with pytest.raises(TrainingDataError, match="at most one"):
        CoreModel.train(domain, data, CONFIG)
    relaxed = {"policies": [{"name": "RulePolicy", "restrict_rules": False}]}
    assert CoreModel.train(domain, data, relaxed)


def test_rasa_init_project_rules_apply_anytime():
    domain = Domain.load(RASA_INIT / "domain.yml")
    model = CoreModel.train(domain, RASA_INIT / "data", augmentation_factor=0)
    names = [type(p).__name__ for p in model.ensemble.policies]
    assert names == ["MemoizationPolicy", "RulePolicy", "NeuralPolicy"]
    mid = (
        act("action_listen"),
        user("greet"),
        act("utter_greet"),
        act("action_listen"),
        user("bot_challenge"),
    )
    assert next_action(model, *mid) == ("utter_iamabot", "policy_1_RulePolicy")
    story = (act("action_listen"), user("greet"))
    assert next_action(model, *story)[0] == "utter_greet"


FORM_STORY = """\
stories:
- story: the form in a story
  steps:
  - intent: inform
  - action: city_form
  - active_loop: city_form
  - slot_was_set:
    - requested_slot: city
  - intent: affirm
  - action: city_form
  - active_loop: null
  - action: utter_done
"""


def test_a_story_running_a_form_does_not_contradict_the_submit_rule(tmp_path):
    """The submit rule (loop in its condition, then the form's action and
    ``active_loop: null``) is not the form's every turn: a story that runs the
    form trains, and the form that just ran is followed by a listen."""
    domain, data = write_bot(tmp_path, RULES, FORM_STORY)
    config = {"policies": [{"name": "RulePolicy"}, {"name": "MemoizationPolicy"}]}
    model = CoreModel.train(domain, data, config)
    begin = (act("action_listen"), user("inform"), act("city_form"))
    asked = (
        *begin,
        Form(name="city_form"),
        SlotSet(name="requested_slot", value="city"),
    )
    assert next_action(model, *asked) == ("action_listen", "policy_0_RulePolicy")
    answered = (*asked, act("action_listen"), user("affirm"))
    assert next_action(model, *answered)[0] == "city_form"
    ran = (*answered, act("city_form"))
    assert next_action(model, *ran) == ("action_listen", "policy_0_RulePolicy")
    done = (*ran, Form(name=None), SlotSet(name="requested_slot", value=None))
    assert next_action(model, *done)[0] == "utter_done"
