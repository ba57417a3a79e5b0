"""Rasa 2.x/3.x domains: responses, slot mappings, forms, sessions, domain folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.domain import DEFAULT_INTENTS
from worker.domain import Domain
from worker.domain import SessionConfig
from worker.errors import InvalidDomain
from worker.errors import TrainingDataError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

RASA3 = """\
version: "3.1"
intents:
  - greet
  - inform:
      use_entities: [city]
  - chitchat:
      ignore_entities: [city]
entities:
  - city:
      roles: [departure, destination]
  - size
slots:
  city:
    type: text
    mappings:
    - type: from_entity
      entity: city
      role: departure
  size:
    type: categorical
    values: [small, large]
    mappings:
    - type: from_entity
      entity: size
      conditions:
      - active_loop: order_form
        requested_slot: size
  note:
    type: any
    mappings:
    - type: from_text
      intent: inform
  confirmed:
    type: bool
    influence_conversation: false
    mappings:
    - type: from_intent
      intent: affirm
      value: true
responses:
  utter_greet:
  - text: "Hi {city}!"
    buttons:
    - title: yes
      payload: /affirm
  - text: "Hello"
    channel: slack
  - custom: {"blocks": []}
  - text: "Big one"
    condition:
    - type: slot
      name: size
      value: large
  utter_ask_size:
  - text: Which size?
actions:
  - action_check
  - action_send:
      send_domain: true
forms:
  order_form:
    required_slots:
    - size
    ignored_intents: chitchat
session_config:
  session_expiration_time: 30
  carry_over_slots_to_new_session: false
"""


def load(tmp_path: Path, text: str, name: str = "domain.yml") -> Domain:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return Domain.load(path)


def test_rasa3_domain_loads(tmp_path):
    domain = load(tmp_path, RASA3)
    # responses are actions in Rasa 2+, listed or not
    assert domain.user_actions == (
        "action_check",
        "action_send",
        "utter_greet",
        "utter_ask_size",
    )
    assert domain.forms == ("order_form",)
    assert domain.form_specs["order_form"].required_slots == ("size",)
    assert domain.form_specs["order_form"].ignored_intents == ("chitchat",)
    assert domain.session_config == SessionConfig(30.0, False)
    assert len(domain.templates["utter_greet"]) == 4
    assert domain.entities == ("city", "size")
    assert domain.entity_properties["city"]["roles"] == ["departure", "destination"]
    assert "requested_slot" in domain.slot_by_name


def test_influence_conversation_keeps_slots_out_of_the_state(tmp_path):
    domain = load(tmp_path, RASA3)
    features = set(domain.input_features)
    assert "slot_city_0" in features
    assert not any(f.startswith(("slot_note", "slot_confirmed")) for f in features)
    assert not any(f.startswith("slot_requested_slot") for f in features)
    state = domain.state({}, {"confirmed": True, "city": "Rome"}, None, None)
    assert state == {"slot_city_0": 1.0}


def test_use_and_ignore_entities(tmp_path):
    domain = load(tmp_path, RASA3)
    entities = [{"entity": "city"}, {"entity": "size"}]

    def state(intent: str) -> dict[str, float]:
        message = {"intent": {"name": intent}, "entities": entities}
        return domain.state(message, {}, None, None)

    inform, chitchat, greet = state("inform"), state("chitchat"), state("greet")
    assert "entity_city" in inform and "entity_size" not in inform
    assert "entity_city" not in chitchat and "entity_size" in chitchat
    assert {"entity_city", "entity_size"} <= set(greet)


def test_slot_mappings_fill_as_rasa3_does(tmp_path):
    domain = load(tmp_path, RASA3)
    departure = {"entity": "city", "value": "Rome", "role": "departure"}
    destination = {"entity": "city", "value": "Oslo", "role": "destination"}
    size = {"entity": "size", "value": "large"}
    fills = domain.auto_fill([destination, departure, size], intent="greet")
    # size only inside its form, asked for; note only on inform; no 0.x auto-fill
    assert fills == [("city", "Rome")]
    in_form = domain.auto_fill(
        [size], intent="x", active_loop="order_form", requested_slot="size"
    )
    assert in_form == [("size", "large")]
    assert domain.auto_fill([], intent="inform", text="hi there") == [
        ("note", "hi there")
    ]
    assert domain.auto_fill([], intent="affirm") == [("confirmed", True)]


def test_json_round_trip_keeps_rasa3_parts(tmp_path):
    domain = load(tmp_path, RASA3)
    again = Domain.from_dict(domain.as_dict())
    assert again.as_dict() == domain.as_dict()
    assert again.fingerprint == domain.fingerprint
    assert again.slot_by_name["size"].mappings == domain.slot_by_name["size"].mappings


def test_zero_x_domain_json_is_unchanged(tmp_path):
    text = "intents: [greet]\nslots:\n  name:\n    type: text\ntemplates:\n"
    text += "  utter_greet:\n  - hi\nactions: [utter_greet]\n"
    assert load(tmp_path, text).as_dict() == {
        "config": {"store_entities_as_slots": True},
        "intents": [{"greet": {"use_entities": True}}],
        "entities": [],
        "slots": {
            "name": {
                "type": "rasa_core.slots.TextSlot",
                "initial_value": None,
                "auto_fill": True,
            }
        },
        "templates": {"utter_greet": [{"text": "hi"}]},
        "actions": ["utter_greet"],
        "forms": [],
    }


def test_formbot_2_0_domain_loads_unchanged():
    domain = Domain.load(FIXTURES / "formbot" / "domain.yml")
    spec = domain.form_specs["restaurant_form"]
    assert spec.required_slots == (
        "cuisine",
        "num_people",
        "outdoor_seating",
        "preferences",
        "feedback",
    )
    seating = domain.slot_by_name["outdoor_seating"].mappings
    assert [m["type"] for m in seating] == ["from_entity", "from_intent", "from_intent"]
    # as Rasa 2's forms: entities fill any slot of the active form, intents and
    # text only the slot it asks for
    form = {"active_loop": "restaurant_form"}
    assert [m["conditions"] for m in seating] == [
        [form],
        [{**form, "requested_slot": "outdoor_seating"}],
        [{**form, "requested_slot": "outdoor_seating"}],
    ]
    fills = domain.auto_fill(
        [],
        intent="affirm",
        active_loop="restaurant_form",
        requested_slot="outdoor_seating",
        text="yes",
    )
    assert fills == [("outdoor_seating", True)]
    fills = domain.auto_fill(
        [{"entity": "cuisine", "value": "italian"}],
        intent="inform",
        active_loop="restaurant_form",
        requested_slot="cuisine",
        text="italian food",
    )
    assert fills == [("cuisine", "italian")]
    # an entity fills a slot the form is not asking for
    fills = domain.auto_fill(
        [{"entity": "seating", "value": "outside"}],
        intent="inform",
        active_loop="restaurant_form",
        requested_slot="cuisine",
        text="outside",
    )
    assert fills == [("outdoor_seating", "outside")]
    assert domain.templates["utter_ask_cuisine"] == [{"text": "What cuisine?"}]
    assert domain.intent_by_name["chitchat"].use_entities == ()


def test_domain_folder_is_merged(tmp_path):
    (tmp_path / "domain").mkdir()
    (tmp_path / "domain" / "a.yml").write_text(
        'version: "3.1"\nintents: [greet]\nresponses:\n  utter_hi:\n  - text: hi\n'
    )
    (tmp_path / "domain" / "b.yml").write_text(
        'version: "3.1"\nintents: [greet, bye]\nactions: [action_x]\n'
    )
    (tmp_path / "domain" / "nlu.yml").write_text("nlu:\n- intent: greet\n")
    domain = Domain.load(tmp_path / "domain")
    # Rasa 2+'s default intents come after the listed ones
    assert domain.intent_names == ("greet", "bye", *DEFAULT_INTENTS)
    assert domain.user_actions == ("action_x", "utter_hi")
    assert "utter_hi" in domain.templates


def test_domain_folder_conflict_names_both_files(tmp_path):
    (tmp_path / "a.yml").write_text("responses:\n  utter_hi:\n  - text: hi\n")
    (tmp_path / "b.yml").write_text("responses:\n  utter_hi:\n  - text: hello\n")
    with pytest.raises(InvalidDomain) as info:
        Domain.load(tmp_path)
    assert info.value.path == str(tmp_path / "b.yml")
    assert info.value.line == 2
    assert "a.yml" in str(info.value)


def test_error_in_a_folder_names_its_file_and_line(tmp_path):
    (tmp_path / "a.yml").write_text("intents: [greet]\n")
    (tmp_path / "b.yml").write_text("intents:\n- bye\n- 3\n")
    with pytest.raises(InvalidDomain) as info:
        Domain.load(tmp_path)
    assert (info.value.path, info.value.line) == (str(tmp_path / "b.yml"), 3)


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("slots:\n  a:\n    type: text\n    mappings:\n    - type: x\n", 2, "type"),
        (
            "slots:\n  a:\n    type: text\n    mappings:\n    - type: from_entity\n",
            2,
            "needs 'entity'",
        ),
        ("slots:\n  a:\n    type: text\n    influence_conversation: 1\n", 2, "bool"),
        ("responses:\n  utter_a:\n  - foo: 1\n", 2, "variation"),
        ("responses:\n  utter_a:\n  - text: a\n    buttons: x\n", 2, "buttons"),
        ("session_config:\n  session_expiration_time: -1\n", 1, "minutes"),
        ("forms:\n  f:\n    required_slots: [missing]\n", 2, "undeclared"),
        ("intents:\n- a:\n    use_entities: 3\n", 2, "invalid"),
        ("entities:\n- a:\n    roles: r\n", 2, "roles"),
        ("version: 3.1\n", 1, "string"),
        ("e2e_actions: [hi]\n", 1, "unknown top-level"),
        (
            "templates:\n  utter_a:\n  - hi\nresponses:\n  utter_a:\n  - hi\n",
            5,
            "twice",
        ),
    ],
)
def test_malformed_domain_names_file_and_line(tmp_path, text, line, fragment):
    with pytest.raises(InvalidDomain) as info:
        load(tmp_path, text)
    assert info.value.path == str(tmp_path / "domain.yml")
    assert info.value.line == line
    assert fragment in str(info.value)


def test_scalars_resolve_as_yaml_1_2(tmp_path):
    """Rasa reads YAML 1.2: ``yes``/``no`` stay strings, so the slot's values do."""
    text = "slots:\n  ok:\n    type: categorical\n    values: [yes, no, on]\n"
    text += "    initial_value: 0777\n"
    slot = load(tmp_path, text).slot_by_name["ok"]
    assert slot.values == ("yes", "no", "on")
    assert slot.initial_value == 777
    assert slot.features("yes") == [1.0, 0.0, 0.0]


def test_the_fallback_rule_needs_no_listed_intent(tmp_path):
    """Rasa's fallback rule names ``nlu_fallback`` (FallbackClassifier's intent),
    which a Rasa 2+ domain has without listing it; a 0.x domain has no default
    intents, so its features stay as they were."""
    from worker.model import CoreModel

    domain = load(tmp_path, RASA3)
    assert set(DEFAULT_INTENTS) <= set(domain.intent_names)
    (tmp_path / "rules.yml").write_text(
        "rules:\n- rule: Ask the user to rephrase whenever they send a message "
        "with low NLU confidence\n  steps:\n  - intent: nlu_fallback\n"
        "  - action: utter_greet\n"
    )
    model = CoreModel.train(
        domain, tmp_path / "rules.yml", {"policies": [{"name": "RulePolicy"}]}
    )
    from worker.events import ActionExecuted
    from worker.events import UserUttered
    from worker.tracker import Tracker

    tracker = Tracker("t", domain, 5)
    tracker.update(ActionExecuted(name="action_listen"))
    tracker.update(
        UserUttered(
            text="zzz",
            parse_data={"intent": {"name": "nlu_fallback", "confidence": 1.0}},
        )
    )
    assert model.predict(tracker).action == "utter_greet"
    old = load(tmp_path, "intents: [greet]\n", "old.yml")
    assert old.intent_names == ("greet",)


def test_rasa2_built_in_actions_need_no_listing(tmp_path):
    """Rasa's two-stage fallback rule and a form's unhappy-path rule name
    ``action_two_stage_fallback`` and ``action_deactivate_loop``, built-ins a
    Rasa 2+ domain has without listing them (a 0.x domain's actions stay as
    they were); a Rasa 2+ domain without session_config has Rasa's default."""
    from worker.model import CoreModel

    domain = load(tmp_path, "version: '3.1'\nintents: [greet]\n")
    assert domain.session_config == SessionConfig(60.0, True)
    for name in ("action_two_stage_fallback", "action_deactivate_loop"):
        assert name in domain.action_names
    listed = load(
        tmp_path, "version: '3.1'\nactions: [action_deactivate_loop]\n", "l.yml"
    )
    assert listed.user_actions == ()
    (tmp_path / "rules.yml").write_text(
        "rules:\n- rule: two-stage fallback\n  steps:\n  - intent: nlu_fallback\n"
        "  - action: action_two_stage_fallback\n"
        "  - active_loop: action_two_stage_fallback\n"
    )
    CoreModel.train(
        domain, tmp_path / "rules.yml", {"policies": [{"name": "RulePolicy"}]}
    )
    old = load(tmp_path, "intents: [greet]\n", "old.yml")
    assert "action_two_stage_fallback" not in old.action_names
    assert old.session_config is None


def test_the_first_mapping_that_finds_a_value_fills_the_slot(tmp_path):
    """formbot's ``feedback``: its entity when the message has one, else the
    text (Rasa takes the first mapping that applies, not the last)."""
    domain = load(
        tmp_path,
        "version: '3.1'\nentities: [feedback]\nslots:\n  feedback:\n    type: text\n"
        "    mappings:\n    - type: from_entity\n      entity: feedback\n"
        "    - type: from_text\n",
    )
    entity = [{"entity": "feedback", "value": "great"}]
    text = "my feedback is great"
    assert domain.auto_fill(entity, text=text) == [("feedback", "great")]
    assert domain.auto_fill([], text=text) == [("feedback", text)]


FAQ_DOMAIN = """\
version: "3.1"
intents: [greet, faq]
responses:
  utter_greet:
  - text: hi
  utter_faq/hours:
  - text: nine to five
  utter_faq/parking:
  - text: behind the building
"""


def test_responses_of_a_retrieval_intent_give_its_retrieval_action() -> None:
    domain = Domain.from_yaml(FAQ_DOMAIN)
    assert domain.retrieval_intents == {"faq"}
    assert "utter_faq" in domain.action_names
    assert "utter_faq/hours" not in domain.action_names
    # listed by hand, as Rasa 1.x asked, it is not listed twice
    listed = Domain.from_yaml(FAQ_DOMAIN + "actions: [utter_faq]\n")
    assert listed.action_names.count("utter_faq") == 1


def test_responses_from_data_files_join_the_domain() -> None:
    domain = Domain.from_yaml('version: "3.1"\nintents: [chitchat]\n')
    merged = domain.with_responses(
        {"utter_chitchat/name": [{"text": "I am a bot"}]}, "data/responses.yml"
    )
    assert merged.retrieval_intents == {"chitchat"}
    assert "utter_chitchat" in merged.action_names
    assert merged.templates["utter_chitchat/name"] == [{"text": "I am a bot"}]
    assert domain.with_responses({}) is domain
    with pytest.raises(InvalidDomain, match="defined in the domain and in the data"):
        merged.with_responses({"utter_chitchat/name": [{"text": "again"}]})
    with pytest.raises(InvalidDomain, match="unknown keys"):
        domain.with_responses({"utter_chitchat/x": [{"text": "a", "colour": 1}]})


def test_a_key_given_twice_is_an_error_naming_its_line() -> None:
    text = FAQ_DOMAIN + "responses:\n  utter_bye:\n  - text: bye\n"
    with pytest.raises(TrainingDataError, match=r"<domain>:10: .*'responses' twice"):
        Domain.from_yaml(text)
    # the same value twice loses nothing (Rasa's formbot lists its actions twice)
    assert Domain.from_yaml(FAQ_DOMAIN + "intents: [greet, faq]\n").intent_names
