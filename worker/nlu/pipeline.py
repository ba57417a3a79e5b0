"""The NLU pipeline: components built from a Rasa-style config, trained, persisted.

A model directory holds ``metadata.json`` (versions, config, params, labels, a
fingerprint) and ``arrays.npz`` (numbers only, read with ``allow_pickle=False``), so
loading a model can never run code.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from typing import Self

import numpy as np

from worker.errors import InvalidConfig
from worker.errors import ModelError
from worker.errors import NotFittedError
from worker.errors import TrainingDataError
from worker.nlu.base import Component
from worker.nlu.base import Message
from worker.nlu.classifier import SoftmaxIntentClassifier
from worker.nlu.encoder import SentenceEncoderFeaturizer
from worker.nlu.entities import PerceptronEntityExtractor
from worker.nlu.extractors import NumberExtractor
from worker.nlu.extractors import RegexEntityExtractor
from worker.nlu.fallback import FallbackClassifier
from worker.nlu.featurizers import SparseFeaturizer
from worker.nlu.response_selector import DEFAULT_SELECTOR
from worker.nlu.response_selector import ResponseSelector
from worker.nlu.synonyms import EntitySynonymMapper
from worker.nlu.tokenizer import Tokenizer
from worker.nlu.training_data import NLUData
from worker.rasa_config import translate_pipeline
from worker.version import __version__

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
METADATA_FILE = "metadata.json"
ARRAYS_FILE = "arrays.npz"

#: Every component a config may name; adding a component means adding it here.
REGISTRY: dict[str, type[Component]] = {
    cls.__name__: cls
    for cls in (
        Tokenizer,
        SparseFeaturizer,
        SentenceEncoderFeaturizer,
        SoftmaxIntentClassifier,
        ResponseSelector,
        FallbackClassifier,
        PerceptronEntityExtractor,
        RegexEntityExtractor,
        NumberExtractor,
        EntitySynonymMapper,
    )
}

DEFAULT_PIPELINE_CONFIG: dict[str, Any] = {
    "language": "en",
    "pipeline": [
        {"name": "Tokenizer"},
        {"name": "SparseFeaturizer"},
        {"name": "SoftmaxIntentClassifier"},
        # NOTE: the predicted intent as an entity feature: +1.6 points exact-span
        # F1 on SNIPS val, +4 on HWU64 (docs/nlu.md).
        {"name": "PerceptronEntityExtractor", "intent_features": True},
        {"name": "EntitySynonymMapper"},
    ],
}

#: Rasa NLU template names (``pipeline: "spacy_sklearn"``) found in old bot configs;
#: their components do not exist here, so they all mean our default pipeline.
RASA_TEMPLATES = frozenset(
    {
        "spacy_sklearn",
        "tensorflow_embedding",
        "keyword",
        "mitie",
        "mitie_sklearn",
        "pretrained_embeddings_spacy",
        "supervised_embeddings",
    }
)

#: Top-level config keys; ``policies`` is tolerated because Rasa puts NLU and Core
#: settings in one config.yml, and it is not ours to read here; ``recipe`` and
#: ``assistant_id`` are Rasa 3's.
_CONFIG_KEYS = frozenset({"language", "pipeline", "policies", "recipe", "assistant_id"})


def empty_parse_result() -> dict[str, Any]:
    """The result for empty or whitespace-only text (rasa_nlu's shape)."""
    return {"intent": {"name": None, "confidence": 0.0}, "entities": [], "text": ""}


class NLUPipeline:
    """An ordered list of ``(name, component)`` steps sharing one `Message` per text.

    The config is validated when the pipeline is built, not at ``fit``, so a bad
    config fails before any training data is read.
    """

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.config = _normalize_config(
            DEFAULT_PIPELINE_CONFIG if config is None else config
        )
        self.steps: list[tuple[str, Component]] = []
        for spec in self.config["pipeline"]:
            component = _build(spec)
            self.steps.append((spec["name"], component))
        _check_requirements(self.steps)

    def fit(self, data: NLUData) -> Self:
        """Train each component in order on the outputs of the ones before it."""
        if not data.examples:
            raise TrainingDataError("the NLU training data has no examples")
        messages = [Message(example.text) for example in data.examples]
        base = data.with_base_intents()
        for i, (_, component) in enumerate(self.steps):
            component.fit(messages, data if component.reads_response_keys else base)
            later_needs = set().union(*(c.requires for _, c in self.steps[i + 1 :]))
            later_needs |= set().union(
                *(c.requires_any for _, c in self.steps[i + 1 :])
            )
            if component.provides & later_needs:
                component.process_batch(messages)
        self.fingerprint_ = fingerprint(self.config, data)
        return self

    def parse(self, text: str) -> dict[str, Any]:
        """The rasa_nlu parse result (§6.4) for one text."""
        if not hasattr(self, "fingerprint_"):
            raise NotFittedError("NLUPipeline is not fitted yet; call fit() or load()")
        if not text.strip():
            return empty_parse_result()
        message = Message(text)
        for _, component in self.steps:
            component.process(message)
        return _result(message)

    def parse_batch(self, texts: list[str]) -> list[dict[str, Any]]:
        """`parse` for many texts at once (components that batch, batch)."""
        if not hasattr(self, "fingerprint_"):
            raise NotFittedError("NLUPipeline is not fitted yet; call fit() or load()")
        messages = [Message(text) for text in texts if text.strip()]
        for _, component in self.steps:
            component.process_batch(messages)
        results = iter(messages)
        return [
            _result(next(results)) if text.strip() else empty_parse_result()
            for text in texts
        ]

    def nbytes(self) -> int:
        """Memory held by the learned arrays (and a shared encoder's weights)."""
        total = 0
        for _, component in self.steps:
            if hasattr(component, component.fitted_attribute):
                total += sum(a.nbytes for a in component.to_arrays().values())
            encoder = getattr(component, "encoder", None)
            total += getattr(encoder, "nbytes", 0)
        return total

    def save(self, path: str | Path) -> Path:
        """Write the model directory; the metadata goes last and marks it complete."""
        if not hasattr(self, "fingerprint_"):
            raise NotFittedError("NLUPipeline is not fitted yet; nothing to save")
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {}  # np.savez takes them as keywords
        entries = []
        for i, (name, component) in enumerate(self.steps):
            numeric, vocab = [], {}
            for key, array in component.to_arrays().items():
                if array.dtype.kind == "U" and array.ndim == 1:
                    vocab[key] = array.tolist()
                elif array.dtype.kind in "biuf":
                    arrays[_array_key(i, name, key)] = array
                    numeric.append(key)
                else:
                    raise TypeError(f"{name}.{key}: cannot store dtype {array.dtype}")
            entries.append(
                {
                    "name": name,
                    "params": component.get_params(),
                    "arrays": numeric,
                    "vocab": vocab,
                }
            )
        metadata = {
            "format_version": FORMAT_VERSION,
            "dialogd_version": __version__,
            "fingerprint": self.fingerprint_,
            "config": self.config,
            "components": entries,
        }
        with open(directory / f".{ARRAYS_FILE}.tmp", "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(directory / f".{ARRAYS_FILE}.tmp", directory / ARRAYS_FILE)
        tmp = directory / f".{METADATA_FILE}.tmp"
        tmp.write_text(json.dumps(metadata, indent=1, ensure_ascii=False), "utf-8")
        os.replace(tmp, directory / METADATA_FILE)
        return directory

    @classmethod
    def load(cls, path: str | Path) -> NLUPipeline:
        """Read a model directory written by `save`; any mismatch is a `ModelError`."""
        directory = Path(path)
        metadata = _read_metadata(directory)
        try:
            pipeline = cls(metadata["config"])
        except (InvalidConfig, KeyError, TypeError) as err:
            raise ModelError(
                f"{directory}: the stored pipeline config is invalid: {err}"
            ) from err
        entries = metadata.get("components")
        names = [name for name, _ in pipeline.steps]
        if not isinstance(entries, list) or [e.get("name") for e in entries] != names:
            raise ModelError(
                f"{directory}: the components in {METADATA_FILE} do not "
                f"match its pipeline {names}"
            )
        try:
            with np.load(directory / ARRAYS_FILE, allow_pickle=False) as npz:
                pipeline.steps = [
                    (name, _load_component(npz, i, entry))
                    for i, (name, entry) in enumerate(zip(names, entries, strict=True))
                ]
                expected = {
                    _array_key(i, e["name"], key)
                    for i, e in enumerate(entries)
                    for key in e["arrays"]
                }
                if set(npz.files) != expected:
                    extra = sorted(set(npz.files) - expected)
                    raise ModelError(f"unexpected or missing arrays: {extra}")
        except (OSError, ValueError, zipfile.BadZipFile) as err:
            raise ModelError(
                f"{directory / ARRAYS_FILE}: cannot read arrays: {err}"
            ) from err
        except ModelError as err:
            raise ModelError(f"{directory}: {err}") from err
        pipeline.fingerprint_ = str(metadata.get("fingerprint", ""))
        return pipeline


def _result(message: Message) -> dict[str, Any]:
    result: dict[str, Any] = {
        "text": message.text,
        "intent": message.intent or {"name": None, "confidence": 0.0},
        "intent_ranking": message.intent_ranking,
        "entities": message.entities,
    }
    selector = message.response_selector
    if selector is not None:
        result["response_selector"] = selector
        name = result["intent"]["name"]
        if name in selector["all_retrieval_intents"]:
            # NOTE: as Rasa's processor; from the intent's own selector, else the
            # one for all (where Rasa leaves it None).
            chosen = selector.get(name) or selector.get(DEFAULT_SELECTOR)
            result["intent"] = {
                **result["intent"],
                "full_retrieval_intent_name": chosen["response"]["intent_response_key"]
                if chosen
                else None,
            }
    return result


def fingerprint(config: Mapping[str, Any], data: NLUData) -> str:
    """sha256 of config and training data: equal fingerprints need no retraining."""
    content = {
        "config": config,
        "examples": [[ex.text, ex.intent, list(ex.entities)] for ex in data.examples],
        "synonyms": data.synonyms,
        "regex_features": data.regex_features,
        "lookup_tables": data.lookup_tables,
    }
    if data.responses:
        content["responses"] = data.responses
    encoded = json.dumps(content, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(encoded).hexdigest()


def _normalize_config(config: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(config, Mapping):
        kind = type(config).__name__
        raise InvalidConfig(f"an NLU config must be a mapping, not {kind}")
    unknown = sorted(set(config) - _CONFIG_KEYS)
    if unknown:
        raise InvalidConfig(
            f"unknown NLU config keys {unknown}; valid keys: {sorted(_CONFIG_KEYS)}"
        )
    language = config.get("language", "en")
    if not isinstance(language, str):
        raise InvalidConfig(f"language must be a string, not {language!r}")
    recipe = config.get("recipe", "default.v1")
    if recipe != "default.v1":
        raise InvalidConfig(f"recipe {recipe!r} is not supported; use default.v1")
    pipeline = config.get("pipeline") or DEFAULT_PIPELINE_CONFIG["pipeline"]
    if isinstance(pipeline, str):
        if pipeline not in RASA_TEMPLATES:
            raise InvalidConfig(
                f"unknown pipeline template {pipeline!r}; list the "
                f"components instead, from: {', '.join(REGISTRY)}"
            )
        logger.info("pipeline template %r: using the default pipeline", pipeline)
        pipeline = DEFAULT_PIPELINE_CONFIG["pipeline"]
    if not isinstance(pipeline, list):
        raise InvalidConfig("pipeline must be a list of components")
    return {
        "language": language,
        "pipeline": translate_pipeline(copy.deepcopy(pipeline)),
    }


def _build(spec: Any) -> Component:
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        raise InvalidConfig(f"each pipeline entry needs a 'name', got {spec!r}")
    name = spec["name"]
    cls = REGISTRY.get(name)
    if cls is None:
        raise InvalidConfig(
            f"unknown NLU component {name!r}; valid components: {', '.join(REGISTRY)}"
        )
    params = {key: value for key, value in spec.items() if key != "name"}
    unknown = sorted(set(params) - set(cls.param_names()))
    if unknown:
        raise InvalidConfig(
            f"unknown parameters {unknown} for {name}; valid "
            f"parameters: {cls.param_names()}"
        )
    return cls(**params)


def _check_requirements(steps: list[tuple[str, Component]]) -> None:
    available: set[str] = set()
    for name, component in steps:
        missing = sorted(component.requires - available)
        if missing:
            raise InvalidConfig(
                f"{name} needs {missing} from an earlier component in the pipeline"
            )
        if component.requires_any and not component.requires_any & available:
            raise InvalidConfig(
                f"{name} needs one of {sorted(component.requires_any)} from an "
                "earlier component in the pipeline"
            )
        available |= component.provides


def _array_key(index: int, name: str, key: str) -> str:
    return f"{index}_{name}__{key}"


def _read_metadata(directory: Path) -> dict[str, Any]:
    if not directory.is_dir():
        raise ModelError(f"NLU model directory {directory} does not exist")
    for file in (METADATA_FILE, ARRAYS_FILE):
        if not (directory / file).is_file():
            raise ModelError(
                f"{directory} is not a complete NLU model: {file} is missing"
            )
    try:
        metadata = json.loads((directory / METADATA_FILE).read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelError(f"{directory / METADATA_FILE} is unreadable: {err}") from err
    version = metadata.get("format_version") if isinstance(metadata, dict) else None
    if version != FORMAT_VERSION:
        raise ModelError(
            f"{directory}: NLU model format version {version!r} is not "
            f"supported (this dialogd reads version {FORMAT_VERSION}); "
            "retrain the model"
        )
    return metadata


def _load_component(
    npz: Mapping[str, np.ndarray], index: int, entry: Mapping[str, Any]
) -> Component:
    name = entry["name"]
    try:
        arrays = {key: npz[_array_key(index, name, key)] for key in entry["arrays"]}
        arrays.update(
            {key: np.array(values, dtype=str) for key, values in entry["vocab"].items()}
        )
        return REGISTRY[name].from_arrays(entry["params"], arrays)
    except (KeyError, TypeError, ValueError) as err:
        raise ModelError(
            f"component {index} ({name}) does not match the stored schema: {err!r}"
        ) from err
