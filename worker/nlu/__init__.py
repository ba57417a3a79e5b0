"""Natural-language understanding: training data, pipeline components, interpreter."""

from worker.nlu.base import Component
from worker.nlu.base import Message
from worker.nlu.base import SparseVector
from worker.nlu.base import Token
from worker.nlu.classifier import SoftmaxIntentClassifier
from worker.nlu.classifier import SparseBatch
from worker.nlu.data import Example
from worker.nlu.data import load_nlu_data
from worker.nlu.encoder import SentenceEncoderFeaturizer
from worker.nlu.entities import PerceptronEntityExtractor
from worker.nlu.evaluation import evaluate
from worker.nlu.extractors import NumberExtractor
from worker.nlu.extractors import RegexEntityExtractor
from worker.nlu.fallback import FallbackClassifier
from worker.nlu.featurizers import SparseFeaturizer
from worker.nlu.interpreter import Interpreter
from worker.nlu.pipeline import DEFAULT_PIPELINE_CONFIG
from worker.nlu.pipeline import FORMAT_VERSION
from worker.nlu.pipeline import REGISTRY
from worker.nlu.pipeline import NLUPipeline
from worker.nlu.pipeline import empty_parse_result
from worker.nlu.regex_interpreter import parse_intent_message
from worker.nlu.synonyms import EntitySynonymMapper
from worker.nlu.tokenizer import Tokenizer
from worker.nlu.training_data import Entity
from worker.nlu.training_data import NLUData

__all__ = [
    "DEFAULT_PIPELINE_CONFIG",
    "FORMAT_VERSION",
    "REGISTRY",
    "Component",
    "Entity",
    "EntitySynonymMapper",
    "Example",
    "FallbackClassifier",
    "Interpreter",
    "Message",
    "NLUData",
    "NLUPipeline",
    "NumberExtractor",
    "PerceptronEntityExtractor",
    "RegexEntityExtractor",
    "SentenceEncoderFeaturizer",
    "SoftmaxIntentClassifier",
    "SparseBatch",
    "SparseFeaturizer",
    "SparseVector",
    "Token",
    "Tokenizer",
    "empty_parse_result",
    "evaluate",
    "load_nlu_data",
    "parse_intent_message",
]
