"""``dialogd data validate``: is the domain consistent with the training data?

The checks of ``rasa data validate``, errors and warnings as Rasa has them: an
error is something training refuses or a bot cannot do (an intent, action, form or
slot the data uses but the domain lacks, an utterance without a response, stories
and rules that disagree); a warning is something unused or doubtful (a domain
intent no example or story has, a response never used, one text under two
intents). The story files are read raw, name by name, so that every unknown name
is reported at once rather than the first one stopping the reader.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from worker.domain import DEFAULT_INTENTS
from worker.domain import Domain
from worker.errors import DialogdError
from worker.model import CoreModel
from worker.nlu import load_nlu_data
from worker.policies.featurizer import dialogue_examples
from worker.training.files import read_stories
from worker.training.generator import generate_dialogues
from worker.training.stories import parse_stories
from worker.training.yaml_stories import has_story_sections
from worker.yamlfile import read_yaml

#: Rasa's default ``max_history`` for its story structure check.
MAX_HISTORY = 5
ERROR, WARNING = "error", "warning"


@dataclass(frozen=True, order=True)
class Issue:
    level: str
    message: str


@dataclass
class _Used:
    """Names the stories and rules use (read raw), and where."""

    intents: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    actions: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    slots: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    loops: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))


def validate(
    domain_path: str | Path,
    data_path: str | Path,
    *,
    max_history: int = MAX_HISTORY,
) -> list[Issue]:
    """Every problem found, errors first. A file that cannot be read at all (bad
    YAML, a domain Rasa would refuse) raises instead, as training would."""
    domain = Domain.load(domain_path)
    nlu = load_nlu_data(data_path, lookup_files=True)
    used = _Used()
    issues: list[Issue] = []
    for file in _story_files(Path(data_path)):
        issues += _scan(file, domain, used)
    issues += _check_intents(domain, nlu.intents, used)
    issues += _check_examples(nlu.examples)
    issues += _check_actions(domain, used)
    issues += _check_slots(domain, used)
    if not any(i.level == ERROR for i in issues):
        issues += _check_structure(domain, data_path, max_history)
    return sorted(issues)


def _story_files(root: Path) -> list[Path]:
    files = sorted(p for p in root.rglob("*")) if root.is_dir() else [root]
    return [p for p in files if p.is_file() and p.suffix in (".md", ".yml", ".yaml")]


def _scan(file: Path, domain: Domain, used: _Used) -> list[Issue]:
    text = file.read_text(encoding="utf-8")
    if file.suffix == ".md":
        if "## intent:" in text or not text.lstrip().startswith("##"):
            return []
        try:
            parse_stories(text, domain, str(file))
        except DialogdError as err:
            return [Issue(ERROR, str(err))]
        return []
    if not has_story_sections(text):
        return []
    data = read_yaml(file).data or {}
    for section in ("stories", "rules"):
        for item in data.get(section) or ():
            if not isinstance(item, dict):
                continue
            name = f"{file}: {item.get('story') or item.get('rule')}"
            for step in _steps([*(item.get("condition") or ()), *item["steps"]]):
                _note(step, name, used)
    return []


def _steps(steps: Any) -> Iterator[dict[str, Any]]:
    """Every step, ``or`` alternatives included."""
    for step in steps or ():
        if not isinstance(step, dict):
            continue
        if isinstance(step.get("or"), list):
            yield from _steps(step["or"])
        else:
            yield step


def _note(step: dict[str, Any], where: str, used: _Used) -> None:
    if "intent" in step:
        used.intents[str(step["intent"])].add(where)
    if "action" in step:
        used.actions[str(step["action"])].add(where)
    if step.get("active_loop") is not None:
        used.loops[str(step["active_loop"])].add(where)
    slots = step.get("slot_was_set") or ()
    for slot in slots if isinstance(slots, list) else ():
        for name in slot if isinstance(slot, dict) else [slot]:
            used.slots[str(name)].add(where)


def _first(places: set[str]) -> str:
    return sorted(places)[0] + (
        f" and {len(places) - 1} more" if len(places) > 1 else ""
    )


def _check_intents(domain: Domain, nlu_intents: list[str], used: _Used) -> list[Issue]:
    issues = []
    declared = set(domain.intent_names)
    # NOTE: Rasa 2+'s default intents need neither examples nor stories.
    optional = declared & set(DEFAULT_INTENTS)
    for intent in sorted(set(nlu_intents) - declared):
        issues.append(
            Issue(ERROR, f"intent '{intent}' has NLU examples but is not in the domain")
        )
    for intent in sorted(declared - set(nlu_intents) - optional):
        issues.append(
            Issue(
                WARNING, f"intent '{intent}' is in the domain but has no NLU examples"
            )
        )
    for intent, places in sorted(used.intents.items()):
        if intent not in declared:
            issues.append(
                Issue(
                    ERROR,
                    f"intent '{intent}' is used in {_first(places)} but is not "
                    "in the domain",
                )
            )
    for intent in sorted(declared - set(used.intents) - optional):
        issues.append(
            Issue(WARNING, f"intent '{intent}' is not used in any story or rule")
        )
    return issues


def _check_examples(examples: Any) -> list[Issue]:
    intents: dict[str, set[str]] = defaultdict(set)
    for example in examples:
        if example.intent is not None:
            intents[example.text.strip()].add(example.intent)
    return [
        Issue(
            WARNING,
            f"the example {text!r} is listed under several intents: "
            f"{', '.join(sorted(names))}",
        )
        for text, names in sorted(intents.items())
        if len(names) > 1
    ]


def _check_actions(domain: Domain, used: _Used) -> list[Issue]:
    issues = []
    known = set(domain.action_names)
    for action, places in sorted(used.actions.items()):
        if action.startswith("utter_") and action not in domain.templates:
            issues.append(
                Issue(
                    ERROR,
                    f"'{action}' is used in {_first(places)} but the domain has "
                    "no response for it",
                )
            )
        elif action not in known:
            issues.append(
                Issue(
                    ERROR,
                    f"action '{action}' is used in {_first(places)} but is not in "
                    "the domain",
                )
            )
    for loop, places in sorted(used.loops.items()):
        if loop not in domain.forms:
            issues.append(
                Issue(
                    ERROR,
                    f"form '{loop}' is used in {_first(places)} but is not in the "
                    "domain",
                )
            )
    for action in domain.user_actions:
        if action.startswith("utter_") and action not in domain.templates:
            issues.append(
                Issue(WARNING, f"action '{action}' is an utterance without a response")
            )
    asked = {
        name
        for form, spec in domain.form_specs.items()
        for slot in spec.required_slots
        for name in (f"utter_ask_{slot}", f"utter_ask_{form}_{slot}")
    }
    for name in sorted(set(domain.templates) - set(used.actions) - asked):
        issues.append(
            Issue(WARNING, f"response '{name}' is not used in any story or rule")
        )
    return issues


def _check_slots(domain: Domain, used: _Used) -> list[Issue]:
    issues = []
    for name, places in sorted(used.slots.items()):
        if name not in domain.slot_by_name:
            issues.append(
                Issue(
                    ERROR,
                    f"slot '{name}' is set in {_first(places)} but is not in the "
                    "domain",
                )
            )
    for slot in domain.slots:
        for mapping in slot.mappings:
            entity = mapping.get("entity")
            if mapping.get("type") == "from_entity" and entity not in domain.entities:
                issues.append(
                    Issue(
                        ERROR,
                        f"slot '{slot.name}' is filled from entity '{entity}', "
                        "which is not in the domain",
                    )
                )
            for key in ("intent", "not_intent"):
                names = mapping.get(key) or ()
                for intent in [names] if isinstance(names, str) else names:
                    if intent not in domain.intent_by_name:
                        issues.append(
                            Issue(
                                ERROR,
                                f"slot '{slot.name}' maps intent '{intent}', "
                                "which is not in the domain",
                            )
                        )
    return issues


def _check_structure(
    domain: Domain, data_path: str | Path, max_history: int
) -> list[Issue]:
    """Stories that take different actions after the same ``max_history`` states
    (Rasa's story structure check), and rules that contradict each other or a
    story (the RulePolicy's own check, as training would run it)."""
    steps = read_stories(data_path, domain)
    issues = []
    try:
        CoreModel.from_steps(
            domain, steps, {"policies": [{"name": "RulePolicy"}]}, augmentation_factor=0
        )
    except DialogdError as err:
        issues.append(Issue(ERROR, str(err)))
    seen: dict[str, tuple[str, str]] = {}
    conflicts: set[str] = set()
    for dialogue in generate_dialogues(steps, domain, augmentation_factor=0):
        if dialogue.rule is not None:
            continue
        for window, action in dialogue_examples(dialogue, domain, max_history):
            key = json.dumps(window, sort_keys=True, default=str)
            name = domain.action_names[action]
            known = seen.setdefault(key, (name, dialogue.name or "story"))
            if known[0] != name:
                conflicts.add(
                    f"stories '{known[1]}' and '{dialogue.name}' take "
                    f"'{known[0]}' and '{name}' after the same {max_history} turns"
                )
    issues += [Issue(ERROR, c) for c in sorted(conflicts)]
    return issues
