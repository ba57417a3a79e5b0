"""Responses rendered as Rasa 3.6 renders them: variations (seeded), slot and
argument interpolation, every content key, channels, conditions, the form's
questions; and an external NLG server (a real local HTTP server)."""

from __future__ import annotations

import logging
import random

import pytest

from tests.actions.servers import JsonServer
from tests.actions.talk import Talk
from worker.actions import ActionFailed
from worker.actions import ActionRunner
from worker.actions import NLGEndpoint
from worker.actions.nlg import interpolate_text
from worker.domain import Domain
from worker.events import BotUttered
from worker.events import SlotSet
from worker.events import UserUttered

DOMAIN = Domain.from_yaml(
    """
version: "3.1"
intents: [greet]
slots:
  name: {type: text, mappings: [{type: from_text}]}
  vip: {type: bool, mappings: [{type: custom}]}
responses:
  utter_greet:
    - text: "Hello {name}!"
    - text: "Hi {name}."
    - text: "Hey there, {name}"
  utter_rich:
    - text: "Pick one, {name}"
      buttons:
        - {title: "Yes {name}", payload: "/affirm{{\\"who\\": \\"{name}\\"}}"}
      image: "https://img/{name}.png"
      attachment: {url: "https://file/{name}"}
      custom: {kind: card, body: {who: "{name}"}}
      quick_replies: [{title: "ok {name}", payload: "/ok"}]
      elements: [{title: "{name} stays as written"}]
      metadata: {tone: warm}
      id: rich-1
  utter_image_only:
    - image: "https://img/cat.png"
  utter_channel:
    - text: "anywhere"
    - text: "on slack"
      channel: slack
  utter_vip:
    - text: "welcome back, VIP"
      condition: [{type: slot, name: vip, value: true}]
    - text: "hello"
  utter_escaped:
    - text: "literal {{name}}"
  utter_missing:
    - text: "{name} and {nothing}"
"""
)


def _talk(**slots) -> Talk:
    talk = Talk(DOMAIN)
    for name, value in slots.items():
        talk.add(SlotSet(name=name, value=value, timestamp=1.0))
    return talk


def _say(runner: ActionRunner, talk: Talk, name: str, channel: str | None = None):
    (event,) = talk.run(runner, name, channel)
    assert isinstance(event, BotUttered)
    return event


def test_a_seeded_runner_chooses_the_same_variations():
    talk = _talk(name="Ada")
    texts = [
        [_say(ActionRunner(DOMAIN, rng=random.Random(seed)), talk, "utter_greet").text]
        for seed in (7, 7)
    ]
    assert texts[0] == texts[1]
    runner = ActionRunner(DOMAIN, rng=random.Random(1))
    seen = {_say(runner, talk, "utter_greet").text for _ in range(60)}
    assert seen == {"Hello Ada!", "Hi Ada.", "Hey there, Ada"}


def test_every_content_key_is_filled_and_placed_as_rasa_logs_it():
    event = _say(ActionRunner(DOMAIN), _talk(name="Ada"), "utter_rich")
    assert event.text == "Pick one, Ada"
    assert event.data == {
        "elements": [{"title": "{name} stays as written"}],  # not interpolated
        "quick_replies": [{"title": "ok Ada", "payload": "/ok"}],
        "buttons": [{"title": "Yes Ada", "payload": '/affirm{"who": "Ada"}'}],
        "attachment": {"url": "https://file/Ada"},
        "image": "https://img/Ada.png",
        "custom": {"kind": "card", "body": {"who": "Ada"}},
    }
    assert event.metadata == {
        "utter_action": "utter_rich",
        "metadata": {"tone": "warm"},
        "id": "rich-1",
    }


def test_an_image_is_the_attachment_when_there_is_none():
    event = _say(ActionRunner(DOMAIN), _talk(), "utter_image_only")
    assert event.text is None
    assert event.data["image"] == event.data["attachment"] == "https://img/cat.png"


def test_an_empty_slot_reads_none_as_in_rasa():
    assert _say(ActionRunner(DOMAIN), _talk(), "utter_greet").text in {
        "Hello None!",
        "Hi None.",
        "Hey there, None",
    }


def test_doubled_braces_escape_and_a_missing_value_leaves_the_text(caplog):
    runner = ActionRunner(DOMAIN)
    assert _say(runner, _talk(name="Ada"), "utter_escaped").text == "literal {name}"
    with caplog.at_level(logging.WARNING):
        event = _say(runner, _talk(name="Ada"), "utter_missing")
    assert event.text == "{name} and {nothing}"
    assert "nothing" in caplog.text


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{a}", "1"),
        ("{a} {b}", "1 x"),
        ("{{a}}", "{a}"),
        # Rasa's quirk: an escaped name beside a filled one leaves the text as is
        ("{{a}} {a}", "{{a}} {a}"),
        ("{a.__class__}", "{a.__class__}"),  # no attribute access into values
        ("{a][0}", "{a][0}"),
        ("{ }", "{ }"),
        ("{}", "{}"),
        ("no placeholders", "no placeholders"),
    ],
)
def test_interpolation_rules(template, expected):
    assert interpolate_text(template, {"a": 1, "b": "x"}) == expected


def test_a_channel_variation_wins_on_its_channel_only():
    runner, talk = ActionRunner(DOMAIN), _talk()
    assert _say(runner, talk, "utter_channel", "slack").text == "on slack"
    for _ in range(10):
        assert _say(runner, talk, "utter_channel", "rest").text == "anywhere"
        assert _say(runner, talk, "utter_channel").text == "anywhere"


def test_conditional_variations_come_first_when_their_slots_match():
    runner = ActionRunner(DOMAIN)
    for _ in range(10):
        assert _say(runner, _talk(vip=True), "utter_vip").text == "welcome back, VIP"
        assert _say(runner, _talk(vip=False), "utter_vip").text == "hello"
        assert _say(runner, _talk(), "utter_vip").text == "hello"


def test_the_form_asks_with_the_most_specific_question():
    domain = Domain.from_yaml(
        """
version: "3.1"
slots:
  city: {type: text, mappings: [{type: from_text}]}
forms:
  trip_form: {required_slots: [city]}
  other_form: {required_slots: [city]}
responses:
  utter_ask_city: [{text: "Which city?"}]
  utter_ask_trip_form_city: [{text: "Where does your trip go?"}]
"""
    )
    runner = ActionRunner(domain)
    trip = Talk(domain).run(runner, "trip_form")
    other = Talk(domain).run(runner, "other_form")
    assert [e.text for e in trip if isinstance(e, BotUttered)] == [
        "Where does your trip go?"
    ]
    assert [e.text for e in other if isinstance(e, BotUttered)] == ["Which city?"]


# ---- an NLG server -----------------------------------------------------------------
def test_an_nlg_server_renders_every_response():
    def answer(path, body):
        name = body["response"]
        return 200, {"text": f"[{name}] for {body['tracker']['slots']['name']}"}

    with JsonServer(answer) as server:
        runner = ActionRunner(DOMAIN, nlg_endpoint=NLGEndpoint(server.url))
        event = _say(runner, _talk(name="Ada"), "utter_greet", "rest")
    assert event.text == "[utter_greet] for Ada"
    assert event.metadata == {"utter_action": "utter_greet"}
    request = server.requests[0]["body"]
    assert request["response"] == request["template"] == "utter_greet"
    assert request["arguments"] == {} and request["channel"] == {"name": "rest"}
    assert request["tracker"]["sender_id"] == "talk"
    assert [e["event"] for e in request["tracker"]["events"]] == ["action", "slot"]


def test_an_nlg_server_may_send_nothing():
    with JsonServer(lambda path, body: (200, None)) as server:
        runner = ActionRunner(DOMAIN, nlg_endpoint=NLGEndpoint(server.url))
        assert _talk().run(runner, "utter_greet") == []


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, {"error": "down"}),
        (200, {"text": 3}),
        (200, {"buttons": "no"}),
        (200, b"not json"),
        (200, [1]),
    ],
)
def test_an_nlg_server_fault_fails_the_action(status, body):
    with JsonServer(lambda path, _: (status, body)) as server:
        runner = ActionRunner(DOMAIN, nlg_endpoint=NLGEndpoint(server.url))
        with pytest.raises(ActionFailed):
            _talk().run(runner, "utter_greet")


def test_an_nlg_server_renders_responses_the_domain_only_names():
    domain = Domain.from_yaml('version: "3.1"\nactions: [utter_from_nlg]\n')
    with JsonServer(lambda path, body: (200, {"text": body["response"]})) as server:
        runner = ActionRunner(domain, nlg_endpoint=NLGEndpoint(server.url))
        (event,) = Talk(domain).run(runner, "utter_from_nlg")
    assert isinstance(event, BotUttered) and event.text == "utter_from_nlg"
    # without the NLG server there is nothing to send
    assert Talk(domain).run(ActionRunner(domain), "utter_from_nlg") == []


FAQ = Domain.from_yaml(
    """
version: "3.1"
intents: [faq, greet]
responses:
  utter_faq/hours:
    - text: "nine to five"
  utter_faq/parking:
    - text: "behind the building"
"""
)


def _asked(talk: Talk, key: str | None, selector: str = "default") -> None:
    parse: dict = {
        "text": "when",
        "intent": {"name": "faq", "confidence": 1.0},
        "entities": [],
    }
    if key is not None:
        parse["response_selector"] = {
            "all_retrieval_intents": ["faq"],
            selector: {
                "response": {
                    "intent_response_key": key,
                    "utter_action": f"utter_{key}",
                    "confidence": 0.9,
                },
                "ranking": [],
            },
        }
    talk.add(UserUttered(text="when", parse_data=parse, timestamp=2.0))


@pytest.mark.parametrize("selector", ["default", "faq"])
def test_a_retrieval_action_says_the_response_the_selector_chose(selector: str):
    talk = Talk(FAQ)
    _asked(talk, "faq/parking", selector)
    event = _say(ActionRunner(FAQ), talk, "utter_faq")
    assert event.text == "behind the building"
    assert event.metadata["utter_action"] == "utter_faq/parking"


def test_a_retrieval_action_without_a_selection_says_nothing(caplog):
    talk = Talk(FAQ)
    _asked(talk, None)
    with caplog.at_level(logging.ERROR):
        assert talk.run(ActionRunner(FAQ), "utter_faq") == []
    assert "no response selection" in caplog.text
    # a key of another retrieval intent is not said either
    _asked(talk, "chitchat/name")
    assert talk.run(ActionRunner(FAQ), "utter_faq") == []
