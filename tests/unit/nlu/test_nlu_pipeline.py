"""The NLU pipeline on moodbot: training, parsing, persistence, config errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.data import RASA_EXAMPLES
from worker.errors import InvalidConfig
from worker.errors import ModelError
from worker.errors import NotFittedError
from worker.nlu import FORMAT_VERSION
from worker.nlu import Interpreter
from worker.nlu import NLUPipeline
from worker.nlu import load_nlu_data
from worker.nlu.pipeline import ARRAYS_FILE
from worker.nlu.pipeline import METADATA_FILE
from worker.version import __version__

MOODBOT = RASA_EXAMPLES / "moodbot" / "data" / "nlu.md"
EMPTY = {"intent": {"name": None, "confidence": 0.0}, "entities": [], "text": ""}


@pytest.fixture(scope="module")
def moodbot() -> NLUPipeline:
    return NLUPipeline().fit(load_nlu_data(MOODBOT))


@pytest.fixture(scope="module")
def saved(moodbot: NLUPipeline, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return moodbot.save(tmp_path_factory.mktemp("model") / "nlu")


def _copy_model(saved: Path, target: Path) -> Path:
    target.mkdir()
    for name in (METADATA_FILE, ARRAYS_FILE):
        (target / name).write_bytes((saved / name).read_bytes())
    return target


def test_training_accuracy_is_high(moodbot: NLUPipeline) -> None:
    examples = load_nlu_data(MOODBOT).examples
    correct = sum(
        moodbot.parse(ex.text)["intent"]["name"] == ex.intent for ex in examples
    )
    # "good afternoon" is labelled both greet and goodbye, so 62/63 is the ceiling.
    assert correct >= len(examples) - 2


def test_parse_result_shape(moodbot: NLUPipeline) -> None:
    result = moodbot.parse("hello there")
    assert set(result) == {"text", "intent", "intent_ranking", "entities"}
    assert result["text"] == "hello there"
    assert result["intent"]["name"] == "greet"
    assert result["intent"]["confidence"] > 0.5
    ranking = result["intent_ranking"]
    assert ranking[0] == result["intent"]
    assert len(ranking) == 6
    confidences = [r["confidence"] for r in ranking]
    assert confidences == sorted(confidences, reverse=True)
    assert sum(confidences) == pytest.approx(1.0, abs=1e-5)
    assert result["entities"] == []
    json.dumps(result)


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text(moodbot: NLUPipeline, text: str) -> None:
    assert moodbot.parse(text) == EMPTY


def test_training_is_deterministic(moodbot: NLUPipeline) -> None:
    again = NLUPipeline().fit(load_nlu_data(MOODBOT))
    assert again.fingerprint_ == moodbot.fingerprint_
    for text in ("I am sad", "bye bye", "hello"):
        assert again.parse(text) == moodbot.parse(text)


def test_save_load_round_trip(moodbot: NLUPipeline, saved: Path) -> None:
    metadata = json.loads((saved / METADATA_FILE).read_text())
    assert metadata["format_version"] == FORMAT_VERSION
    assert metadata["dialogd_version"] == __version__
    assert metadata["fingerprint"] == moodbot.fingerprint_
    classifier = metadata["components"][2]
    assert classifier["name"] == "SoftmaxIntentClassifier"
    assert classifier["vocab"]["classes_"][:2] == ["goodbye", "greet"]
    loaded = NLUPipeline.load(saved)
    for example in load_nlu_data(MOODBOT).examples:
        assert loaded.parse(example.text) == moodbot.parse(example.text)


def test_parse_and_save_need_a_fitted_pipeline(tmp_path: Path) -> None:
    with pytest.raises(NotFittedError):
        NLUPipeline().parse("hi")
    with pytest.raises(NotFittedError):
        NLUPipeline().save(tmp_path)


def _rewrite_metadata(model: Path, change: Any) -> None:
    metadata = json.loads((model / METADATA_FILE).read_text())
    change(metadata)
    (model / METADATA_FILE).write_text(json.dumps(metadata))


def _drop_an_array(model: Path) -> None:
    with np.load(model / ARRAYS_FILE) as npz:
        arrays = {key: npz[key] for key in npz.files if not key.endswith("coef_")}
    np.savez(model / ARRAYS_FILE, **arrays)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda m: (m / ARRAYS_FILE).unlink(), "arrays.npz is missing"),
        (lambda m: (m / METADATA_FILE).unlink(), "metadata.json is missing"),
        (lambda m: (m / METADATA_FILE).write_text("{"), "unreadable"),
        (
            lambda m: _rewrite_metadata(m, lambda d: d.update(format_version=99)),
            "format version 99 is not supported",
        ),
        (
            lambda m: _rewrite_metadata(m, lambda d: d["components"].pop()),
            "do not match",
        ),
        (
            lambda m: _rewrite_metadata(
                m, lambda d: d["components"][2]["params"].update(bogus=1)
            ),
            "does not match the stored schema",
        ),
        (
            lambda m: _rewrite_metadata(
                m, lambda d: d["components"][2]["vocab"]["classes_"].pop()
            ),
            "does not match the stored schema",
        ),
        (_drop_an_array, "does not match the stored schema"),
        (lambda m: (m / ARRAYS_FILE).write_bytes(b"not a zip"), "cannot read arrays"),
    ],
    ids=[
        "no-arrays",
        "no-metadata",
        "bad-json",
        "version",
        "components",
        "params",
        "vocab",
        "array",
        "corrupt",
    ],
)
def test_load_errors(saved: Path, tmp_path: Path, damage: Any, message: str) -> None:
    model = _copy_model(saved, tmp_path / "model")
    damage(model)
    with pytest.raises(ModelError, match=message):
        NLUPipeline.load(model)


def test_load_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        NLUPipeline.load(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"pipeline": [{"name": "Tokenizer"}, {"name": "SpaceNLP"}]},
            "unknown NLU component 'SpaceNLP'; valid components: Tokenizer, ",
        ),
        (
            {"pipeline": [{"name": "Tokenizer"}, {"name": "SpacyNLP"}]},
            r"\(SpacyNLP\) has no dialogd counterpart: spaCy",
        ),
        (
            {"pipeline": [{"name": "Tokenizer", "lowercase": True}]},
            r"unknown parameters \['lowercase'\] for Tokenizer; valid parameters: "
            r"\['pattern'\]",
        ),
        (
            {"pipeline": [{"name": "Tokenizer"}, {"name": "SoftmaxIntentClassifier"}]},
            "needs",
        ),
        (
            {
                "pipeline": [
                    {"name": "Tokenizer"},
                    {"name": "PerceptronEntityExtractor", "intent_features": True},
                ]
            },
            r"needs \['intent'\]",
        ),
        (
            {"pipeline": [{"name": "Tokenizer"}, {"name": "FallbackClassifier"}]},
            r"needs \['intent'\]",
        ),
        ({"pipeline": "no_such_template"}, "unknown pipeline template"),
        ({"pipeline": {"name": "Tokenizer"}}, "must be a list"),
        ({"recipe": "graph.v2"}, "recipe 'graph.v2' is not supported"),
        ({"pipeline": [{"epochs": 3}]}, "needs a 'name'"),
        ({"language": "en", "pipelin": []}, "unknown NLU config keys"),
    ],
)
def test_invalid_config(config: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidConfig, match=message):
        NLUPipeline(config)


def test_bad_hyperparameter_fails_at_fit() -> None:
    pipeline = NLUPipeline(
        {
            "pipeline": [
                {"name": "Tokenizer"},
                {"name": "SparseFeaturizer"},
                {"name": "SoftmaxIntentClassifier", "epochs": 0},
            ]
        }
    )
    with pytest.raises(InvalidConfig, match="epochs=0"):
        pipeline.fit(load_nlu_data(MOODBOT))


def test_rasa_template_means_the_default_pipeline() -> None:
    assert NLUPipeline({"pipeline": "spacy_sklearn"}).config == NLUPipeline().config


def test_interpreter_routes_messages(moodbot: NLUPipeline) -> None:
    interpreter = Interpreter(moodbot)
    assert interpreter.parse("  hello there \n") == moodbot.parse("hello there")
    assert interpreter.parse("/mood_great@0.5")["intent"] == {
        "name": "mood_great",
        "confidence": 0.5,
    }
    assert interpreter.parse("  ") == EMPTY


def test_interpreter_without_model_uses_the_regex_grammar() -> None:
    result = Interpreter().parse(" hello ")
    assert result["text"] == "/hello"
    assert result["intent"] == {"name": "hello", "confidence": 1.0}
    assert Interpreter(None).parse("") == EMPTY


def test_label_smoothing_lowers_confidence(moodbot: NLUPipeline) -> None:
    config = {
        "pipeline": [
            {"name": "Tokenizer"},
            {"name": "SparseFeaturizer"},
            {"name": "SoftmaxIntentClassifier", "label_smoothing": 0.2},
        ]
    }
    smoothed = NLUPipeline(config).fit(load_nlu_data(MOODBOT))
    sharp, soft = moodbot.parse("hello there"), smoothed.parse("hello there")
    assert soft["intent"]["name"] == "greet"
    assert soft["intent"]["confidence"] < sharp["intent"]["confidence"]


def test_models_saved_before_dense_weights_still_load(
    saved: Path, tmp_path: Path, moodbot: NLUPipeline
) -> None:
    model = _copy_model(saved, tmp_path / "old")
    with np.load(model / ARRAYS_FILE) as npz:
        arrays = {k: npz[k] for k in npz.files if "dense_" not in k}
    np.savez(model / ARRAYS_FILE, **arrays)
    _rewrite_metadata(
        model,
        lambda d: [
            c.update(arrays=[a for a in c["arrays"] if "dense_" not in a])
            for c in d["components"]
        ],
    )
    loaded = NLUPipeline.load(model)
    assert loaded.parse("I am sad") == moodbot.parse("I am sad")


def test_parse_batch_matches_parse(moodbot: NLUPipeline) -> None:
    texts = ["hello there", "", "I am very sad", "  ", "bye"]
    batch = moodbot.parse_batch(texts)
    assert batch[1] == EMPTY and batch[3] == EMPTY
    for text, result in zip(texts, batch, strict=True):
        if text.strip():
            single = moodbot.parse(text)
            assert result["intent"]["name"] == single["intent"]["name"]
            assert result["intent"]["confidence"] == pytest.approx(
                single["intent"]["confidence"], abs=1e-5
            )
