"""Training dialogues: listens, slot fills, checkpoints, OR, augmentation."""

from tests.data import RASA_EXAMPLES
from worker.domain import Domain
from worker.events import ActionExecuted
from worker.events import SlotSet
from worker.events import UserUttered
from worker.training import generate_dialogues
from worker.training import parse_stories
from worker.training import read_stories
from worker.training import story_step

FIXTURES = RASA_EXAMPLES


def summary(dialogue) -> list[str]:
    out = []
    for event in dialogue.events:
        if isinstance(event, UserUttered):
            ents = ",".join(f"{e['entity']}={e['value']}" for e in event.entities)
            out.append(f"*{event.intent_name}" + (f"({ents})" if ents else ""))
        elif isinstance(event, SlotSet):
            out.append(f"slot {event.name}={event.value}")
        else:
            out.append(event.name)
    return out


def generate(text: str, domain: Domain, **kwargs):
    kwargs.setdefault("augmentation_factor", 0)
    return generate_dialogues(parse_stories(text, domain), domain, **kwargs)


def test_listens_are_inserted_and_appended():
    domain = Domain.load(FIXTURES / "moodbot" / "domain.yml")
    (dialogue,) = generate("## s\n* greet\n - utter_greet\n - action_listen\n", domain)
    assert summary(dialogue) == [
        "action_listen",
        "*greet",
        "utter_greet",
        "action_listen",
    ]
    assert not dialogue.is_augmented
    assert dialogue.unpredictable == frozenset()


def test_first_action_before_any_user_turn_is_no_label():
    domain = Domain.load(FIXTURES / "moodbot" / "domain.yml")
    (dialogue,) = generate("## s\n - utter_greet\n* greet\n - utter_happy\n", domain)
    assert summary(dialogue)[:3] == ["utter_greet", "action_listen", "*greet"]
    assert dialogue.unpredictable == {0}


def test_entities_fill_auto_fill_slots():
    domain = Domain.from_yaml(
        """
intents: [inform]
entities: [city, name, tag]
slots:
  city: {type: list}
  name: {type: text}
  tag: {type: text, auto_fill: false}
actions: [utter_ok]
"""
    )
    text = '## s\n* inform{"city": ["A", "B"], "name": "x", "tag": "t"}\n - utter_ok\n'
    (dialogue,) = generate(text, domain)
    assert summary(dialogue)[2:4] == ["slot city=['A', 'B']", "slot name=x"]
    (dialogue,) = generate(
        '## s\n* inform{"name": "x"}\n* inform{"name": "y"}\n - utter_ok\n', domain
    )
    assert "slot name=y" in summary(dialogue)

    off = Domain.from_yaml(
        "intents: [inform]\nentities: [name]\nslots: {name: {type: text}}\n"
        "actions: [utter_ok]\nconfig: {store_entities_as_slots: false}\n"
    )
    (dialogue,) = generate('## s\n* inform{"name": "x"}\n - utter_ok\n', off)
    assert not any(isinstance(e, SlotSet) for e in dialogue.events)


def test_checkpoints_and_or_on_the_server_fixture():
    domain = Domain.load(FIXTURES / "server_test_fixtures" / "default.yml")
    steps = read_stories(
        FIXTURES / "server_test_fixtures" / "stories_defaultdomain.md", domain
    )
    dialogues = generate_dialogues(steps, domain, augmentation_factor=0)
    got = sorted((d.name, tuple(summary(d))) for d in dialogues)
    tail = (
        "utter_greet",
        "action_listen",
        "*default",
        "utter_default",
        "action_listen",
    )
    assert got == sorted(
        [
            (
                "simple_story_with_multiple_turns",
                (
                    "action_listen",
                    "*greet",
                    "utter_greet",
                    "action_listen",
                    "*default",
                    "utter_default",
                    "action_listen",
                    "*goodbye",
                    "utter_goodbye",
                    "action_listen",
                ),
            ),
            (
                "simple_story_with_only_end > simple_story_with_only_start",
                ("action_listen", "*greet", *tail),
            ),
            (
                "simple_story_with_only_end > simple_story_with_only_start",
                ("action_listen", "*greet(name=Peter)", *tail),
            ),
        ]
    )


def test_conditions_filter_by_slot_value():
    domain = Domain.from_yaml(
        "intents: [inform, greet]\nentities: [name]\nslots: {name: {type: text}}\n"
        "actions: [utter_ann, utter_other]\n"
    )
    text = """
## ann
* inform{"name": "Ann"}
> told
## bob
* inform{"name": "Bob"}
> told
## for ann
> told{"name": "Ann"}
* greet
  - utter_ann
"""
    dialogues = generate(text, domain)
    assert [d.name for d in dialogues] == ["ann > for ann"]


def test_cycles_are_cut_and_unused_checkpoints_warned(caplog):
    domain = Domain.load(FIXTURES / "moodbot" / "domain.yml")
    text = """
## loop start
* greet
  - utter_greet
> again
## loop body
> again
* mood_unhappy
  - utter_cheer_up
> again
## dangling
> nobody_ends_here
* goodbye
  - utter_goodbye
"""
    dialogues = generate(text, domain)
    assert dialogues  # finite despite the cycle
    assert all(d.name.startswith("loop start") for d in dialogues)
    assert "nobody_ends_here" in caplog.text


def test_augmentation_is_seeded_capped_and_marked():
    domain = Domain.load(FIXTURES / "moodbot" / "domain.yml")
    steps = read_stories(FIXTURES / "moodbot" / "data" / "stories.md", domain)
    first = generate_dialogues(steps, domain, augmentation_factor=5, seed=7)
    again = generate_dialogues(steps, domain, augmentation_factor=5, seed=7)
    other = generate_dialogues(steps, domain, augmentation_factor=5, seed=8)
    assert [d.events for d in first] == [d.events for d in again]
    assert [d.events for d in first] != [d.events for d in other]
    plain = [d for d in first if not d.is_augmented]
    glued = [d for d in first if d.is_augmented]
    assert len(plain) == 4
    assert 0 < len(glued) <= 50
    for dialogue in glued:
        listens = [
            i
            for i, e in enumerate(dialogue.events[:-1])
            if isinstance(e, ActionExecuted)
            and e.name == "action_listen"
            and isinstance(dialogue.events[i + 1], ActionExecuted)
            and dialogue.events[i + 1].name == "action_listen"
        ]
        assert not listens  # the story end's listen was removed before gluing


def test_duplicates_are_removed_unless_asked_not_to():
    domain = Domain.load(FIXTURES / "moodbot" / "domain.yml")
    text = "## a\n* greet\n - utter_greet\n## b\n* greet\n - utter_greet\n"
    assert len(generate(text, domain)) == 1
    assert len(generate(text, domain, remove_duplicates=False)) == 2


def test_a_story_fills_conditioned_mappings_with_its_requested_slot():
    domain = Domain.from_yaml(
        """
intents: [inform]
entities: [food, dontcare]
slots:
  requested_slot: {type: unfeaturized}
  food:
    type: text
    mappings:
      - {type: from_entity, entity: food}
      - type: from_entity
        entity: dontcare
        conditions: [{requested_slot: food}]
actions: [utter_ask_food, utter_ok]
"""
    )
    text = (
        '## s\n* inform{"dontcare": "dontcare"}\n - utter_ask_food\n'
        ' - slot{"requested_slot": "food"}\n* inform{"dontcare": "dontcare"}\n'
        " - utter_ok\n"
    )
    (dialogue,) = generate(text, domain)
    fills = [e for e in dialogue.events if isinstance(e, SlotSet)]
    # The first "don't care" answers no question; the second answers for food.
    assert [(e.name, e.value) for e in fills] == [
        ("requested_slot", "food"),
        ("food", "dontcare"),
    ]
    # Written back as a story, the implied fill goes and the explicit one stays.
    step = story_step(dialogue, domain)
    assert [(e.name, e.value) for e in step.events if isinstance(e, SlotSet)] == [
        ("requested_slot", "food")
    ]
