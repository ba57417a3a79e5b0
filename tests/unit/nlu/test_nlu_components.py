"""One conformance suite for every registered NLU component."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from worker.errors import NotFittedError
from worker.nlu import DEFAULT_PIPELINE_CONFIG
from worker.nlu import REGISTRY
from worker.nlu import Component
from worker.nlu import Message
from worker.nlu import NLUData
from worker.nlu import load_nlu_data

TEXTS = [
    "hello there",
    "show me thai food in Rome",
    "chines food in 54321",
    "bye",
    "twenty one qwerty zxcv",
]
#: Every registered component, in a pipeline order that feeds each one; the
#: encoder runs a tiny random BERT (``tiny_bert``), not the real weights.
ORDER = [
    "Tokenizer",
    "SparseFeaturizer",
    "SentenceEncoderFeaturizer",
    "SoftmaxIntentClassifier",
    "ResponseSelector",
    "FallbackClassifier",
    "PerceptronEntityExtractor",
    "RegexEntityExtractor",
    "NumberExtractor",
    "EntitySynonymMapper",
]
COMPONENTS = [REGISTRY[name] for name in ORDER]
PARAMS: dict[str, dict[str, Any]] = {
    "SoftmaxIntentClassifier": {"n_models": 2},
    "FallbackClassifier": {"threshold": 0.6},
    "PerceptronEntityExtractor": {"intent_features": True},
}


@pytest.fixture(autouse=True, scope="module")
def _tiny_encoder(tiny_bert: Path) -> None:
    PARAMS["SentenceEncoderFeaturizer"] = {"model_path": str(tiny_bert)}


def make(cls: type[Component]) -> Component:
    """The component as the contract pipeline configures it."""
    return cls(**PARAMS.get(cls.__name__, {}))


@pytest.fixture(scope="module")
def data(nlu_md: Path) -> NLUData:
    return load_nlu_data(nlu_md)


def _upstream(cls: type[Component], data: NLUData) -> tuple[list[Component], list]:
    """Fitted default-pipeline components before ``cls`` and their training messages."""
    messages = [Message(example.text) for example in data.examples]
    fitted = []
    for upstream_cls in COMPONENTS[: COMPONENTS.index(cls)]:
        component = make(upstream_cls).fit(messages, data)
        for message in messages:
            component.process(message)
        fitted.append(component)
    return fitted, messages


def _outputs(component: Component, upstream: list[Component]) -> list[dict[str, Any]]:
    results = []
    for text in TEXTS:
        message = Message(text)
        for step in [*upstream, component]:
            step.process(message)
        features = message.features
        results.append(
            {
                "tokens": message.tokens,
                "features": None
                if features is None
                else (
                    features.indices.tolist(),
                    features.values.tolist(),
                    features.dim,
                ),
                "dense": None
                if message.dense_features is None
                else message.dense_features.tolist(),
                "token_vectors": None
                if message.token_vectors is None
                else message.token_vectors.tolist(),
                "intent": message.intent,
                "ranking": message.intent_ranking,
                "entities": message.entities,
                "response_selector": message.response_selector,
            }
        )
    return results


def _assert_same_arrays(
    left: dict[str, np.ndarray], right: dict[str, np.ndarray]
) -> None:
    assert left.keys() == right.keys()
    for key in left:
        assert left[key].dtype == right[key].dtype, key
        np.testing.assert_array_equal(left[key], right[key], err_msg=key)


@pytest.fixture(params=COMPONENTS, ids=ORDER)
def cls(request: pytest.FixtureRequest) -> type[Component]:
    return request.param


def test_default_constructible_and_init_stores_params_only(
    cls: type[Component],
) -> None:
    component = cls()
    assert vars(component) == component.get_params()
    assert all(not name.endswith("_") for name in vars(component))


def test_every_registered_component_is_in_the_contract_pipeline() -> None:
    assert sorted(ORDER) == sorted(REGISTRY)
    assert {s["name"] for s in DEFAULT_PIPELINE_CONFIG["pipeline"]} <= set(ORDER)


def test_fit_returns_self(cls: type[Component], data: NLUData) -> None:
    component = make(cls)
    _, messages = _upstream(cls, data)
    assert component.fit(messages, data) is component


def test_not_fitted_error_before_fit(cls: type[Component]) -> None:
    component = cls()
    with pytest.raises(NotFittedError):
        component.process(Message("hello"))
    with pytest.raises(NotFittedError):
        component.to_arrays()


def test_fit_twice_equals_fit_once(cls: type[Component], data: NLUData) -> None:
    upstream, messages = _upstream(cls, data)
    once = make(cls).fit(messages, data)
    twice = make(cls).fit(messages, data).fit(messages, data)
    _assert_same_arrays(once.to_arrays(), twice.to_arrays())
    assert _outputs(once, upstream) == _outputs(twice, upstream)


def test_array_round_trip_keeps_predictions(
    cls: type[Component], data: NLUData
) -> None:
    upstream, messages = _upstream(cls, data)
    fitted = make(cls).fit(messages, data)
    arrays = fitted.to_arrays()
    assert all(array.dtype.kind != "O" for array in arrays.values())
    restored = cls.from_arrays(fitted.get_params(), arrays)
    _assert_same_arrays(arrays, restored.to_arrays())
    assert _outputs(restored, upstream) == _outputs(fitted, upstream)


def test_the_contract_data_exercises_every_component(data: NLUData) -> None:
    components, _ = _upstream(COMPONENTS[-1], data)
    extractor = components[ORDER.index("PerceptronEntityExtractor")]
    mapper = COMPONENTS[-1]().fit([], data)
    outputs = _outputs(mapper, components)
    assert outputs[0]["intent"]["name"] == "greet"
    assert len(outputs[0]["dense"]) == 16
    assert np.array(outputs[1]["token_vectors"]).shape == (6, 16)
    assert outputs[-1]["intent"]["name"] == "nlu_fallback"
    found = {(e["entity"], e["extractor"]) for out in outputs for e in out["entities"]}
    assert ("cuisine", "PerceptronEntityExtractor") in found
    assert ("number", "NumberExtractor") in found
    assert ("zip", "RegexEntityExtractor") in found or (
        "zip",
        "PerceptronEntityExtractor",
    ) in found
    assert any("processors" in e for out in outputs for e in out["entities"])
    assert extractor.to_arrays()["pattern_names_"].tolist() == ["re:zip", "lookup:city"]
