"""Learning curves: splits, determinism, the 0% point, the JSON and the SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from tests.data import RASA_EXAMPLES
from worker.domain import Domain
from worker.errors import InvalidConfig
from worker.evaluation import curve_summary
from worker.evaluation import curve_svg
from worker.evaluation import learning_curve
from worker.evaluation import story_dialogues
from worker.training import generate_dialogues
from worker.training import parse_stories
from worker.training import read_stories
from worker.training import story_step

MOODBOT = RASA_EXAMPLES / "moodbot"
MEMO = {"policies": [{"name": "MemoizationPolicy", "max_history": 3}]}
KERAS = {"policies": [{"name": "KerasPolicy", "epochs": 20}]}


def moodbot():
    domain = Domain.load(MOODBOT / "domain.yml")
    return domain, read_stories(MOODBOT / "data" / "stories.md", domain)


@pytest.mark.parametrize("bot", ["moodbot", "concertbot"])
def test_a_dialogue_written_back_as_a_story_generates_itself(bot):
    domain = Domain.load(RASA_EXAMPLES / bot / "domain.yml")
    dialogues = story_dialogues(
        read_stories(RASA_EXAMPLES / bot / "data" / "stories.md", domain), domain
    )
    again = generate_dialogues(
        [story_step(d, domain) for d in dialogues], domain, augmentation_factor=0
    )
    assert [d.events for d in again] == [d.events for d in dialogues]


def test_story_step_keeps_slot_fills_and_opening_actions_right():
    domain = Domain.from_yaml(
        "intents: [inform]\nentities: [city]\nslots: {city: {type: text}}\n"
        "actions: [utter_hi, utter_ok]\n"
    )
    text = (
        '## s\n - utter_hi\n* inform{"city": "Rome"}\n - utter_ok\n'
        ' - slot{"city": "Oslo"}\n'
    )
    (dialogue,) = generate_dialogues(
        parse_stories(text, domain), domain, augmentation_factor=0
    )
    (again,) = generate_dialogues(
        [story_step(dialogue, domain)], domain, augmentation_factor=0
    )
    assert again.events == dialogue.events
    assert again.unpredictable == dialogue.unpredictable == {0}


def test_points_cover_every_run_percentage_and_config():
    domain, steps = moodbot()
    configs = [("memo", MEMO), ("keras", KERAS)]
    points = learning_curve(domain, steps, configs, [0, 25, 50], runs=2)
    assert len(points) == 2 * 3 * 2
    for p in points:
        assert p.train_stories + (p.test_stories if p.percentage else 0) == 4
        assert p.evaluated_on == ("training" if p.percentage == 0 else "held-out")
    zero = [p for p in points if p.percentage == 0 and p.config == "memo"]
    assert all(p.action_accuracy == 1.0 for p in zero)
    again = learning_curve(domain, steps, configs, [0, 25, 50], runs=2)
    assert again == points


def test_summary_and_svg():
    domain, steps = moodbot()
    points = learning_curve(domain, steps, [("memo", MEMO)], [0, 25, 50, 75], runs=2)
    summary = curve_summary(points)
    rows = summary["summary"]["memo"]
    assert [r["train_stories"] for r in rows] == [1, 2, 3, 4]
    assert all(r["runs"] == 2 for r in rows)
    assert all(r["action_accuracy_min"] <= r["action_accuracy"] for r in rows)
    assert len(summary["points"]) == 8
    svg = ET.fromstring(curve_svg(summary, "moodbot <memo>"))
    ns = "{http://www.w3.org/2000/svg}"
    assert len(svg.findall(f"{ns}polyline")) == 1
    assert len(svg.findall(f"{ns}circle")) == 4
    assert any(t.text == "moodbot <memo>" for t in svg.iter(f"{ns}text"))


@pytest.mark.parametrize(
    ("percentages", "runs", "configs"),
    [
        ([100], 1, [("m", MEMO)]),
        ([-5], 1, [("m", MEMO)]),
        ([0], 0, [("m", MEMO)]),
        ([0], 1, []),
    ],
)
def test_invalid_settings(percentages, runs, configs):
    domain, steps = moodbot()
    with pytest.raises(InvalidConfig):
        learning_curve(domain, steps, configs, percentages, runs)


def test_curves_split_and_score_every_story_given():
    domain, _ = moodbot()
    twin = "* greet\n - utter_greet\n* mood_great\n - utter_happy\n"
    steps = parse_stories(f"## a\n{twin}\n## b\n{twin}\n## c\n{twin}", domain)
    points = learning_curve(domain, steps, [("memo", MEMO)], [0, 50], runs=1)
    assert [(p.train_stories, p.test_stories) for p in points] == [(3, 3), (1, 2)]
