"""Retrieval intents: the response selector, its config, data and evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.data import ROOT
from worker.errors import InvalidConfig
from worker.errors import TrainingDataError
from worker.nlu import NLUPipeline
from worker.nlu import load_nlu_data
from worker.nlu.evaluation import evaluate
from worker.nlu.evaluation import stratified_split
from worker.nlu.training_data import Example
from worker.nlu.training_data import NLUData

FAQBOT = ROOT / "tests" / "fixtures" / "faqbot"
PIPELINE = [
    {"name": "WhitespaceTokenizer"},
    {"name": "CountVectorsFeaturizer"},
    {"name": "CountVectorsFeaturizer", "analyzer": "char_wb", "max_ngram": 4},
    {"name": "DIETClassifier", "epochs": 100},
    {"name": "ResponseSelector", "epochs": 100, "constrain_similarities": True},
]


@pytest.fixture(scope="module")
def data() -> NLUData:
    return load_nlu_data(FAQBOT / "data")


@pytest.fixture(scope="module")
def model(data: NLUData) -> NLUPipeline:
    return NLUPipeline({"pipeline": PIPELINE}).fit(data)


def test_the_data_folder_gives_examples_and_responses(data: NLUData) -> None:
    assert data.intents == ["faq", "goodbye", "greet"]
    assert data.retrieval_intents == ["faq"]
    assert sorted(data.responses) == [
        "utter_faq/opening_hours",
        "utter_faq/parking",
        "utter_faq/payment",
    ]
    assert {ex.intent for ex in data.with_base_intents().examples} == {
        "faq",
        "goodbye",
        "greet",
    }


def test_the_intent_is_the_retrieval_intent_and_the_selector_picks_the_key(
    model: NLUPipeline,
) -> None:
    result = model.parse("where can I park my car")
    assert result["intent"]["name"] == "faq"
    assert result["intent"]["full_retrieval_intent_name"] == "faq/parking"
    assert {r["name"] for r in result["intent_ranking"]} == {"faq", "goodbye", "greet"}
    block = result["response_selector"]
    assert block["all_retrieval_intents"] == ["faq"]
    response = block["default"]["response"]
    assert response["intent_response_key"] == "faq/parking"
    assert response["utter_action"] == "utter_faq/parking"
    assert response["responses"] == [
        {"text": "There is free parking behind the building."}
    ]
    ranking = block["default"]["ranking"]
    assert ranking[0]["intent_response_key"] == "faq/parking"
    assert sum(r["confidence"] for r in ranking) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("are you open on saturday morning", "faq/opening_hours"),
        ("do you take credit cards", "faq/payment"),
        ("is there a car park", "faq/parking"),
    ],
)
def test_each_question_gets_its_answer(model: NLUPipeline, text: str, key: str):
    response = model.parse(text)["response_selector"]["default"]["response"]
    assert response["intent_response_key"] == key


def test_other_intents_still_carry_the_block_but_no_full_name(model: NLUPipeline):
    result = model.parse("hello there")
    assert result["intent"]["name"] == "greet"
    assert "full_retrieval_intent_name" not in result["intent"]
    assert "default" in result["response_selector"]


def test_batch_parse_and_a_saved_model_answer_the_same(
    model: NLUPipeline, tmp_path: Path
) -> None:
    texts = ["can I pay by card", "hi", "when do you close"]
    loaded = NLUPipeline.load(model.save(tmp_path / "nlu"))
    one_by_one = [model.parse(t) for t in texts]
    assert [loaded.parse(t) for t in texts] == one_by_one
    for single, batched in zip(one_by_one, model.parse_batch(texts), strict=True):
        # NOTE: a batch sums in another order: the same to float32 rounding
        assert _rounded(batched) == _rounded(single)


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 5)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def test_a_selector_for_one_retrieval_intent_reports_under_its_name() -> None:
    examples = [Example(t, "faq/a") for t in ("alpha one", "alpha two", "alpha")]
    examples += [Example(t, "faq/b") for t in ("beta one", "beta two", "beta")]
    examples += [Example(t, "chitchat/c") for t in ("gamma", "gamma two")]
    examples += [Example(t, "chitchat/d") for t in ("delta", "delta two")]
    pipeline = [*PIPELINE[:4], {"name": "ResponseSelector", "retrieval_intent": "faq"}]
    model = NLUPipeline({"pipeline": pipeline}).fit(NLUData(tuple(examples)))
    block = model.parse("beta")["response_selector"]
    assert block["all_retrieval_intents"] == ["chitchat", "faq"]
    assert set(block) == {"all_retrieval_intents", "faq"}
    # it only knows faq's keys
    ranked = {r["intent_response_key"] for r in block["faq"]["ranking"]}
    assert ranked == {"faq/a", "faq/b"}


def test_without_retrieval_intents_it_adds_nothing(tmp_path: Path) -> None:
    data = NLUData(
        tuple(Example(t, i) for t, i in [("hi", "greet"), ("bye", "goodbye")])
    )
    model = NLUPipeline({"pipeline": PIPELINE}).fit(data)
    assert "response_selector" not in model.parse("hi")
    loaded = NLUPipeline.load(model.save(tmp_path / "nlu"))
    assert loaded.parse("bye") == model.parse("bye")


def test_rasa_network_parameters_are_accepted_and_others_refused() -> None:
    with pytest.raises(InvalidConfig, match=r"parameters \['spelling'\]"):
        NLUPipeline(
            {"pipeline": [*PIPELINE[:4], {"name": "ResponseSelector", "spelling": 1}]}
        )


@pytest.mark.parametrize("name", ["faq/", "/faq", "faq/a/b"])
def test_a_malformed_retrieval_intent_names_its_line(tmp_path: Path, name: str):
    file = tmp_path / "nlu.yml"
    file.write_text(f'nlu:\n- intent: "{name}"\n  examples: |\n    - hello\n')
    with pytest.raises(TrainingDataError, match="intent/key"):
        load_nlu_data(file)


def test_responses_must_be_lists_of_variations(tmp_path: Path) -> None:
    file = tmp_path / "responses.yml"
    file.write_text("responses:\n  utter_faq/a: just text\n")
    with pytest.raises(TrainingDataError, match="list of variations"):
        load_nlu_data(tmp_path)


def test_evaluation_scores_intents_and_the_chosen_responses(
    data: NLUData,
) -> None:
    train, test = stratified_split(data, 0.25, seed=1)
    assert test.responses == data.responses
    model = NLUPipeline({"pipeline": PIPELINE}).fit(train)
    report = evaluate(model, test)
    faq = [r for r in report["predictions"] if r["intent"] == "faq"]
    assert faq and all(r["response"].startswith("faq/") for r in faq)
    selection = report["response_selection"]
    assert selection["n_examples"] == len(faq)
    right = sum(r["response"] == r["predicted_response"] for r in faq)
    assert selection["accuracy"] == pytest.approx(right / len(faq), abs=1e-6)
    assert report["intent"]["accuracy"] > 0.8
