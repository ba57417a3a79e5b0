"""Policy configuration files (Rasa Core 0.14's ``policies:`` YAML): names from
one explicit registry.

A config never names code to import: ``name`` must be a registered policy (a Rasa
module path is accepted when its last part is one), and every other key must be a
constructor argument of that policy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from worker.errors import InvalidConfig
from worker.errors import TrainingDataError
from worker.policies.base import Policy
from worker.policies.memoization import AugmentedMemoizationPolicy
from worker.policies.memoization import MemoizationPolicy
from worker.policies.neural import NeuralPolicy
from worker.policies.rules import FallbackPolicy
from worker.policies.rules import MappingPolicy
from worker.policies.rules import RulePolicy
from worker.rasa_config import NETWORK_PARAMS
from worker.yamlfile import read_yaml

POLICY_REGISTRY: dict[str, type[Policy]] = {
    "KerasPolicy": NeuralPolicy,
    "NeuralPolicy": NeuralPolicy,
    "MemoizationPolicy": MemoizationPolicy,
    "AugmentedMemoizationPolicy": AugmentedMemoizationPolicy,
    "FallbackPolicy": FallbackPolicy,
    "MappingPolicy": MappingPolicy,
    "RulePolicy": RulePolicy,
}

#: rasa_core 0.14.5's ``default_config.yml`` without FormPolicy.
DEFAULT_POLICY_CONFIG: dict[str, Any] = {
    "policies": [
        {"name": "KerasPolicy", "epochs": 100, "max_history": 5},
        {"name": "FallbackPolicy", "fallback_action_name": "action_default_fallback"},
        {"name": "MemoizationPolicy", "max_history": 5},
        {"name": "MappingPolicy"},
    ]
}

#: For training data with rules: Rasa 3's default policies, with our neural policy
#: in TEDPolicy's place (UnexpecTEDIntentPolicy has no counterpart).
DEFAULT_RULES_POLICY_CONFIG: dict[str, Any] = {
    "policies": [
        {"name": "MemoizationPolicy", "max_history": 5},
        {"name": "RulePolicy"},
        {"name": "KerasPolicy", "epochs": 100, "max_history": 5},
    ]
}

_FEATURIZERS = {"MaxHistoryTrackerFeaturizer"}
_STATE_FEATURIZERS = {"BinarySingleStateFeaturizer"}


def _policy_class(name: Any, where: str) -> type[Policy]:
    key = name.rsplit(".", 1)[-1] if isinstance(name, str) else None
    cls = POLICY_REGISTRY.get(key) if key else None
    if cls is None:
        raise InvalidConfig(
            f"{where}: unknown policy {name!r}; valid names: "
            + ", ".join(sorted(POLICY_REGISTRY))
        )
    return cls


def _featurizer_history(spec: Any, where: str) -> int | None:
    """``max_history`` of a ``featurizer:`` block, the only part we honour."""
    items = spec if isinstance(spec, list) else [spec]
    if len(items) != 1 or not isinstance(items[0], dict):
        raise InvalidConfig(f"{where}: 'featurizer' must be one featurizer mapping")
    block = dict(items[0])
    name = str(block.pop("name", "")).rsplit(".", 1)[-1]
    if name not in _FEATURIZERS:
        raise InvalidConfig(
            f"{where}: featurizer {name!r} is not supported; valid: "
            + ", ".join(sorted(_FEATURIZERS))
        )
    for state in block.pop("state_featurizer", None) or []:
        state_name = str((state or {}).get("name", "")).rsplit(".", 1)[-1]
        if state_name not in _STATE_FEATURIZERS:
            raise InvalidConfig(
                f"{where}: state featurizer {state_name!r} is not supported; valid: "
                + ", ".join(sorted(_STATE_FEATURIZERS))
            )
    history = block.pop("max_history", None)
    block.pop("remove_duplicates", None)
    if block:
        raise InvalidConfig(f"{where}: unsupported featurizer keys {sorted(block)}")
    if history is not None and (
        isinstance(history, bool) or not isinstance(history, int)
    ):
        raise InvalidConfig(f"{where}: featurizer max_history must be an integer")
    return history


#: TEDPolicy's transformer settings: NeuralPolicy is another network with its own
#: tuned defaults, so they have no effect (``max_history`` and ``epochs`` do).
_TED_NETWORK_PARAMS = NETWORK_PARAMS - {"epochs"}


def _rasa_policy(kwargs: dict[str, Any], where: str) -> dict[str, Any]:
    """Rasa 3 policy names: TEDPolicy is our NeuralPolicy."""
    name = str(kwargs.get("name", "")).rsplit(".", 1)[-1]
    if name == "UnexpecTEDIntentPolicy":
        raise InvalidConfig(
            f"{where}: UnexpecTEDIntentPolicy has no dialogd counterpart; remove it"
        )
    if name != "TEDPolicy":
        return kwargs
    return {
        "name": "NeuralPolicy",
        **{k: v for k, v in kwargs.items() if k not in _TED_NETWORK_PARAMS | {"name"}},
    }


def _build(item: Any, where: str) -> Policy:
    if not isinstance(item, dict) or "name" not in item:
        raise InvalidConfig(f"{where}: each policy needs a 'name'")
    kwargs = _rasa_policy(dict(item), where)
    cls = _policy_class(kwargs.pop("name"), where)
    valid = cls.param_names()
    if "featurizer" in kwargs:
        history = _featurizer_history(kwargs.pop("featurizer"), where)
        if history is not None:
            if "max_history" not in valid:
                raise InvalidConfig(f"{where}: {cls.__name__} takes no max_history")
            kwargs.setdefault("max_history", history)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise InvalidConfig(
            f"{where}: {cls.__name__} does not accept {unknown}; valid: "
            + ", ".join(valid)
        )
    return cls(**kwargs)


def policies_from_config(
    config: dict[str, Any] | None, source: str = "config", *, rules: bool = False
) -> list[Policy]:
    """Unfitted policies, in config order. No config, or an empty or null
    ``policies:`` (as Rasa 3's ``rasa init`` writes), means the default config:
    with RulePolicy when the training data has ``rules``."""
    if not isinstance(config, dict | None):
        raise InvalidConfig(f"{source}: a policy config must be a mapping")
    items = (config or {}).get("policies", (config or {}).get("policy"))
    if not items:
        default = DEFAULT_RULES_POLICY_CONFIG if rules else DEFAULT_POLICY_CONFIG
        items = default["policies"]
    if not isinstance(items, list):
        raise InvalidConfig(
            f"{source}: 'policies' must be a non-empty list; valid names: "
            + ", ".join(sorted(POLICY_REGISTRY))
        )
    policies = [_build(item, f"{source}: policy {i}") for i, item in enumerate(items)]
    if rules and not any(isinstance(p, RulePolicy) for p in policies):
        raise InvalidConfig(
            f"{source}: the training data has rules, but no policy learns them; "
            "add '- name: RulePolicy' to 'policies'"
        )
    return policies


def read_policy_config(path: str | Path) -> dict[str, Any]:
    """The checked config mapping of a YAML file (building it validates every key)."""
    try:
        doc = read_yaml(path)
    except TrainingDataError as err:
        raise InvalidConfig(str(err)) from err
    config = doc.data
    policies_from_config(config, str(path))
    return config
