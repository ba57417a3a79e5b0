"""Stories and rules in Rasa 2.x/3.x YAML, read from real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.domain import Domain
from worker.errors import TrainingDataError
from worker.events import ActionExecuted
from worker.events import ActiveLoop
from worker.events import SlotSet
from worker.events import UserUttered
from worker.training import read_stories

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
RASA_INIT = FIXTURES / "rasa_init"

DOMAIN = """\
version: "3.1"
intents: [greet, inform, affirm, deny, stop]
entities:
  - city:
      roles: [from, to]
slots:
  city:
    type: text
    mappings:
    - type: from_entity
      entity: city
  size:
    type: categorical
    values: [small, large]
    mappings:
    - type: from_entity
      entity: size
  tags:
    type: list
    mappings:
    - type: custom
responses:
  utter_greet:
  - text: hi
  utter_ask_city:
  - text: where?
  utter_done:
  - text: done
actions: [action_search]
forms:
  city_form:
    required_slots: [city]
"""

STORIES = """\
version: "3.1"
nlu:
- intent: greet
  examples: |
    - hi
stories:
- story: form path
  steps:
  - intent: greet
    entities:
    - city: Berlin
      role: to
    - size
  - action: utter_greet
  - action: city_form
  - active_loop: city_form
  - slot_was_set:
    - city
    - size: large
    - tags
  - active_loop: null
  - action: utter_done
  - checkpoint: after_form
- story: continued
  steps:
  - checkpoint: after_form
    slot_was_set:
    - size: large
  - or:
    - intent: affirm
    - intent: deny
  - action: utter_done
  - or:
    - slot_was_set:
      - size: small
    - slot_was_set:
      - size: large
  - user: "I go to [Paris]{\\"entity\\": \\"city\\", \\"role\\": \\"to\\"}"
    intent: inform
  - action: action_search
rules:
- rule: stop ends the form
  condition:
  - active_loop: city_form
  - slot_was_set:
    - size: large
  steps:
  - intent: stop
  - action: utter_done
  wait_for_user_input: false
- rule: greet at the start
  conversation_start: true
  steps:
  - intent: greet
  - action: utter_greet
"""


@pytest.fixture
def domain(tmp_path: Path) -> Domain:
    path = tmp_path / "domain.yml"
    path.write_text(DOMAIN)
    return Domain.load(path)


def write(tmp_path: Path, text: str, name: str = "stories.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_story_steps_and_events(tmp_path, domain):
    steps = read_stories(write(tmp_path, STORIES), domain)
    form = next(s for s in steps if s.block_name == "form path")
    assert form.starts_story
    user = form.events[0]
    assert isinstance(user, UserUttered)
    assert user.intent_name == "greet"
    assert user.entities == [
        {"entity": "city", "value": "Berlin", "role": "to"},
        {"entity": "size", "value": ""},
    ]
    assert form.events[1:] == (
        ActionExecuted(name="utter_greet"),
        ActionExecuted(name="city_form"),
        ActiveLoop(name="city_form"),
        SlotSet(name="city", value="filled"),
        SlotSet(name="size", value="large"),
        SlotSet(name="tags", value=["filled"]),
        ActiveLoop(name=None),
        ActionExecuted(name="utter_done"),
    )
    assert [c.name for c in form.end_checkpoints] == ["after_form"]


def test_checkpoints_or_and_end_to_end_user_text(tmp_path, domain):
    steps = read_stories(write(tmp_path, STORIES), domain)
    continued = [s for s in steps if s.block_name == "continued"]
    # the start checkpoint with its slot condition, two forks for each 'or'
    first = continued[0]
    assert first.start_checkpoints[0].name == "after_form"
    assert first.start_checkpoints[0].conditions == {"size": "large"}
    intents = sorted(s.events[0].intent_name for s in continued[:2])
    assert intents == ["affirm", "deny"]
    slot_forks = [
        s for s in continued if len(s.events) == 2 and isinstance(s.events[1], SlotSet)
    ]
    assert [s.events[0] for s in slot_forks] == [ActionExecuted(name="utter_done")] * 2
    assert sorted(s.events[1].value for s in slot_forks) == ["large", "small"]
    last = continued[-1]
    message = last.events[-2]
    assert message.text == "I go to Paris"
    assert message.entities == [
        {"start": 8, "end": 13, "value": "Paris", "entity": "city", "role": "to"}
    ]
    assert last.events[-1] == ActionExecuted(name="action_search")


def test_rules_keep_condition_and_flags(tmp_path, domain):
    steps = read_stories(write(tmp_path, STORIES), domain)
    stop = next(s for s in steps if s.block_name == "stop ends the form")
    assert stop.rule is not None
    assert stop.rule.condition == (
        ActiveLoop(name="city_form"),
        SlotSet(name="size", value="large"),
    )
    assert stop.rule.wait_for_user_input is False
    assert stop.rule.conversation_start is False
    greet = next(s for s in steps if s.block_name == "greet at the start")
    assert greet.rule.conversation_start is True
    assert all(s.rule is None for s in steps if "path" in s.block_name)


def test_rasa_init_project_reads_unchanged():
    domain = Domain.load(RASA_INIT / "domain.yml")
    steps = read_stories(RASA_INIT / "data", domain)
    names = {s.block_name for s in steps}
    assert {"happy path", "sad path 1", "sad path 2"} <= names
    assert sum(s.rule is not None for s in steps) == 2
    # responses are actions without an 'actions:' list (Rasa 2+)
    assert "utter_iamabot" in domain.action_index
    test_steps = read_stories(RASA_INIT / "tests" / "test_stories.yml", domain)
    assert len(test_steps) == 7
    hello = test_steps[0].events[0]
    assert (hello.text, hello.intent_name) == ("hello there!", "greet")


def test_markdown_and_yaml_mix_in_one_folder(tmp_path, domain):
    data = tmp_path / "data"
    data.mkdir()
    write(data, STORIES)
    write(data, "## md story\n* greet\n  - utter_greet\n", "stories.md")
    write(data, "## intent:greet\n- hi\n", "nlu.md")
    write(data, "nlu:\n- intent: greet\n  examples: |\n    - hey\n", "nlu.yml")
    names = {s.block_name for s in read_stories(data, domain)}
    assert {"md story", "form path", "greet at the start"} <= names


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("stories:\n- story: a\n  steps:\n  - action: utter_nope\n", 4, "not in"),
        ("stories:\n- story: a\n  steps:\n  - intent: nope\n", 4, "not in"),
        ("stories:\n- story: a\n  steps:\n  - user: hi\n", 4, "needs an 'intent'"),
        ("stories:\n- story: a\n  steps:\n  - bot: hi\n", 4, "bot"),
        ("stories:\n- story: a\n  steps:\n  - acton: x\n", 4, "unknown step"),
        ("stories:\n- story: a\n  steps: []\n", 2, "steps"),
        ("stories:\n- stroy: a\n", 2, "'story'"),
        ("stories:\n- story: a\n  step: []\n", 3, "unknown keys"),
        ("stories:\n- story: a\n  steps:\n  - slot_was_set:\n    - nope\n", 4, "slot"),
        (
            "stories:\n- story: a\n  steps:\n  - slot_was_set:\n    - size\n",
            4,
            "needs a value",
        ),
        ("stories:\n- story: a\n  steps:\n  - active_loop: utter_x\n", 4, "form"),
        ("stories:\n- story: a\n  steps:\n  - or:\n    - intent: greet\n", 4, "two"),
        (
            "rules:\n- rule: a\n  condition:\n  - intent: greet\n  steps:\n"
            "  - action: utter_done\n",
            4,
            "condition",
        ),
        (
            "rules:\n- rule: a\n  wait_for_user_input: 0\n  steps:\n"
            "  - action: utter_done\n",
            3,
            "true or false",
        ),
        (
            "stories:\n- story: a\n  steps:\n  - user: '[x](city'\n    intent: greet\n",
            4,
            "annotation",
        ),
    ],
)
def test_malformed_stories_name_file_and_line(tmp_path, domain, text, line, fragment):
    path = write(tmp_path, text)
    with pytest.raises(TrainingDataError) as info:
        read_stories(path, domain)
    assert (info.value.path, info.value.line) == (str(path), line)
    assert fragment in str(info.value)
