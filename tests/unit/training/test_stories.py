"""Story Markdown: every construct of Rasa Core 0.14, and every malformed line."""

from pathlib import Path

import pytest

from worker.domain import Domain
from worker.errors import TrainingDataError
from worker.events import ActionExecuted
from worker.events import FollowupAction
from worker.events import Form
from worker.events import Restarted
from worker.events import SlotSet
from worker.events import UserUttered
from worker.training import STORY_START
from worker.training import parse_stories
from worker.training import read_stories

DOMAIN = Domain.from_yaml(
    """
intents: [greet, inform, affirm, thankyou, goodbye]
entities: [name, city]
slots:
  name: {type: text}
  count: {type: float}
actions: [utter_greet, utter_goodbye, action_search]
forms: [search_form]
"""
)


def parse(text: str):
    return parse_stories(text, DOMAIN, "stories.md")


def test_user_lines_actions_and_comments():
    (step,) = parse(
        """
<!-- a comment before the first story -->
## greet story     <!-- trailing comment -->
* greet
  - utter_greet    <!-- another -->
* /inform{"name": "Ann", "city": ["Rome", "Oslo"]}
  - action_search
* affirm@0.7
  - utter_goodbye
"""
    )
    assert step.block_name == "greet story"
    assert [c.name for c in step.start_checkpoints] == [STORY_START]
    assert step.end_checkpoints == ()
    greet, act, inform, search, affirm, bye = step.events
    assert isinstance(greet, UserUttered) and greet.intent_name == "greet"
    assert greet.intent["confidence"] == 1.0
    assert act == ActionExecuted(name="utter_greet")
    assert inform.intent_name == "inform"
    assert inform.entities == [
        {"entity": "name", "value": "Ann"},
        {"entity": "city", "value": "Rome"},
        {"entity": "city", "value": "Oslo"},
    ]
    assert search == ActionExecuted(name="action_search")
    assert affirm.intent == {"name": "affirm", "confidence": 0.7}
    assert bye.name == "utter_goodbye"


def test_multiline_comment_is_skipped():
    (step,) = parse(
        "## s\n<!-- starts\n* goodbye\n ends -->\n* greet\n - utter_greet\n"
    )
    assert [e.intent_name for e in step.events[:1]] == ["greet"]


def test_slot_and_event_lines():
    (step,) = parse(
        """
## events
* greet
  - slot{"name": "Ann", "count": 2}
  - search_form
  - form{"name": "search_form"}
  - form{"name": null}
  - followup{"name": "utter_greet"}
  - action_listen
  - restart
* form: inform
  - form: search_form
"""
    )
    events = step.events[1:]
    assert events[0] == SlotSet(name="name", value="Ann")
    assert events[1] == SlotSet(name="count", value=2)
    assert events[2] == ActionExecuted(name="search_form")
    assert events[3] == Form(name="search_form")
    assert events[4] == Form(name=None)
    assert events[5] == FollowupAction(name="utter_greet")
    assert events[6] == ActionExecuted(name="action_listen")
    assert events[7] == Restarted()
    assert len(events) == 8


def test_end_to_end_line_keeps_text_and_markup_entities():
    (step,) = parse("## e2e\n* inform: I am [Ann](name) from [NY](city:New York)\n")
    (message,) = step.events
    assert message.text == "I am Ann from NY"
    assert message.intent_name == "inform"
    assert message.entities == [
        {"entity": "name", "value": "Ann", "start": 5, "end": 8},
        {"entity": "city", "value": "New York", "start": 14, "end": 16},
    ]
    (step,) = parse("## e2e\n* greet: /greet\n")
    assert step.events[0].text == "/greet"


def test_checkpoints_start_end_and_conditions():
    steps = parse(
        """
## first
* greet
  - utter_greet
> asked

## second
> asked{"name": "Ann"}
> other
* goodbye
  - utter_goodbye
"""
    )
    first, second = steps
    assert [c.name for c in first.end_checkpoints] == ["asked"]
    assert [c.name for c in second.start_checkpoints] == ["asked", "other"]
    assert second.start_checkpoints[0].conditions == {"name": "Ann"}
    assert second.end_checkpoints == ()


def test_or_forks_the_block_joined_by_a_generated_checkpoint():
    steps = parse(
        "## s\n* greet\n - utter_greet\n* affirm OR thankyou\n - utter_goodbye\n"
    )
    assert len(steps) == 3
    a, b, rest = steps
    assert [e.intent_name for e in a.events if isinstance(e, UserUttered)] == [
        "greet",
        "affirm",
    ]
    assert b.events[-1].intent_name == "thankyou"
    (joint,) = a.end_checkpoints
    assert joint.name.startswith("GENR_OR_")
    assert b.end_checkpoints == (joint,)
    assert rest.start_checkpoints == (joint,)
    assert rest.events == (ActionExecuted(name="utter_goodbye"),)


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("* greet\n", 1, "before the first"),
        (
            "## s\n* greet\n  - utter_nope\n",
            3,
            "action 'utter_nope' is not in the domain",
        ),
        ('## s\n* greet\n  - slot{"nope": 1}\n', 3, "unknown slot"),
        ('## s\n* greet{"name": }\n', 2, "invalid JSON"),
        ("## s\n  - slot[1]\n", 2, "not in the domain"),
        ("## s\n  - slot\n", 2, "needs a JSON object"),
        ('## s\n  - form{"name": 3}\n', 2, "must be a string"),
        ('## s\n  - utter_greet{"a": 1}\n', 2, "is not an event type"),
        ("## s\nplain words\n", 2, "cannot read line"),
        ('## s\n* greet\n  - utter_greet\n> end{"name": 1}\n', 4, "only start"),
        ("## s\n* greet OR  OR affirm\n", 2, "empty alternative"),
        ("## s\n* greet{[1]}\n", 2, "JSON"),
        ("## s\n* @@@\n", 2, "cannot read user message"),
    ],
)
def test_malformed_lines_name_file_and_line(text, line, fragment):
    with pytest.raises(TrainingDataError) as info:
        parse(text)
    assert info.value.path == "stories.md"
    assert info.value.line == line
    assert fragment in str(info.value)
    assert str(info.value).startswith(f"stories.md:{line}: ")


def test_folder_is_read_recursively_in_sorted_order(tmp_path: Path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "two.md").write_text("## two\n* goodbye\n - utter_goodbye\n")
    (tmp_path / "a.md").write_text("## one\n* greet\n - utter_greet\n")
    (tmp_path / "notes.txt").write_text("not a story")
    (tmp_path / "nlu.md").write_text("## intent:greet\n- hello\n")
    assert [s.block_name for s in read_stories(tmp_path, DOMAIN)] == ["one", "two"]


def test_missing_path_is_an_error(tmp_path: Path):
    with pytest.raises(TrainingDataError, match="not found"):
        read_stories(tmp_path / "nope.md", DOMAIN)
