"""Replaying stories: which actions are scored, end to end parsing, reports, and
predictions equal to what the server answers over parse/continue."""

from __future__ import annotations

import json

import pytest

from tests.data import RASA_EXAMPLES
from trackerstore import InMemoryStore
from worker.domain import Domain
from worker.evaluation import evaluate_dialogues
from worker.evaluation import evaluate_markdown
from worker.evaluation import evaluate_stories
from worker.evaluation import story_dialogues
from worker.evaluation import write_report
from worker.event_codec import event_to_dict
from worker.events import ActionExecuted
from worker.events import UserUttered
from worker.model import CoreModel
from worker.nlu import Interpreter
from worker.training import read_stories
from worker.turn import Engine

MOODBOT = RASA_EXAMPLES / "moodbot"
CONCERTBOT = RASA_EXAMPLES / "concertbot"
DOMAIN = """
intents: [greet, inform, bye]
entities: [city]
slots:
  city: {type: text}
templates:
  utter_greet: [{text: hi}]
  utter_ask_city: [{text: "where?"}]
  utter_ok: [{text: ok}]
actions: [utter_greet, utter_ask_city, utter_ok]
"""


class Always:
    """A stand-in model that always answers the same action."""

    def __init__(self, domain: Domain, action: str):
        self.domain = domain
        self.action = action
        self.max_history = 3
        self.seen: list[dict] = []

    def next_action(self, tracker):
        self.seen.append(dict(tracker.slots))
        return type(
            "P", (), {"action": self.action, "confidence": 0.5, "policy": "policy_0_X"}
        )()


class Parser:
    """A stand-in NLU: a fixed text -> (intent, entities) table."""

    def __init__(self, table):
        self.table = table

    def parse(self, text):
        intent, entities = self.table[text]
        return {
            "intent": {"name": intent, "confidence": 0.9},
            "entities": [{"entity": k, "value": v} for k, v in entities.items()],
            "text": text,
        }


def test_every_action_after_the_opening_listen_is_scored():
    domain = Domain.from_yaml(DOMAIN)
    story = "## one\n* greet\n - utter_greet\n* inform\n - utter_ask_city\n"
    ev = evaluate_markdown(Always(domain, "utter_greet"), story)
    assert [(a.gold, a.predicted) for a in ev.actions] == [
        ("utter_greet", "utter_greet"),
        ("action_listen", "utter_greet"),
        ("utter_ask_city", "utter_greet"),
        ("action_listen", "utter_greet"),
    ]
    assert ev.action_metrics.accuracy == 0.25
    assert ev.story_accuracy == 0.0
    assert ev.in_training_data_fraction == 0.0
    assert ev.actions[0].policy == "policy_0_X" and ev.actions[0].confidence == 0.5


def test_an_opening_action_is_not_scored():
    domain = Domain.from_yaml(DOMAIN)
    ev = evaluate_markdown(
        Always(domain, "action_listen"), "## s\n - utter_greet\n* bye\n - utter_ok\n"
    )
    assert [a.gold for a in ev.actions] == [
        "action_listen",
        "utter_ok",
        "action_listen",
    ]


def test_end_to_end_runs_text_through_the_interpreter():
    domain = Domain.from_yaml(DOMAIN)
    story = (
        "## e2e\n* greet: hello there\n - utter_greet\n"
        "* inform: to [Paris](city)\n - utter_ok\n"
    )
    parser = Parser(
        {"hello there": ("bye", {}), "to Paris": ("inform", {"city": "Rome"})}
    )
    model = Always(domain, "utter_ok")
    ev = evaluate_markdown(model, story, interpreter=parser, e2e=True)
    assert [(u.text, u.gold, u.predicted) for u in ev.user_turns] == [
        ("hello there", "greet", "bye"),
        ("to Paris", "inform", "inform"),
    ]
    assert ev.intent_metrics.accuracy == 0.5
    # The slot comes from the predicted entity, not the story's markup.
    assert model.seen[-2:] == [{"city": "Rome"}, {"city": "Rome"}]
    assert ev.summary()["intents"]["total"] == 2
    # Without e2e the story's own labels are used, the interpreter is not asked.
    plain = evaluate_markdown(Always(domain, "utter_ok"), story)
    assert all(u.correct for u in plain.user_turns)
    assert not plain.end_to_end and "intents" not in plain.summary()
    with pytest.raises(ValueError):
        evaluate_markdown(model, story, e2e=True)


def test_report_files(tmp_path):
    domain = Domain.from_yaml(DOMAIN)
    story = "## good <one>\n* greet\n - utter_greet\n\n## bad\n* bye\n - utter_ok\n"
    ev = evaluate_markdown(Always(domain, "utter_greet"), story)
    write_report(ev, tmp_path / "out")
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["stories"]["total"] == 2
    assert report["actions"]["accuracy"] == 0.25
    assert report["actions"]["per_label"]["utter_ok"]["recall"] == 0.0
    assert report["actions"]["confusion"]["labels"] == [
        "action_listen",
        "utter_greet",
        "utter_ok",
    ]
    lines = (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert rows == [a.as_dict() for a in ev.actions]
    assert set(rows[0]) == {"story", "gold", "predicted", "policy", "confidence"}
    html = (tmp_path / "out" / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "good &lt;one&gt;" in html
    assert 'class="turn bad"' in html and "<b>utter_greet</b>" in html


def test_stories_with_one_state_path_are_all_scored():
    domain = Domain.from_yaml(DOMAIN)
    twin = "* greet\n - utter_greet\n"
    story = f"## a\n{twin}\n## b\n{twin}\n## c\n* bye\n - utter_ok\n"
    ev = evaluate_markdown(Always(domain, "utter_greet"), story)
    assert [s.name for s in ev.stories] == ["a", "b", "c"]
    assert (len(ev.actions), ev.distinct) == (6, 2)
    assert ev.summary()["stories"]["total"] == 3


def test_checkpoint_continuations_of_twin_stories_are_each_scored():
    domain = Domain.from_yaml(DOMAIN)
    story = (
        "## a\n* greet\n - utter_greet\n> asked\n\n"
        "## b\n* greet\n - utter_greet\n> asked\n\n"
        "## end\n> asked\n* bye\n - utter_ok\n"
    )
    ev = evaluate_markdown(Always(domain, "utter_greet"), story)
    assert [s.name for s in ev.stories] == ["a > end", "b > end"]
    assert ev.distinct == 1


@pytest.mark.parametrize("bot", ["moodbot", "concertbot"])
def test_example_bots_score_100_percent_on_their_own_stories(bot):
    domain = Domain.load(RASA_EXAMPLES / bot / "domain.yml")
    stories = RASA_EXAMPLES / bot / "data" / "stories.md"
    ev = evaluate_stories(CoreModel.train(domain, stories), stories)
    assert ev.action_metrics.accuracy == 1.0 and ev.story_accuracy == 1.0


def _serve_story(engine: Engine, cid: str, dialogue) -> list[str]:
    """Play a story over parse/continue as a client would; the server's answers."""
    answers: list[str] = []
    answer, executed, events, fills = None, None, [], []
    for i, event in enumerate(dialogue.events):
        if fills and event_to_dict(event) == fills[0]:
            fills.pop(0)
            continue
        if isinstance(event, UserUttered):
            ents = {e["entity"]: e["value"] for e in event.entities}
            text = f"/{event.intent_name}" + (json.dumps(ents) if ents else "")
            reply = engine.parse(cid, text)
            answer = reply["next_action"]
            fills = [
                {"event": "slot", "name": n, "value": v}
                for n, v in engine.domain.auto_fill(event.entities)
            ]
        elif isinstance(event, ActionExecuted):
            if i == 0:
                continue
            if executed is not None:
                answer = engine.continue_(cid, executed, events)["next_action"]
                executed, events = None, []
            answers.append(answer)
            if event.name != "action_listen":
                executed = event.name
                if answer == "action_listen":
                    # The server logged its wrong listen: the client undoes it.
                    engine.append_events(cid, [{"event": "undo"}])
            elif answer != "action_listen":
                # The client follows the story: the bot listens here.
                engine.append_events(
                    cid, [{"event": "action", "name": "action_listen"}]
                )
        else:
            events.append(
                {k: v for k, v in event_to_dict(event).items() if k != "timestamp"}
            )
    return answers


@pytest.mark.parametrize("bot", [MOODBOT, CONCERTBOT], ids=["moodbot", "concertbot"])
def test_predictions_equal_the_servers_answers(bot):
    domain = Domain.load(bot / "domain.yml")
    stories = bot / "data" / "stories.md"
    # A barely trained network makes mistakes, so the two paths are really compared.
    config = {"policies": [{"name": "KerasPolicy", "epochs": 2, "max_history": 3}]}
    core = CoreModel.train(domain, stories, config, augmentation_factor=0)
    dialogues = story_dialogues(read_stories(stories, domain), domain)
    ev = evaluate_dialogues(core, dialogues)
    assert ev.action_metrics.accuracy < 1.0
    engine = Engine.for_model(core, Interpreter(), InMemoryStore())
    for n, (dialogue, result) in enumerate(zip(dialogues, ev.stories, strict=True)):
        served = _serve_story(engine, f"c{n}", dialogue)
        assert served == [a.predicted for a in result.actions], dialogue.name
