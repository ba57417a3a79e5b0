"""Rule-based extractors and the confidence fallback."""

from __future__ import annotations

from typing import Any

import pytest

from worker.errors import InvalidConfig
from worker.nlu import Message
from worker.nlu import NLUData
from worker.nlu.extractors import NumberExtractor
from worker.nlu.extractors import RegexEntityExtractor
from worker.nlu.extractors import words_to_number
from worker.nlu.fallback import FallbackClassifier


def _numbers(text: str) -> list[tuple[str, Any]]:
    extractor = NumberExtractor().fit([], NLUData())
    return [(text[e["start"] : e["end"]], e["value"]) for e in extractor.extract(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("set 3 alarms", [("3", 3)]),
        ("it costs 1,500 or 2.75 dollars", [("1,500", 1500), ("2.75", 2.75)]),
        ("twenty one pilots", [("twenty one", 21)]),
        ("wake me at seven", [("seven", 7)]),
        ("a hundred and five people", [("a hundred and five", 105)]),
        ("twenty-three", [("twenty-three", 23)]),
        ("two thousand and twenty", [("two thousand and twenty", 2020)]),
        ("one and two", [("one", 1), ("two", 2)]),
        ("a cat and a dog", []),
        ("room 12b and v2", []),
        ("3 and three", [("3", 3), ("three", 3)]),
    ],
)
def test_number_extractor(text: str, expected: list[tuple[str, Any]]) -> None:
    assert _numbers(text) == expected


def test_words_to_number() -> None:
    assert words_to_number(["nine", "hundred", "ninety", "nine"]) == 999
    assert words_to_number(["a", "dozen"]) == 12
    assert words_to_number(["three", "million"]) == 3_000_000
    assert words_to_number(["and"]) is None
    assert words_to_number(["zero"]) == 0


def test_number_entities_have_the_rasa_shape() -> None:
    message = Message("book 2 tables")
    NumberExtractor(entity="amount").fit([], NLUData()).process(message)
    assert message.entities == [
        {
            "start": 5,
            "end": 6,
            "value": 2,
            "entity": "amount",
            "confidence": 1.0,
            "extractor": "NumberExtractor",
        }
    ]


def test_regex_entity_extractor_matches_regexes_and_lookups() -> None:
    data = NLUData(
        regex_features=(("zip", r"\b[0-9]{5}\b"),),
        lookup_tables=(("city", ("Berlin", "New York")),),
    )
    extractor = RegexEntityExtractor().fit([], data)
    message = Message("from new york to 10115 berlin")
    message.entities.append(
        {"start": 23, "end": 29, "value": "berlin", "entity": "city"}
    )
    extractor.process(message)
    found = [(m["entity"], m["value"]) for m in message.entities]
    assert found == [("city", "berlin"), ("zip", "10115"), ("city", "new york")]


def _classified(confidences: list[float]) -> Message:
    message = Message("text")
    ranking = [
        {"name": f"intent{i}", "confidence": c} for i, c in enumerate(confidences)
    ]
    message.intent = dict(ranking[0])
    message.intent_ranking = ranking
    return message


def test_fallback_below_threshold() -> None:
    fallback = FallbackClassifier(threshold=0.5, fallback_intent="out_of_scope")
    fallback.fit([], NLUData())
    unsure = _classified([0.4, 0.35, 0.25])
    fallback.process(unsure)
    assert unsure.intent == {"name": "out_of_scope", "confidence": pytest.approx(0.6)}
    assert [r["name"] for r in unsure.intent_ranking] == [
        "out_of_scope",
        "intent0",
        "intent1",
        "intent2",
    ]
    sure = _classified([0.9, 0.1])
    fallback.process(sure)
    assert sure.intent == {"name": "intent0", "confidence": 0.9}


def test_fallback_on_ambiguity() -> None:
    fallback = FallbackClassifier(threshold=0.1, ambiguity_threshold=0.1)
    fallback.fit([], NLUData())
    close = _classified([0.5, 0.45, 0.05])
    fallback.process(close)
    assert close.intent is not None
    assert close.intent["name"] == "nlu_fallback"


@pytest.mark.parametrize(
    "params",
    [{"threshold": 1.5}, {"fallback_intent": ""}, {"ambiguity_threshold": -1}],
)
def test_fallback_rejects_bad_settings(params: dict[str, Any]) -> None:
    with pytest.raises(InvalidConfig):
        FallbackClassifier(**params).fit([], NLUData())


_REDOS = r"""
from worker.nlu import NLUData, NLUPipeline
from worker.nlu.training_data import Example
pattern = "(a+)+$"
data = NLUData(
    examples=(Example("hello there", "greet"), Example("bye now", "bye")),
    regex_features=(("evil", pattern),),
)
config = {"pipeline": [
    {"name": "Tokenizer", "pattern": r"(\w+\s?)+$|\w+"},
    {"name": "RegexEntityExtractor"},
    {"name": "SparseFeaturizer"},
    {"name": "PerceptronEntityExtractor"},
    {"name": "SoftmaxIntentClassifier"},
]}
model = NLUPipeline(config).fit(data)
print(model.parse("a" * 40 + "!")["text"][:3])
"""


def test_client_regexes_run_in_linear_time() -> None:
    """``(a+)+$`` from training data (regex features, the extractor, a configured
    tokenizer) on 40 characters: ~2**40 steps with backtracking, at once on RE2.
    Run in a child process, so backtracking (which holds the GIL) can be stopped."""
    import subprocess
    import sys

    try:
        done = subprocess.run(
            [sys.executable, "-c", _REDOS], capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired:
        pytest.fail("a client regex backtracked for over 2 minutes")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "aaa"
