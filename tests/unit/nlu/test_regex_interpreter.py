"""Rasa Core's RegexInterpreter grammar (`/intent@conf{json}`), §6.3."""

from __future__ import annotations

import logging

import pytest

from worker.nlu import parse_intent_message


def test_post_parse_example_from_the_spec() -> None:
    assert parse_intent_message('/greet{"name": "Rasa"}') == {
        "entities": [{"end": 22, "entity": "name", "start": 6, "value": "Rasa"}],
        "intent": {"confidence": 1.0, "name": "greet"},
        "intent_ranking": [{"confidence": 1.0, "name": "greet"}],
        "text": '/greet{"name": "Rasa"}',
    }


@pytest.mark.parametrize(
    ("text", "intent", "confidence"),
    [
        ("/greet", "greet", 1.0),
        ("/greet@0.7", "greet", 0.7),
        ("/ mood great @0.25", "mood great", 0.25),
        ("greet", "greet", 1.0),
    ],
)
def test_intent_and_confidence(text: str, intent: str, confidence: float) -> None:
    result = parse_intent_message(text)
    assert result["intent"] == {"name": intent, "confidence": confidence}
    assert result["intent_ranking"] == [result["intent"]]
    assert result["entities"] == []


def test_list_values_expand_and_share_the_json_span() -> None:
    text = '/inform@0.5{"city": ["Rome", "Paris"], "n": 2}'
    result = parse_intent_message(text)
    assert result["intent"] == {"name": "inform", "confidence": 0.5}
    span = (text.index("{"), len(text))
    assert [
        (e["entity"], e["value"], e["start"], e["end"]) for e in result["entities"]
    ] == [
        ("city", "Rome", *span),
        ("city", "Paris", *span),
        ("n", 2, *span),
    ]


def test_text_gets_a_leading_slash() -> None:
    assert parse_intent_message("greet")["text"] == "/greet"
    assert parse_intent_message("/greet")["text"] == "/greet"


@pytest.mark.parametrize("text", ['/greet{"name": Rasa}', "/greet[1, 2]x{[1]}"])
def test_invalid_json_gives_no_entities_and_a_warning(
    text: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="worker.nlu.regex_interpreter"):
        result = parse_intent_message(text)
    assert result["entities"] == []
    assert result["intent"]["name"] == text[1 : text.index("{")].strip()
    assert "ignoring the entities" in caplog.text


def test_bad_confidence_is_zero_and_unparseable_is_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="worker.nlu.regex_interpreter"):
        assert parse_intent_message("/greet@1.2.3")["intent"]["confidence"] == 0.0
        unparseable = parse_intent_message('{"a": 1}')
    assert unparseable["intent"] == {"name": None, "confidence": 0.0}
    assert "confidence" in caplog.text
    assert "failed to parse" in caplog.text
