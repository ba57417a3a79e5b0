"""Reading domains: every construct, and errors that name the file and line."""

import pytest

from tests.data import RASA_EXAMPLES
from worker.domain import DEFAULT_ACTIONS
from worker.domain import Domain
from worker.errors import InvalidDomain
from worker.errors import TrainingDataError
from worker.errors import UnknownAction

EXAMPLES = RASA_EXAMPLES

FULL = """
intents:
  - greet
  - chitchat:
      use_entities: false
  - stop:
      triggers: utter_bye
entities: [name, cuisine]
slots:
  name: {type: text}
  happy: {type: bool}
  size: {type: categorical, values: [Small, large]}
  price: {type: float, min_value: 10, max_value: 20}
  items: {type: list}
  internal: {type: unfeaturized, auto_fill: false}
  legacy: {type: rasa_core.slots.TextSlot, initial_value: hi}
templates:
  utter_bye:
    - "bye {name}"
    - text: "see you"
      buttons: [{title: ok, payload: /ok}]
actions: [utter_bye, action_search, action_listen]
forms: [restaurant_form]
config:
  store_entities_as_slots: false
"""


def test_every_construct():
    d = Domain.from_yaml(FULL)
    assert d.intent_by_name["chitchat"].use_entities is False
    assert d.intent_by_name["stop"].triggers == "utter_bye"
    assert [s.name for s in d.slots] == sorted(s.name for s in d.slots)
    assert "requested_slot" in d.slot_by_name  # added because of the form
    assert d.action_names[: len(DEFAULT_ACTIONS)] == DEFAULT_ACTIONS
    assert d.action_names[-3:] == ("utter_bye", "action_search", "restaurant_form")
    assert d.templates["utter_bye"][0] == {"text": "bye {name}"}
    assert d.store_entities_as_slots is False
    assert d.slot_by_name["legacy"].initial_value == "hi"
    assert d.slot_by_name["size"].features("SMALL") == [1.0, 0.0]
    assert d.slot_by_name["price"].features(15) == [0.5]
    assert d.slot_by_name["happy"].features(False) == [1.0, 0.0]
    assert d.slot_by_name["happy"].features(None) == [0.0, 0.0]
    assert d.slot_by_name["items"].features([]) == [0.0]


def test_yaml_output_loads_back_identically():
    d = Domain.from_yaml(FULL)
    again = Domain.from_yaml(d.to_yaml())
    assert again == d and again.fingerprint == d.fingerprint
    assert Domain.from_dict(d.as_dict()) == d


def test_state_featurisation():
    d = Domain.from_yaml(FULL)
    msg = {"intent": {"name": "chitchat"}, "entities": [{"entity": "name"}]}
    state = d.state(msg, {"name": "x", "items": [1]}, "action_listen", None)
    assert state == {
        "intent_chitchat": 1.0,
        "slot_name_0": 1.0,
        "slot_items_0": 1.0,
        "prev_action_listen": 1.0,
    }  # no entity features: chitchat has use_entities false
    msg = {"intent": {"name": "greet"}, "entities": [{"entity": "name"}]}
    assert "entity_name" in d.state(msg, {}, None, "restaurant_form")
    assert d.state({"intent": {}, "entities": []}, {}, None, None) == {}


@pytest.mark.parametrize(
    "name",
    [
        "moodbot/domain.yml",
        "concertbot/domain.yml",
        "server_test_fixtures/default.yml",
        "server_test_fixtures/default_with_slots.yml",
    ],
)
def test_the_rasa_examples_load(name):
    d = Domain.load(EXAMPLES / name)
    assert d.index_of_action("action_listen") == 0


def test_unknown_action_is_an_error():
    with pytest.raises(UnknownAction):
        Domain.from_yaml(FULL).index_of_action("nope")


@pytest.mark.parametrize(
    ("text", "line", "match"),
    [
        ("intents:\n  - greet\n  - greet\n", 3, "twice"),
        ("intents: [a]\nslots:\n  s:\n    type: magic\n", 3, "type"),
        ("intents: [a]\nslots:\n  s: {type: categorical}\n", 3, "values"),
        ("intents:\n  - a:\n      triggers: nope\n", 2, "unknown action"),
        ("intents: [a]\ntemplates:\n  utter_x: []\n", 3, "variations"),
        ("intents: [a]\nbogus: 1\n", 2, "unknown top-level"),
        ("intents: [a\n", 2, "invalid YAML"),
    ],
)
def test_errors_name_the_file_and_line(tmp_path, text, line, match):
    path = tmp_path / "domain.yml"
    path.write_text(text)
    with pytest.raises(TrainingDataError, match=match) as info:
        Domain.load(path)
    assert info.value.path == str(path)
    assert info.value.line == line
    assert f"{path}:{line}:" in str(info.value)


def test_missing_file():
    with pytest.raises(TrainingDataError, match="not found"):
        Domain.load("/nonexistent/domain.yml")


def test_invalid_domain_is_a_training_data_error():
    assert issubclass(InvalidDomain, TrainingDataError)


def test_a_float_slot_featurizes_nan_as_no_value():
    from worker.slots import Slot

    slot = Slot(name="n", type="float", min_value=0.0, max_value=10.0)
    assert slot.features("nan") == [0.0]
    assert slot.features("inf") == [1.0]
    assert slot.features(5) == [0.5]


def test_a_categorical_slot_with_other_featurizes_unlisted_values_as_other():
    d = Domain.from_yaml(
        "intents: [a]\nslots:\n"
        "  food: {type: categorical, values: [dontcare, __other__]}\n"
        "  size: {type: categorical, values: [small, large]}\n"
    )
    food = d.slot_by_name["food"]
    assert food.features("dontcare") == [1.0, 0.0]
    assert food.features("Italian") == [0.0, 1.0]
    assert food.features(None) == [0.0, 0.0]
    # Without __other__ an unlisted value is no value, as in Rasa Core 0.x.
    assert d.slot_by_name["size"].features("medium") == [0.0, 0.0]
