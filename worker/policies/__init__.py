"""Dialogue policies: what the bot does next, learned from stories."""

from worker.policies.base import Policy
from worker.policies.config import DEFAULT_POLICY_CONFIG
from worker.policies.config import POLICY_REGISTRY
from worker.policies.config import policies_from_config
from worker.policies.config import read_policy_config
from worker.policies.ensemble import PolicyEnsemble
from worker.policies.ensemble import Prediction
from worker.policies.featurizer import states_to_matrix
from worker.policies.featurizer import training_examples
from worker.policies.featurizer import window_key
from worker.policies.memoization import AugmentedMemoizationPolicy
from worker.policies.memoization import MemoizationPolicy
from worker.policies.neural import NeuralPolicy
from worker.policies.rules import FallbackPolicy
from worker.policies.rules import MappingPolicy

__all__ = [
    "DEFAULT_POLICY_CONFIG",
    "POLICY_REGISTRY",
    "AugmentedMemoizationPolicy",
    "FallbackPolicy",
    "MappingPolicy",
    "MemoizationPolicy",
    "NeuralPolicy",
    "Policy",
    "PolicyEnsemble",
    "Prediction",
    "policies_from_config",
    "read_policy_config",
    "states_to_matrix",
    "training_examples",
    "window_key",
]
