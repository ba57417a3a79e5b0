"""``dialogd data convert``: Markdown and YAML say the same thing, both ways."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.convert import annotate
from worker.convert import nlu_to_markdown
from worker.convert import nlu_to_yaml
from worker.convert import stories_to_markdown
from worker.convert import stories_to_yaml
from worker.domain import Domain
from worker.errors import TrainingDataError
from worker.events import ActionExecuted
from worker.events import UserUttered
from worker.model import CoreModel
from worker.nlu import load_nlu_data
from worker.training import generate_dialogues
from worker.training import read_stories
from worker.training import replay

ROOT = Path(__file__).resolve().parents[2]
MOODBOT = ROOT / "examples" / "moodbot"

NLU_MD = """\
## intent:book
- a table for [two](people:2) in [Rome](city)
- [Paris](city) please
## intent:greet
- hi
## synonym:2
- a couple
## regex:zip
- [0-9]{5}
## lookup:city
- Oslo
- Bern
"""


def same_nlu(a, b) -> bool:
    return (
        a.examples == b.examples
        and a.synonyms == b.synonyms
        and a.regex_features == b.regex_features
        and a.lookup_tables == b.lookup_tables
    )


def test_nlu_markdown_yaml_markdown(tmp_path):
    (tmp_path / "nlu.md").write_text(NLU_MD)
    original = load_nlu_data(tmp_path / "nlu.md")
    (tmp_path / "nlu.yml").write_text(nlu_to_yaml(original))
    from_yaml = load_nlu_data(tmp_path / "nlu.yml")
    assert same_nlu(from_yaml, original)
    (tmp_path / "back.md").write_text(nlu_to_markdown(from_yaml))
    assert same_nlu(load_nlu_data(tmp_path / "back.md"), original)


def test_annotation_with_role_uses_the_json_form():
    entities = [
        {"start": 5, "end": 11, "value": "Berlin", "entity": "city", "role": "from"}
    ]
    assert annotate("from Berlin", entities) == (
        'from [Berlin]{"entity": "city", "role": "from"}'
    )


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    domain = Domain.load(MOODBOT / "domain.yml")
    folder = tmp_path_factory.mktemp("convert")
    steps = read_stories(MOODBOT / "data" / "stories.md", domain)
    (folder / "stories.yml").write_text(stories_to_yaml(steps))
    yaml_steps = read_stories(folder / "stories.yml", domain)
    (folder / "stories.md").write_text(stories_to_markdown(yaml_steps))
    return domain, folder


def meaning(steps) -> list:
    """What training reads of each step: names, intents, entities, other events."""
    return [
        (
            s.block_name,
            [
                (e.intent_name, e.entities) if isinstance(e, UserUttered) else e
                for e in s.events
            ],
            s.rule,
        )
        for s in sorted(steps, key=lambda s: s.block_name)
    ]


def test_moodbot_stories_convert_both_ways(converted):
    domain, folder = converted
    original = read_stories(MOODBOT / "data" / "stories.md", domain)
    for path in (folder / "stories.yml", folder / "stories.md"):
        assert meaning(read_stories(path, domain)) == meaning(original)


def test_converted_stories_train_the_same_predictions(converted):
    domain, folder = converted
    config = {"policies": [{"name": "MemoizationPolicy", "max_history": 5}]}
    models = [
        CoreModel.train(domain, path, config, augmentation_factor=0)
        for path in (
            MOODBOT / "data" / "stories.md",
            folder / "stories.yml",
            folder / "stories.md",
        )
    ]
    steps = read_stories(MOODBOT / "data" / "stories.md", domain)
    dialogues = generate_dialogues(steps, domain, augmentation_factor=0)
    checked = 0
    for dialogue in dialogues:
        for i, event in enumerate(dialogue.events):
            if not isinstance(event, ActionExecuted):
                continue
            tracker = replay(domain, dialogue.events[:i], 5)
            predicted = {m.predict(tracker).action for m in models}
            assert predicted == {models[0].predict(tracker).action}
            checked += 1
    assert checked > 20


def test_rules_do_not_go_to_markdown(tmp_path):
    domain = Domain.load(ROOT / "tests" / "fixtures" / "rasa_init" / "domain.yml")
    steps = read_stories(ROOT / "tests" / "fixtures" / "rasa_init" / "data", domain)
    with pytest.raises(TrainingDataError, match="rule"):
        stories_to_markdown(steps)
    (tmp_path / "all.yml").write_text(stories_to_yaml(steps))
    assert meaning(read_stories(tmp_path / "all.yml", domain)) == meaning(steps)


def test_a_form_story_converts_both_ways(tmp_path):
    """YAML's ``active_loop`` is read as Rasa 2's event and written back as it was;
    Markdown writes it as ``form{...}``, which every Rasa version reads."""
    domain = Domain.from_yaml(
        'version: "3.1"\nintents: [order]\nresponses:\n  utter_done: [{text: ok}]\n'
        "forms:\n  f_form:\n    required_slots: []\n"
    )
    yaml_text = (
        'version: "3.1"\nstories:\n- story: s\n  steps:\n  - intent: order\n'
        "  - action: f_form\n  - active_loop: f_form\n  - active_loop: null\n"
        "  - action: utter_done\n"
    )
    (tmp_path / "s.yml").write_text(yaml_text)
    steps = read_stories(tmp_path / "s.yml", domain)
    assert [e.type_name for e in steps[0].events][2:4] == ["active_loop"] * 2
    markdown = stories_to_markdown(steps)
    assert '  - form{"name": "f_form"}\n  - form{"name": null}\n' in markdown
    (tmp_path / "s.md").write_text(markdown)
    again = stories_to_yaml(read_stories(tmp_path / "s.md", domain))
    assert "- active_loop: f_form\n" in again and "- active_loop: null\n" in again
