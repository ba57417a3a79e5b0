"""Rasa 2.x/3.x config.yml names, mapped to dialogd's NLU components and policies.

A Rasa 3 ``config.yml`` names Rasa's components (``WhitespaceTokenizer``,
``CountVectorsFeaturizer``, ``DIETClassifier``, ...). Each maps to the dialogd
component that does the same job (the table in docs/rasa.md); consecutive Rasa
featurizers become one ``SparseFeaturizer``. A parameter is either honoured
(translated to ours), accepted as having no counterpart because it tunes a network
dialogd does not have (``NETWORK_PARAMS``), or refused by name.
"""

from __future__ import annotations

from typing import Any

from worker.errors import InvalidConfig

#: DIET/TED/ResponseSelector settings of their transformer networks: dialogd's
#: models are different ones with their own tuned defaults, so these have no effect.
NETWORK_PARAMS = frozenset(
    {
        "epochs",
        "constrain_similarities",
        "model_confidence",
        "number_of_transformer_layers",
        "transformer_size",
        "hidden_layers_sizes",
        "embedding_dimension",
        "batch_size",
        "learning_rate",
        "drop_rate",
        "evaluate_on_number_of_examples",
        "evaluate_every_number_of_epochs",
        "random_seed",
        "tensorboard_log_directory",
        "checkpoint_model",
        "use_masked_language_model",
        "connection_density",
        "weight_sparsity",
        "number_of_negative_examples",
        "similarity_type",
        "loss_type",
        "scale_loss",
        "BILOU_flag",
        "split_entities_by_comma",
    }
)
_FEATURIZERS = frozenset(
    {"CountVectorsFeaturizer", "LexicalSyntacticFeaturizer", "RegexFeaturizer"}
)
_TOKENIZERS = frozenset({"WhitespaceTokenizer"})
#: Duckling's dimensions that have a counterpart: ``number`` is NumberExtractor's.
_DUCKLING_DIMENSIONS = frozenset({"number"})
_CLASSIFIERS = frozenset(
    {
        "DIETClassifier",
        "SklearnIntentClassifier",
        "LogisticRegressionClassifier",
        "KeywordIntentClassifier",
    }
)
_ENTITY_EXTRACTORS = frozenset({"CRFEntityExtractor"})
#: Components with no dialogd counterpart, and why.
REFUSED = {
    "SpacyNLP": "spaCy models are not used; remove it and the Spacy* components",
    "SpacyTokenizer": "use WhitespaceTokenizer",
    "SpacyFeaturizer": "spaCy vectors are not used; remove it",
    "SpacyEntityExtractor": "spaCy NER is not used; annotate the entities instead",
    "MitieNLP": "MITIE is not supported",
    "MitieTokenizer": "use WhitespaceTokenizer",
    "MitieFeaturizer": "MITIE is not supported",
    "MitieEntityExtractor": "MITIE is not supported",
    "MitieIntentClassifier": "use DIETClassifier",
    "JiebaTokenizer": "only whitespace tokenization is supported",
    "ConveRTFeaturizer": "use SentenceEncoderFeaturizer (docs/nlu.md)",
    "LanguageModelFeaturizer": "use SentenceEncoderFeaturizer (docs/nlu.md)",
}
#: Every Rasa name this module translates. ``EntitySynonymMapper``,
#: ``FallbackClassifier`` and ``RegexEntityExtractor`` are dialogd's own names too
#: (with Rasa's parameters), so they need no translation.
RASA_NAMES = frozenset(
    _FEATURIZERS
    | _TOKENIZERS
    | _CLASSIFIERS
    | _ENTITY_EXTRACTORS
    | {"DucklingEntityExtractor", "ResponseSelector"}
    | set(REFUSED)
)


def is_rasa_component(name: Any) -> bool:
    return isinstance(name, str) and name.rsplit(".", 1)[-1] in RASA_NAMES


def translate_pipeline(pipeline: list[Any]) -> list[dict[str, Any]]:
    """dialogd's pipeline for a pipeline that may name Rasa components; dialogd's
    own entries pass through unchanged."""
    out: list[dict[str, Any]] = []
    featurizer: dict[str, Any] | None = None
    for i, spec in enumerate(pipeline):
        name = spec.get("name") if isinstance(spec, dict) else None
        if not is_rasa_component(name):
            out.append(spec)
            featurizer = None
            continue
        assert isinstance(name, str)
        short = name.rsplit(".", 1)[-1]
        params = {k: v for k, v in spec.items() if k != "name"}
        where = f"pipeline entry {i} ({short})"
        if short in REFUSED:
            raise InvalidConfig(f"{where} has no dialogd counterpart: {REFUSED[short]}")
        if short in _FEATURIZERS:
            if "token_pattern" in params:
                _set_token_pattern(out, params.pop("token_pattern"), where)
            if featurizer is None:
                featurizer = {"name": "SparseFeaturizer"}
                out.append(featurizer)
            featurizer.update(_featurizer_params(short, params, where))
            continue
        featurizer = None
        out.extend(_translate(short, params, where))
    return out


def _featurizer_params(name: str, params: dict[str, Any], where: str) -> dict[str, Any]:
    if name != "CountVectorsFeaturizer":
        _refuse(params, set(), where)
        return {}
    analyzer = params.pop("analyzer", "word")
    out: dict[str, Any] = {}
    if "min_df" in params:
        out["min_df"] = params.pop("min_df")
    low, high = params.pop("min_ngram", 1), params.pop("max_ngram", 1)
    if analyzer == "word":
        out["max_word_ngram"] = high
    elif analyzer in ("char", "char_wb"):
        out.update(min_char_ngram=low, max_char_ngram=high)
    else:
        raise InvalidConfig(f"{where}: analyzer {analyzer!r} is not supported")
    _refuse(params, {"lowercase", "use_shared_vocab", "OOV_token"}, where)
    return out


def _translate(name: str, params: dict[str, Any], where: str) -> list[dict[str, Any]]:
    if name in _TOKENIZERS:
        if params.pop("intent_tokenization_flag", False):
            raise InvalidConfig(f"{where}: multi-intents are not supported")
        params.pop("intent_split_symbol", None)
        out = {"name": "Tokenizer"}
        if "token_pattern" in params:
            out["pattern"] = _pattern(params.pop("token_pattern"), where)
        _refuse(params, set(), where)
        return [out]
    if name == "DucklingEntityExtractor":
        dimensions = params.pop("dimensions", None)
        if not isinstance(dimensions, list) or not dimensions:
            raise InvalidConfig(
                f"{where}: Duckling without 'dimensions' extracts all of them; only "
                f"{sorted(_DUCKLING_DIMENSIONS)} have a counterpart: name them"
            )
        other = sorted(str(d) for d in set(dimensions) - _DUCKLING_DIMENSIONS)
        if other:
            raise InvalidConfig(
                f"{where}: Duckling dimensions {other} have no counterpart; "
                f"supported: {sorted(_DUCKLING_DIMENSIONS)}"
            )
        # NOTE: numbers need no Duckling server: its url and settings go unused.
        _refuse(params, {"url", "locale", "timezone", "timeout"}, where)
        return [{"name": "NumberExtractor", "entity": "number"}]
    if name in _CLASSIFIERS:
        intents = params.pop("intent_classification", True)
        entities = params.pop("entity_recognition", name == "DIETClassifier")
        _refuse(params, NETWORK_PARAMS, where)
        steps: list[dict[str, Any]] = []
        if intents:
            steps.append({"name": "SoftmaxIntentClassifier"})
        if entities:
            steps.append({"name": "PerceptronEntityExtractor", "intent_features": True})
        return steps
    if name == "ResponseSelector":
        out = {"name": "ResponseSelector"}
        for key in ("retrieval_intent", "ranking_length"):
            if params.get(key) is not None:
                out[key] = params.pop(key)
        # NOTE: labels are always the response keys (Rasa 2+'s default); with
        # use_text_as_label the same answers are chosen, so it is accepted.
        _refuse(
            params, NETWORK_PARAMS | {"use_text_as_label", "retrieval_intent"}, where
        )
        return [out]
    if name in _ENTITY_EXTRACTORS:
        _refuse(params, {"features", "max_iterations", "L1_c", "L2_c"}, where)
        return [{"name": "PerceptronEntityExtractor", "intent_features": True}]
    raise AssertionError(name)


def _pattern(value: Any, where: str) -> str:
    """A Rasa token pattern as ours: Python 3's ``(?u)`` flag is the default."""
    if not isinstance(value, str) or not value:
        raise InvalidConfig(f"{where}: token_pattern must be a regular expression")
    return value.removeprefix("(?u)")


def _set_token_pattern(out: list[dict[str, Any]], value: Any, where: str) -> None:
    """CountVectorsFeaturizer's ``token_pattern`` names the words it counts: ours
    counts the tokenizer's tokens, so the pattern goes to the tokenizer before it."""
    pattern = _pattern(value, where)
    tokenizer = next((s for s in reversed(out) if s.get("name") == "Tokenizer"), None)
    if tokenizer is None:
        raise InvalidConfig(f"{where}: token_pattern needs a tokenizer before it")
    if tokenizer.setdefault("pattern", pattern) != pattern:
        raise InvalidConfig(
            f"{where}: token_pattern {pattern!r} differs from the tokenizer's "
            f"{tokenizer['pattern']!r}; dialogd counts the tokenizer's tokens"
        )


def _refuse(
    params: dict[str, Any], ignorable: set[str] | frozenset[str], where: str
) -> None:
    unknown = sorted(set(params) - set(ignorable))
    if unknown:
        raise InvalidConfig(
            f"{where}: parameters {unknown} have no dialogd counterpart; "
            "remove them (docs/rasa.md lists what each component honours)"
        )
