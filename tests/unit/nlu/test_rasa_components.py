"""Rasa 3 config.yml files: component names mapped, parameters honoured or refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from worker.errors import InvalidConfig
from worker.nlu import DEFAULT_PIPELINE_CONFIG
from worker.nlu import NLUPipeline
from worker.yamlfile import read_yaml

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"

RASA3_DEFAULT = [
    {"name": "WhitespaceTokenizer"},
    {"name": "RegexFeaturizer"},
    {"name": "LexicalSyntacticFeaturizer"},
    {"name": "CountVectorsFeaturizer"},
    {
        "name": "CountVectorsFeaturizer",
        "analyzer": "char_wb",
        "min_ngram": 1,
        "max_ngram": 4,
    },
    {"name": "DIETClassifier", "epochs": 100, "constrain_similarities": True},
    {"name": "EntitySynonymMapper"},
    {"name": "ResponseSelector", "epochs": 100, "constrain_similarities": True},
    {"name": "FallbackClassifier", "threshold": 0.3, "ambiguity_threshold": 0.1},
]


def names(pipeline: NLUPipeline) -> list[str]:
    return [name for name, _ in pipeline.steps]


def test_rasa_init_config_null_pipeline_is_the_default():
    config = read_yaml(FIXTURES / "rasa_init" / "config.yml").data
    assert config["pipeline"] is None
    pipeline = NLUPipeline(config)
    assert pipeline.config["pipeline"] == DEFAULT_PIPELINE_CONFIG["pipeline"]


def test_rasa3_default_pipeline_maps_to_ours():
    pipeline = NLUPipeline({"recipe": "default.v1", "pipeline": RASA3_DEFAULT})
    assert names(pipeline) == [
        "Tokenizer",
        "SparseFeaturizer",
        "SoftmaxIntentClassifier",
        "PerceptronEntityExtractor",
        "EntitySynonymMapper",
        "ResponseSelector",
        "FallbackClassifier",
    ]
    featurizer = pipeline.config["pipeline"][1]
    assert featurizer == {
        "name": "SparseFeaturizer",
        "max_word_ngram": 1,
        "min_char_ngram": 1,
        "max_char_ngram": 4,
    }
    assert pipeline.config["pipeline"][-1]["threshold"] == 0.3


def test_diet_without_entities_and_module_paths():
    pipeline = NLUPipeline(
        {
            "pipeline": [
                {"name": "WhitespaceTokenizer", "token_pattern": r"\w+"},
                {"name": "rasa.nlu.featurizers.CountVectorsFeaturizer"},
                {"name": "DIETClassifier", "entity_recognition": False},
            ]
        }
    )
    assert names(pipeline) == [
        "Tokenizer",
        "SparseFeaturizer",
        "SoftmaxIntentClassifier",
    ]
    assert pipeline.config["pipeline"][0] == {"name": "Tokenizer", "pattern": r"\w+"}


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"name": "ResponseSelector", "use_maximum_sparsity": 1}, "maximum_sparsity"),
        ({"name": "DIETClassifier", "tensorflow_magic": 1}, "['tensorflow_magic']"),
        ({"name": "CountVectorsFeaturizer", "analyzer": "bytes"}, "analyzer"),
        ({"name": "WhitespaceTokenizer", "intent_tokenization_flag": True}, "multi"),
        ({"name": "LexicalSyntacticFeaturizer", "features": []}, "['features']"),
    ],
)
def test_unsupported_components_and_parameters_are_refused_by_name(spec, fragment):
    with pytest.raises(InvalidConfig) as info:
        NLUPipeline({"pipeline": [{"name": "WhitespaceTokenizer"}, spec]})
    assert spec["name"].rsplit(".", 1)[-1] in str(info.value)
    assert fragment in str(info.value)


def test_formbot_config_duckling_numbers_and_token_pattern():
    """formbot's config.yml: Duckling's number dimension is NumberExtractor, and
    CountVectorsFeaturizer's token_pattern is the tokenizer's (Python 3's (?u) is
    the default)."""
    config = read_yaml(FIXTURES / "formbot" / "config.yml").data
    pipeline = NLUPipeline(config)
    assert names(pipeline)[:3] == ["Tokenizer", "SparseFeaturizer", "NumberExtractor"]
    assert pipeline.config["pipeline"][0] == {
        "name": "Tokenizer",
        "pattern": r"\b\w+\b",
    }
    assert pipeline.config["pipeline"][2] == {
        "name": "NumberExtractor",
        "entity": "number",
    }


@pytest.mark.parametrize(
    ("pipeline", "fragment"),
    [
        ([{"name": "DucklingEntityExtractor", "dimensions": ["time"]}], "['time']"),
        ([{"name": "DucklingEntityExtractor"}], "dimensions"),
        (
            [
                {"name": "WhitespaceTokenizer", "token_pattern": r"\w+"},
                {"name": "CountVectorsFeaturizer", "token_pattern": r"\S+"},
            ],
            "differs",
        ),
        ([{"name": "CountVectorsFeaturizer", "token_pattern": r"\w+"}], "tokenizer"),
    ],
)
def test_what_cannot_be_honoured_is_refused(pipeline, fragment):
    with pytest.raises(InvalidConfig, match=re.escape(fragment)):
        NLUPipeline({"pipeline": [*pipeline, {"name": "DIETClassifier"}]})
