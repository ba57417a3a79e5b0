"""The domain: a bot's intents, entities, slots, templates and actions (ref. 4)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from dataclasses import field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from worker.errors import InvalidDomain
from worker.errors import UnknownAction
from worker.slots import Slot
from worker.slots import slot_from_spec
from worker.yamlfile import YamlDoc
from worker.yamlfile import read_yaml

ACTION_LISTEN = "action_listen"
ACTION_RESTART = "action_restart"
ACTION_DEFAULT_FALLBACK = "action_default_fallback"
ACTION_DEACTIVATE_FORM = "action_deactivate_form"
ACTION_BACK = "action_back"

#: The built-in actions, in the order of rasa_core 0.14.5; they come first in the
#: action list, so policy output indices match the original's.
DEFAULT_ACTIONS = (
    ACTION_LISTEN,
    ACTION_RESTART,
    ACTION_DEFAULT_FALLBACK,
    ACTION_DEACTIVATE_FORM,
    "action_revert_fallback_events",
    "action_default_ask_affirmation",
    "action_default_ask_rephrase",
    ACTION_BACK,
)
REQUESTED_SLOT = "requested_slot"
_TOP_KEYS = {
    "intents",
    "entities",
    "slots",
    "templates",
    "actions",
    "forms",
    "config",
    "action_names",
    "action_factory",
}


@dataclass(frozen=True)
class Intent:
    name: str
    use_entities: bool = True
    triggers: str | None = None


@dataclass(frozen=True)
class Domain:
    """Immutable description of a bot; every derived table is computed once."""

    intents: tuple[Intent, ...] = ()
    entities: tuple[str, ...] = ()
    slots: tuple[Slot, ...] = ()
    templates: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    user_actions: tuple[str, ...] = ()
    forms: tuple[str, ...] = ()
    store_entities_as_slots: bool = True

    # ---- derived tables -----------------------------------------------------------
    @cached_property
    def action_names(self) -> tuple[str, ...]:
        return DEFAULT_ACTIONS + self.user_actions + self.forms

    @cached_property
    def action_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.action_names)}

    @cached_property
    def intent_names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.intents)

    @cached_property
    def intent_by_name(self) -> dict[str, Intent]:
        return {i.name: i for i in self.intents}

    @cached_property
    def slot_by_name(self) -> dict[str, Slot]:
        return {s.name: s for s in self.slots}

    @cached_property
    def input_features(self) -> tuple[str, ...]:
        """Every state feature, in the order of the original's binary vectors."""
        names = [f"intent_{i}" for i in sorted(self.intent_names)]
        names += [f"entity_{e}" for e in self.entities]
        for slot in self.slots:
            names += [f"slot_{slot.name}_{i}" for i in range(slot.dims)]
        names += [f"prev_{a}" for a in self.action_names]
        names += [f"active_form_{f}" for f in self.forms]
        return tuple(names)

    @cached_property
    def feature_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.input_features)}

    @cached_property
    def fingerprint(self) -> str:
        blob = json.dumps(self.as_dict(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def index_of_action(self, name: str) -> int:
        try:
            return self.action_index[name]
        except KeyError:
            raise UnknownAction(f"action '{name}' is not in the domain") from None

    # ---- state featurisation -------------------------------------------------------
    def state(
        self,
        latest_message: dict[str, Any],
        slot_values: dict[str, Any],
        latest_action: str | None,
        active_form: str | None,
    ) -> dict[str, float]:
        """Rasa Core's featurised state, as ``feature name -> value``."""
        state: dict[str, float] = {}
        intent = (latest_message.get("intent") or {}).get("name")
        if intent:
            state[f"intent_{intent}"] = 1.0
            props = self.intent_by_name.get(intent)
            if props is None or props.use_entities:
                for ent in latest_message.get("entities") or ():
                    state[f"entity_{ent.get('entity')}"] = 1.0
        for slot in self.slots:
            for i, v in enumerate(slot.features(slot_values.get(slot.name))):
                if v:
                    state[f"slot_{slot.name}_{i}"] = v
        if latest_action is not None:
            state[f"prev_{latest_action}"] = 1.0
        if active_form:
            state[f"active_form_{active_form}"] = 1.0
        return state

    def auto_fill(self, entities: list[dict[str, Any]]) -> list[tuple[str, Any]]:
        """The slot values a message's entities set (Rasa Core 0.14, "Slots"): a list
        slot gets every value of its entity type, any other slot the last one."""
        if not self.store_entities_as_slots:
            return []
        filled = []
        for slot in self.slots:
            values = [e.get("value") for e in entities if e.get("entity") == slot.name]
            if slot.auto_fill and values:
                filled.append(
                    (slot.name, values if slot.type == "list" else values[-1])
                )
        return filled

    # ---- output ------------------------------------------------------------------
    def as_dict(self) -> dict[str, Any]:
        """``GET /domain``'s JSON (as Rasa Core 0.14); ``from_dict`` reads it back."""
        intents = []
        for intent in self.intents:
            props: dict[str, Any] = {"use_entities": intent.use_entities}
            if intent.triggers:
                props["triggers"] = intent.triggers
            intents.append({intent.name: props})
        return {
            "config": {"store_entities_as_slots": self.store_entities_as_slots},
            "intents": intents,
            "entities": list(self.entities),
            "slots": {s.name: s.as_dict() for s in self.slots},
            "templates": self.templates,
            "actions": list(self.user_actions),
            "forms": list(self.forms),
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.as_dict(), allow_unicode=True, sort_keys=False)

    # ---- input -------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> Domain:
        return _DomainReader(read_yaml(path)).domain()

    @classmethod
    def from_yaml(cls, text: str, path: str = "<domain>") -> Domain:
        return _DomainReader(YamlDoc(path, text)).domain()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Domain:
        return _DomainReader(YamlDoc("<domain>", json.dumps(data))).domain()


class _DomainReader:
    """Turns a parsed ``domain.yml`` into a Domain, naming the line of any mistake."""

    def __init__(self, doc: YamlDoc):
        self.doc = doc
        self.data = doc.data if doc.data is not None else {}

    def fail(self, message: str, *keys: Any) -> InvalidDomain:
        return InvalidDomain(message, self.doc.path, self.doc.line(*keys))

    def names(self, key: str) -> list[Any]:
        value = self.data.get(key) or []
        if not isinstance(value, list):
            raise self.fail(f"'{key}' must be a list", key)
        seen = set()
        for i, item in enumerate(value):
            name = (
                next(iter(item)) if isinstance(item, dict) and len(item) == 1 else item
            )
            if not isinstance(name, str) or not name:
                raise self.fail(f"'{key}' item {i} must be a name", key, i)
            if name in seen:
                raise self.fail(f"'{name}' is listed twice in '{key}'", key, i)
            seen.add(name)
        return value

    def domain(self) -> Domain:
        if not isinstance(self.data, dict):
            raise self.fail("a domain must be a mapping")
        unknown = sorted(set(self.data) - _TOP_KEYS)
        if unknown:
            raise self.fail(f"unknown top-level keys {unknown}", unknown[0])
        actions = [str(a) for a in self.names("actions")]
        forms = [str(f) for f in self.names("forms")]
        slots = self.slots(bool(forms))
        domain = Domain(
            intents=self.intents(),
            entities=tuple(self.names("entities")),
            slots=slots,
            templates=self.templates(),
            # NOTE: a default action listed again is dropped, as in the original.
            user_actions=tuple(a for a in actions if a not in DEFAULT_ACTIONS),
            forms=tuple(forms),
            store_entities_as_slots=self.config(),
        )
        for i, intent in enumerate(domain.intents):
            if intent.triggers and intent.triggers not in domain.action_index:
                raise self.fail(
                    f"intent '{intent.name}' triggers unknown action "
                    f"'{intent.triggers}'",
                    "intents",
                    i,
                )
        return domain

    def intents(self) -> tuple[Intent, ...]:
        out = []
        for i, item in enumerate(self.names("intents")):
            if isinstance(item, str):
                out.append(Intent(item))
                continue
            name, props = next(iter(item.items()))
            props = props or {}
            if not isinstance(props, dict) or set(props) - {"use_entities", "triggers"}:
                raise self.fail(
                    f"intent '{name}' accepts only 'use_entities' and 'triggers'",
                    "intents",
                    i,
                )
            use = props.get("use_entities", True)
            triggers = props.get("triggers")
            if not isinstance(use, bool) or not isinstance(triggers, str | None):
                raise self.fail(f"intent '{name}' has invalid properties", "intents", i)
            out.append(Intent(name, use, triggers))
        return tuple(out)

    def slots(self, has_forms: bool) -> tuple[Slot, ...]:
        raw = self.data.get("slots") or {}
        if not isinstance(raw, dict):
            raise self.fail("'slots' must be a mapping of name to slot", "slots")
        slots = []
        for name, spec in raw.items():
            try:
                slots.append(slot_from_spec(str(name), spec))
            except InvalidDomain as err:
                raise self.fail(err.reason, "slots", name) from err
        if has_forms and REQUESTED_SLOT not in raw:
            slots.append(Slot(REQUESTED_SLOT, "unfeaturized"))
        return tuple(sorted(slots, key=lambda s: s.name))

    def templates(self) -> dict[str, list[dict[str, Any]]]:
        raw = self.data.get("templates") or {}
        if not isinstance(raw, dict):
            raise self.fail("'templates' must be a mapping", "templates")
        out: dict[str, list[dict[str, Any]]] = {}
        for name, variations in raw.items():
            if not isinstance(variations, list) or not variations:
                raise self.fail(
                    f"template '{name}' needs a list of variations", "templates", name
                )
            items = []
            for v in variations:
                if isinstance(v, str):
                    items.append({"text": v})
                elif isinstance(v, dict) and isinstance(v.get("text"), str):
                    items.append(dict(v))
                else:
                    raise self.fail(
                        f"template '{name}': each variation is a string or has 'text'",
                        "templates",
                        name,
                    )
            out[str(name)] = items
        return out

    def config(self) -> bool:
        raw = self.data.get("config") or {}
        if not isinstance(raw, dict):
            raise self.fail("'config' must be a mapping", "config")
        value = raw.get("store_entities_as_slots", True)
        if not isinstance(value, bool):
            raise self.fail("store_entities_as_slots must be true or false", "config")
        return value
