"""Policy configuration files: registry names, kwargs and featuriser blocks."""

from pathlib import Path

import pytest

from worker.errors import InvalidConfig
from worker.policies import DEFAULT_POLICY_CONFIG
from worker.policies import AugmentedMemoizationPolicy
from worker.policies import FallbackPolicy
from worker.policies import MappingPolicy
from worker.policies import MemoizationPolicy
from worker.policies import NeuralPolicy
from worker.policies import policies_from_config
from worker.policies import read_policy_config

from .helpers import EXAMPLES


def test_default_config_is_0_14_5_without_forms():
    policies = policies_from_config(None)
    assert [type(p) for p in policies] == [
        NeuralPolicy,
        FallbackPolicy,
        MemoizationPolicy,
        MappingPolicy,
    ]
    assert policies_from_config(DEFAULT_POLICY_CONFIG)[0].epochs == 100


def test_concertbot_config_and_aliases():
    config = read_policy_config(EXAMPLES / "concertbot" / "policy_config.yml")
    keras, fallback, memo = policies_from_config(config)
    assert isinstance(keras, NeuralPolicy)
    assert (keras.epochs, keras.batch_size, keras.max_training_samples) == (
        200,
        50,
        300,
    )
    assert isinstance(fallback, FallbackPolicy) and isinstance(memo, MemoizationPolicy)
    (neural,) = policies_from_config({"policy": [{"name": "NeuralPolicy"}]})
    assert isinstance(neural, NeuralPolicy)
    (augmented,) = policies_from_config(
        {"policies": [{"name": "rasa_core.policies.AugmentedMemoizationPolicy"}]}
    )
    assert isinstance(augmented, AugmentedMemoizationPolicy)


def test_featurizer_block_sets_max_history():
    config = {
        "policies": [
            {
                "name": "KerasPolicy",
                "featurizer": [
                    {
                        "name": "MaxHistoryTrackerFeaturizer",
                        "max_history": 3,
                        "state_featurizer": [{"name": "BinarySingleStateFeaturizer"}],
                    }
                ],
            }
        ]
    }
    (policy,) = policies_from_config(config)
    assert policy.max_history == 3


@pytest.mark.parametrize("config", [None, {}, {"policies": []}, {"policies": None}])
def test_no_policies_means_the_defaults(config):
    """As Rasa: ``policies: null`` (what ``rasa init`` writes) or an empty list."""
    plain = [type(p).__name__ for p in policies_from_config(config)]
    with_rules = [type(p).__name__ for p in policies_from_config(config, rules=True)]
    assert plain == [
        "NeuralPolicy",
        "FallbackPolicy",
        "MemoizationPolicy",
        "MappingPolicy",
    ]
    assert with_rules == ["MemoizationPolicy", "RulePolicy", "NeuralPolicy"]


def test_rules_need_a_rule_policy():
    config = {"policies": [{"name": "MemoizationPolicy"}]}
    with pytest.raises(InvalidConfig, match="RulePolicy"):
        policies_from_config(config, rules=True)


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"policies": "MemoizationPolicy"}, "non-empty list"),
        ([], "must be a mapping"),
        (
            {"policies": [{"name": "FormPolicy"}]},
            "valid names: AugmentedMemoizationPolicy",
        ),
        ({"policies": [{"epochs": 3}]}, "needs a 'name'"),
        (
            {"policies": [{"name": "MemoizationPolicy", "epochs": 3}]},
            "valid: max_history",
        ),
        (
            {"policies": [{"name": "KerasPolicy", "featurizer": [{"name": "Full"}]}]},
            "not supported",
        ),
        (
            {
                "policies": [
                    {
                        "name": "MappingPolicy",
                        "featurizer": [
                            {"name": "MaxHistoryTrackerFeaturizer", "max_history": 2}
                        ],
                    }
                ]
            },
            "takes no max_history",
        ),
    ],
)
def test_invalid_configs(config, fragment):
    with pytest.raises(InvalidConfig, match=fragment):
        policies_from_config(config)


def test_bad_yaml_file_is_invalid_config(tmp_path: Path):
    path = tmp_path / "config.yml"
    path.write_text("policies: [\n")
    with pytest.raises(InvalidConfig, match=r"config\.yml"):
        read_policy_config(path)
    with pytest.raises(InvalidConfig, match="not found"):
        read_policy_config(tmp_path / "nope.yml")


def test_rasa3_policy_names():
    config = {
        "policies": [
            {"name": "MemoizationPolicy"},
            {"name": "RulePolicy", "core_fallback_threshold": 0.4},
            {
                "name": "TEDPolicy",
                "max_history": 4,
                "epochs": 7,
                "constrain_similarities": True,
            },
        ]
    }
    _, rule, ted = policies_from_config(config)
    assert isinstance(ted, NeuralPolicy)
    assert (ted.max_history, ted.epochs) == (4, 7)
    assert rule.core_fallback_threshold == 0.4
    with pytest.raises(InvalidConfig, match="UnexpecTEDIntentPolicy"):
        policies_from_config({"policies": [{"name": "UnexpecTEDIntentPolicy"}]})
