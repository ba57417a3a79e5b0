"""The dialog bAbI converters, the client's actions and the OOV copy, offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.babi import dstc2
from bench.babi import restaurant
from bench.babi.bot import Gold
from bench.babi.bot import find_values
from bench.babi.bot import pseudo_words
from bench.babi.bot import render
from bench.babi.data import Result
from bench.babi.data import parse_dialogues
from bench.babi.oov import oov_text
from tests.data import BABI_SLICE
from tests.data import dataset
from worker.domain import Domain
from worker.events import SlotSet
from worker.nlu.data import load_nlu_data
from worker.training import generate_dialogues
from worker.training import parse_stories
from worker.training import read_stories

TASK5_TRAIN = "dialog-babi-task5-full-dialogs-trn.txt"
TASK5 = """1 resto_rome_cheap_thai_2stars R_rating 2
2 hello\thello what can i help you with today
3 can you book a table with italian food in rome\ti'm on it
4 <SILENCE>\thow many people would be in your party
5 for six people please\twhich price range are looking for
6 in a cheap price range please\tok let me look into some options for you
7 <SILENCE>\tapi_call italian rome six cheap
8 resto_rome_cheap_italian_1stars R_phone resto_rome_cheap_italian_1stars_phone
9 resto_rome_cheap_italian_1stars R_rating 1
10 resto_rome_cheap_italian_7stars R_phone resto_rome_cheap_italian_7stars_phone
11 resto_rome_cheap_italian_7stars R_rating 7
12 <SILENCE>\twhat do you think of this option: resto_rome_cheap_italian_7stars
13 no this does not work for me\tsure let me find an other option for you
14 <SILENCE>\twhat do you think of this option: resto_rome_cheap_italian_1stars
15 let's do it\tgreat let me do the reservation
16 do you have its phone number\there it is resto_rome_cheap_italian_1stars_phone
17 thanks\tis there anything i can help you with
18 no thank you\tyou're welcome

1 hi\thello what can i help you with today
2 may i have a table in paris\ti'm on it
"""


def test_reading_turns_results_and_dialogue_breaks():
    first, second = parse_dialogues(TASK5)
    assert len(first.turns) == 13 and len(second.turns) == 2
    assert first.results(-1) == [
        Result("resto_rome_cheap_thai_2stars", "R_rating", "2")
    ]
    assert [r.prop for r in first.results(5)] == ["R_phone", "R_rating"] * 2
    assert first.turns[5].bot == "api_call italian rome six cheap"
    (empty,) = parse_dialogues(
        "1 hi\tapi_call R_cuisine west R_price\n2 api_call no result\n"
    )
    assert empty.empty_after == {0}


def test_restaurant_labels_and_actions():
    assert restaurant.intent_of("<SILENCE>") == "silence"
    assert restaurant.intent_of("may i have a table with thai food") == (
        "request_reservation"
    )
    assert restaurant.intent_of("instead could it be for four") == "update"
    assert restaurant.intent_of("no i don't like that") == "reject"
    assert restaurant.intent_of("no thank you") == "bye"
    assert restaurant.intent_of("in rome") == "inform"
    assert restaurant.action_of("api_call a b c d") == "action_api_call"
    assert restaurant.action_of("here it is x_address") == "action_give_address"
    assert restaurant.gold_action("something new") == "unknown"


def test_restaurant_bot_files_are_a_valid_bot(tmp_path):
    dialogues = parse_dialogues(TASK5)
    files = restaurant.convert(dialogues[:1], dialogues[1:], variants=2)
    root = files.write(tmp_path / "bot")
    domain = Domain.load(root / "domain.yml")
    assert set(domain.slot_by_name) == {"cuisine", "location", "people", "price"}
    steps = read_stories(root / "data" / "stories.md", domain)
    (dialogue,) = generate_dialogues(steps, domain, augmentation_factor=0)
    assert dialogue.name == "dialogue 1"
    assert read_stories(root / "validation" / "stories.md", domain)
    data = load_nlu_data(root / "data" / "nlu.md")
    texts = {ex.text for ex in data.examples}
    assert "can you book a table with italian food in rome" in texts
    # Made-up cuisines and cities teach the extractor the context.
    assert len(texts) > len({t.user for t in dialogues[0].turns})
    assert files.gold(dialogues[0])[6] == Gold(
        "action_suggest", "resto_rome_cheap_italian_7stars"
    )


def test_restaurant_client_proposes_by_rating_and_answers_the_current():
    first = parse_dialogues(TASK5)[0]
    actions = restaurant.client_actions(restaurant.TEMPLATES)
    actions.see(first.results(-1))
    slots = {"cuisine": "italian", "location": "rome", "people": "six", "price": "x"}
    text, events = actions.run("action_api_call", slots, first.results(5))
    assert text == "api_call italian rome six x" and events == []
    said = [actions.run("action_suggest", slots)[0] for _ in range(3)]
    assert said == [
        "what do you think of this option: resto_rome_cheap_italian_7stars",
        "what do you think of this option: resto_rome_cheap_italian_1stars",
        "sorry there are no other options",
    ]
    assert actions.run("action_give_phone", slots)[0] == (
        "here it is resto_rome_cheap_italian_1stars_phone"
    )
    assert actions.run("utter_ask_people", slots)[0] == (
        "how many people would be in your party"
    )


def test_oov_copy_renames_values_everywhere():
    text = "3 resto_rome_cheap_italian_1stars R_cuisine italian\n4 in paris\tok\n"
    assert oov_text(text) == (
        "3 resto_tokyo_cheap_thai_1stars R_cuisine thai\n4 in seoul\tok\n"
    )


def test_helpers():
    assert render("api_call {a} {b}", {"a": "x"}) == "api_call x "
    spans = find_values("with modern european food", {"modern european": "food"})
    assert spans == [(5, 20, "food", "modern european")]
    words = pseudo_words(20, seed=1, avoid={"thai"})
    assert len(set(words)) == 20 and words == pseudo_words(20, seed=1)


def test_dstc2_rules_and_templates():
    vocab = {"west": "area:west", "cheap": "price:cheap", "any": "dontcare:dontcare"}
    label = dstc2.Labeller(vocab)
    assert label("cheap restaurant in the west") == (
        "inform",
        [(0, 5, "price", "cheap"), (24, 28, "area", "west")],
    )
    assert label("what is the phone number")[0] == "request_phone"
    assert label("price range")[0] == "request_price"
    assert label("is there anything else")[0] == "reqalts"
    assert label("thank you good bye")[0] == "bye"
    assert label("<SILENCE>") == ("silence", [])
    dialogues = parse_dialogues(
        "1 <SILENCE>\tHello , welcome\n"
        "2 cheap food in the west\tapi_call R_cuisine west cheap\n"
        "3 prezzo R_location west\n4 prezzo R_price cheap\n5 prezzo R_rating 9\n"
        "6 prezzo R_phone prezzo_phone\n"
        "7 <SILENCE>\tprezzo is a nice place in the west of town\n"
        "8 phone number\tThe phone number of prezzo is prezzo_phone\n"
    )
    files = dstc2.convert(dialogues)
    templates = {n: v[0]["text"] for n, v in files.domain["templates"].items()}
    assert "{name} is a nice place in the {r_area} of town" in templates.values()
    assert "The phone number of {name} is {phone}" in templates.values()
    gold = files.gold(dialogues[0])
    assert gold[1] == Gold("action_api_call")
    assert gold[2].action.startswith("action_propose_") and gold[2].target == "prezzo"
    assert gold[3].action.startswith("action_about_")
    actions = dstc2.client_actions(templates, files.knowledge)
    slots = {"food": None, "area": "west", "price": "cheap"}
    text, events = actions.run("action_api_call", slots, dialogues[0].results(1))
    assert text == "api_call R_cuisine west cheap"
    assert events == [{"event": "slot", "name": "has_results", "value": True}]
    text, events = actions.run(gold[2].action, slots)
    assert text == "prezzo is a nice place in the west of town"
    # The offer also shows whose wording the conversation has: the client says so.
    assert events == [
        {"event": "slot", "name": "more_options", "value": False},
        {"event": "slot", "name": "style", "value": "b"},
    ]
    assert '- slot{"style": "b"}' in files.stories
    assert actions.run(gold[3].action, slots)[0] == (
        "The phone number of prezzo is prezzo_phone"
    )


def _every_turn_has_a_label(path: Path, count: int) -> None:
    dialogues = parse_dialogues(path.read_text())
    assert len(dialogues) == count
    files = restaurant.convert(dialogues, variants=1)
    assert files.stories.count("## dialogue") == count
    assert all(g is not None for d in dialogues for g in files.gold(d))


def test_the_real_files_convert():
    """Every user and bot sentence of the first 100 dialogues of task 5's training
    file (the repository's slice) has a label."""
    _every_turn_has_a_label(BABI_SLICE / TASK5_TRAIN, 100)


@pytest.mark.data("dialog_babi")
def test_the_whole_training_file_converts():
    _every_turn_has_a_label(dataset("dialog_babi") / TASK5_TRAIN, 1000)


def test_dstc2_dont_care_answers_the_question_asked():
    """A bare "don't care" fills the slot the bot has just asked for: the client
    reports the question as ``requested_slot``, the stories say so too, and the
    slot mapping reads it, in training as in serving."""
    dialogues = parse_dialogues(
        "1 <SILENCE>\tHello , welcome\n"
        "2 cheap food\tWhat part of town do you have in mind?\n"
        "3 i dont care\tapi_call R_cuisine R_location cheap\n"
        "4 api_call no result\n"
        "5 <SILENCE>\tSorry there is no restaurant in the cheap price range\n"
    )
    files = dstc2.convert(dialogues)
    domain = Domain.from_dict(files.domain)
    (dialogue,) = generate_dialogues(
        parse_stories(files.stories, domain), domain, augmentation_factor=0
    )
    fills = [(e.name, e.value) for e in dialogue.events if isinstance(e, SlotSet)]
    assert fills[:4] == [
        ("price", "cheap"),
        ("requested_slot", "area"),
        ("area", "dontcare"),
        ("requested_slot", None),
    ]
    assert domain.slot_by_name["area"].features("dontcare") == [1.0, 0.0]
    assert domain.slot_by_name["price"].features("cheap") == [0.0, 1.0]
    templates = {n: v[0]["text"] for n, v in files.domain["templates"].items()}
    actions = dstc2.client_actions(templates, files.knowledge)
    gold = files.gold(dialogues[0])
    assert actions.run(gold[1].action, {})[1] == [
        {"event": "slot", "name": "requested_slot", "value": "area"}
    ]
    slots = {"price": "cheap", "area": "dontcare"}
    text, events = actions.run("action_api_call", slots)
    assert text == "api_call R_cuisine R_location cheap"
    assert {"event": "slot", "name": "requested_slot", "value": None} in events
