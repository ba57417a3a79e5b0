"""The trained dialogue model: train from stories, save to and load from a directory.

Layout: ``domain.yml``, ``metadata.json`` (versions, fingerprint, policy classes,
params and JSON-able learned state) and ``policies.npz`` (every policy's arrays,
keyed ``policy_<i>.<name>``). No pickle anywhere: loading a model never runs code.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from worker.domain import ACTION_RESTART
from worker.domain import Domain
from worker.errors import DialogdError
from worker.errors import ModelError
from worker.policies.config import DEFAULT_POLICY_CONFIG
from worker.policies.config import DEFAULT_RULES_POLICY_CONFIG
from worker.policies.config import POLICY_REGISTRY
from worker.policies.config import policies_from_config
from worker.policies.ensemble import PolicyEnsemble
from worker.policies.ensemble import Prediction
from worker.tracker import Tracker
from worker.training.files import read_stories
from worker.training.generator import TrainingDialogue
from worker.training.generator import generate_dialogues
from worker.training.generator import rule_dialogues
from worker.training.stories import StoryStep
from worker.version import __version__

RESTART_INTENT = "restart"

FORMAT_VERSION = 1
DOMAIN_FILE = "domain.yml"
METADATA_FILE = "metadata.json"
ARRAYS_FILE = "policies.npz"

#: Called as ``progress(stage, done, total)`` while training.
Progress = Callable[[str, int, int], None]


def _story_files(path: Path) -> list[Path]:
    if not path.is_dir():
        return [path]
    return sorted(p for p in path.rglob("*") if p.suffix in (".md", ".yml", ".yaml"))


def default_policy_config(steps: Sequence[StoryStep]) -> dict[str, Any]:
    """The policies of a config that names none: with RulePolicy when the training
    data has rules (as Rasa 3's defaults), else rasa_core 0.14's."""
    if any(s.rule is not None for s in steps):
        return DEFAULT_RULES_POLICY_CONFIG
    return DEFAULT_POLICY_CONFIG


def training_fingerprint(
    domain: Domain, story_path: Path, config: dict[str, Any], factor: int, seed: int
) -> str:
    """Changes whenever anything that shapes the trained model changes."""
    digest = hashlib.sha256()
    head = [domain.fingerprint, config, factor, seed, __version__]
    digest.update(json.dumps(head, sort_keys=True, default=str).encode())
    for file in _story_files(story_path):
        if file.is_file():
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def _write(path: Path, data: bytes) -> None:
    """Write then rename, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@dataclass
class CoreModel:
    """A domain and a fitted policy ensemble, with what produced them."""

    domain: Domain
    ensemble: PolicyEnsemble
    fingerprint: str
    trained_at: str
    config: dict[str, Any]

    @property
    def max_history(self) -> int:
        return self.ensemble.max_history

    def predict(self, tracker: Tracker) -> Prediction:
        return self.ensemble.predict(tracker)

    def next_action(self, tracker: Tracker) -> Prediction:
        """The action the server answers next: a pending followup action, then
        ``action_restart`` for an unanswered ``restart`` intent (the processor rule
        of 0.8-0.14.0a3), then the policies. Serving and evaluation both ask here."""
        if tracker.followup_action:
            return self._forced(tracker.followup_action)
        if tracker.latest_intent == RESTART_INTENT and tracker.unanswered:
            return self._forced(ACTION_RESTART)
        return self.ensemble.predict(tracker)

    def _forced(self, action: str) -> Prediction:
        scores = np.zeros(len(self.domain.action_names))
        if action in self.domain.action_index:
            scores[self.domain.action_index[action]] = 1.0
        return Prediction(
            probabilities=scores, action=action, confidence=1.0, policy=None
        )

    @classmethod
    def train(
        cls,
        domain: Domain,
        story_path: str | Path,
        config: dict[str, Any] | None = None,
        *,
        augmentation_factor: int = 20,
        seed: int = 42,
        progress: Progress | None = None,
        validation: Sequence[TrainingDialogue] | None = None,
    ) -> CoreModel:
        """Read the stories, generate dialogues and fit every configured policy."""
        path = Path(story_path)
        if config is not None:
            policies_from_config(config)  # a bad config fails before the stories
        steps = read_stories(path, domain)
        config = config if config is not None else default_policy_config(steps)
        return cls.from_steps(
            domain,
            steps,
            config,
            augmentation_factor=augmentation_factor,
            seed=seed,
            progress=progress,
            validation=validation,
            fingerprint=training_fingerprint(
                domain, path, config, augmentation_factor, seed
            ),
        )

    @classmethod
    def from_steps(
        cls,
        domain: Domain,
        steps: Sequence[StoryStep],
        config: dict[str, Any] | None = None,
        *,
        augmentation_factor: int = 20,
        seed: int = 42,
        progress: Progress | None = None,
        validation: Sequence[TrainingDialogue] | None = None,
        fingerprint: str = "",
    ) -> CoreModel:
        """The one way a Core model is trained (``dialogd train``, the trainer, the
        learning curves): dialogues generated from story steps, every policy fit;
        rules (Rasa 2+) train the rule policy only."""
        config = config if config is not None else default_policy_config(steps)
        policies = policies_from_config(
            config, rules=any(s.rule is not None for s in steps)
        )
        if progress is not None:
            progress("stories", len(steps), len(steps))
        dialogues = generate_dialogues(
            steps, domain, augmentation_factor=augmentation_factor, seed=seed
        ) + rule_dialogues(steps, domain)
        if progress is not None:
            progress("dialogues", len(dialogues), len(dialogues))
        ensemble = PolicyEnsemble(policies).fit(
            dialogues, domain, progress, validation=validation
        )
        return cls(
            domain=domain,
            ensemble=ensemble,
            fingerprint=fingerprint,
            trained_at=time.strftime("%Y%m%d-%H%M%S", time.gmtime()),
            config=config,
        )

    # ---- persistence -------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the model directory (created if needed); returns its path."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {}  # np.savez takes them as keywords
        policies = []
        for i, (name, policy) in enumerate(
            zip(self.ensemble.names, self.ensemble.policies, strict=True)
        ):
            for key, value in policy.to_arrays().items():
                arrays[f"policy_{i}.{key}"] = np.asarray(value)
            policies.append(
                {
                    "name": name,
                    "class": type(policy).__name__,
                    "params": policy.get_params(),
                    "learned": policy.learned_metadata(),
                }
            )
        metadata = {
            "format_version": FORMAT_VERSION,
            "dialogd": __version__,
            "fingerprint": self.fingerprint,
            "trained_at": self.trained_at,
            "domain_fingerprint": self.domain.fingerprint,
            "max_history": self.max_history,
            "config": self.config,
            "policies": policies,
        }
        _write(out / DOMAIN_FILE, self.domain.to_yaml().encode())
        tmp = out / (ARRAYS_FILE + ".tmp")
        with tmp.open("wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, out / ARRAYS_FILE)
        text = json.dumps(metadata, indent=2, sort_keys=True, ensure_ascii=False)
        _write(out / METADATA_FILE, text.encode())
        return out

    @classmethod
    def load(cls, directory: str | Path) -> CoreModel:
        """Read a model directory; missing, foreign or corrupt parts are ModelError."""
        root = Path(directory)
        if not root.is_dir():
            raise ModelError(f"model directory {str(root)!r} not found")
        meta = _read_metadata(root / METADATA_FILE)
        try:
            domain = Domain.load(root / DOMAIN_FILE)
        except DialogdError as err:
            raise ModelError(f"model domain cannot be read: {err}") from err
        if domain.fingerprint != meta.get("domain_fingerprint"):
            raise ModelError(f"{root / DOMAIN_FILE} does not match the trained model")
        arrays = _read_arrays(root / ARRAYS_FILE)
        policies = []
        for i, entry in enumerate(meta["policies"]):
            prefix = f"policy_{i}."
            own = {
                k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)
            }
            try:
                cls_ = POLICY_REGISTRY[entry["class"]]
                policies.append(
                    cls_.from_arrays(entry["params"], own, entry["learned"])
                )
            except (KeyError, TypeError, ValueError) as err:
                raise ModelError(
                    f"policy {i} in {root} cannot be loaded: {err!r}"
                ) from err
        return cls(
            domain=domain,
            ensemble=PolicyEnsemble(policies),
            fingerprint=meta["fingerprint"],
            trained_at=meta["trained_at"],
            config=meta["config"],
        )


def _read_metadata(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path} is missing: not a dialogd model directory") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelError(f"{path} is corrupt: {err}") from err
    if not isinstance(meta, dict):
        raise ModelError(f"{path} is corrupt: not a JSON object")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelError(
            f"{path}: model format version {version!r} (dialogd "
            f"{meta.get('dialogd')!r}); this dialogd {__version__} reads version "
            f"{FORMAT_VERSION}: retrain the model"
        )
    required = ("fingerprint", "trained_at", "config", "policies")
    missing = [k for k in required if k not in meta]
    if missing or not isinstance(meta["policies"], list):
        raise ModelError(f"{path} is corrupt: missing {missing or ['policies']}")
    return meta


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except FileNotFoundError:
        raise ModelError(f"{path} is missing: the model is incomplete") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ModelError(f"{path} is corrupt: {err}") from err
