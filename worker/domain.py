"""The domain: a bot's intents, entities, slots, responses, forms and actions.

Read from rasa_core 0.x ``domain.yml`` files and from Rasa 2.x/3.x domains
(``version``, ``responses``, slot ``mappings``, ``forms`` with ``required_slots``,
``session_config``), in one file or split over a folder, merged as Rasa merges them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Any

from worker.errors import InvalidDomain
from worker.errors import UnknownAction
from worker.slots import Slot
from worker.slots import slot_from_spec
from worker.yamlfile import YamlDoc
from worker.yamlfile import dump_yaml
from worker.yamlfile import read_yaml

ACTION_LISTEN = "action_listen"
ACTION_RESTART = "action_restart"
ACTION_DEFAULT_FALLBACK = "action_default_fallback"
ACTION_DEACTIVATE_FORM = "action_deactivate_form"
ACTION_BACK = "action_back"
ACTION_SESSION_START = "action_session_start"

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
#: Rasa 2+'s built-in actions beyond 0.x's (after ``action_session_start``): a rule
#: may name them without the domain listing them.
RASA2_DEFAULT_ACTIONS = (
    "action_deactivate_loop",
    "action_two_stage_fallback",
    "action_unlikely_intent",
    "action_extract_slots",
)
REQUESTED_SLOT = "requested_slot"
#: Intents every Rasa 2+ domain has, listed or not (Rasa 3's DEFAULT_INTENTS): a
#: rule may name ``nlu_fallback`` (FallbackClassifier's intent) without listing it.
DEFAULT_INTENTS = ("restart", "back", "out_of_scope", "session_start", "nlu_fallback")
_TOP_KEYS = {
    "version",
    "responses",
    "session_config",
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
    """``use_entities`` is all (True), none (False) or the listed entity names;
    ``ignore_entities`` is subtracted from it (Rasa 2+)."""

    name: str
    use_entities: bool | tuple[str, ...] = True
    triggers: str | None = None
    ignore_entities: tuple[str, ...] = ()

    def uses(self, entity: Any) -> bool:
        if entity in self.ignore_entities:
            return False
        if isinstance(self.use_entities, bool):
            return self.use_entities
        return entity in self.use_entities


@dataclass(frozen=True)
class SessionConfig:
    """Rasa 2+'s ``session_config``: minutes of silence that start a new session
    (0: never) and whether slots carry over into it."""

    session_expiration_time: float = 60.0
    carry_over_slots_to_new_session: bool = True


@dataclass(frozen=True)
class FormSpec:
    """A form's ``required_slots`` (asked in order) and ``ignored_intents``."""

    required_slots: tuple[str, ...] = ()
    ignored_intents: tuple[str, ...] = ()


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
    form_specs: dict[str, FormSpec] = field(default_factory=dict)
    session_config: SessionConfig | None = None
    entity_properties: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    # ---- derived tables -----------------------------------------------------------
    @cached_property
    def action_names(self) -> tuple[str, ...]:
        """Defaults, then the domain's actions and forms. ``action_session_start``
        and Rasa 2+'s other built-ins only with a ``session_config`` (every Rasa 2+
        domain has one): the action list of a 0.x domain, and so its models' output
        indices, stay as they were."""
        defaults: tuple[str, ...] = DEFAULT_ACTIONS
        if self.session_config is not None:
            defaults += (ACTION_SESSION_START, *RASA2_DEFAULT_ACTIONS)
        return defaults + self.user_actions + self.forms

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
    def retrieval_intents(self) -> frozenset[str]:
        """Intents with responses per key (``utter_faq/ask_name``): each has a
        retrieval action (``utter_faq``) that says the key the NLU chose."""
        return frozenset(
            name.removeprefix("utter_").split("/")[0]
            for name in self.templates
            if name.startswith("utter_") and "/" in name
        )

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
            for ent in latest_message.get("entities") or ():
                name = ent.get("entity")
                if props is None or props.uses(name):
                    state[f"entity_{name}"] = 1.0
        for slot in self.slots:
            for i, v in enumerate(slot.features(slot_values.get(slot.name))):
                if v:
                    state[f"slot_{slot.name}_{i}"] = v
        if latest_action is not None:
            state[f"prev_{latest_action}"] = 1.0
        if active_form:
            state[f"active_form_{active_form}"] = 1.0
        return state

    def auto_fill(
        self,
        entities: list[dict[str, Any]],
        intent: str | None = None,
        active_loop: str | None = None,
        requested_slot: str | None = None,
        text: str | None = None,
    ) -> list[tuple[str, Any]]:
        """The slot values a user message sets: a Rasa 2+ slot's ``mappings``
        (``from_entity``, ``from_intent``, ``from_text``; with their intent, role,
        group and condition filters; the first mapping that finds a value wins, as
        in Rasa), or a 0.x slot's auto-fill from the entity of its name. A list
        slot gets every value of that mapping, any other slot the last one."""
        filled = []
        for slot in self.slots:
            if slot.mappings:
                found = next(
                    (
                        values
                        for m in slot.mappings
                        if (
                            values := _mapping_values(
                                m, entities, intent, active_loop, requested_slot, text
                            )
                        )
                    ),
                    [],
                )
            elif self.store_entities_as_slots and slot.auto_fill:
                found = [
                    e.get("value") for e in entities if e.get("entity") == slot.name
                ]
            else:
                continue
            if found:
                filled.append((slot.name, found if slot.type == "list" else found[-1]))
        return filled

    # ---- output ------------------------------------------------------------------
    def as_dict(self) -> dict[str, Any]:
        """``GET /domain``'s JSON (as Rasa Core 0.14); ``from_dict`` reads it back."""
        intents = []
        for intent in self.intents:
            use = intent.use_entities
            props: dict[str, Any] = {
                "use_entities": use if isinstance(use, bool) else list(use)
            }
            if intent.ignore_entities:
                props["ignore_entities"] = list(intent.ignore_entities)
            if intent.triggers:
                props["triggers"] = intent.triggers
            intents.append({intent.name: props})
        out: dict[str, Any] = {
            "config": {"store_entities_as_slots": self.store_entities_as_slots},
            "intents": intents,
            "entities": [
                {e: self.entity_properties[e]} if e in self.entity_properties else e
                for e in self.entities
            ],
            "slots": {s.name: s.as_dict() for s in self.slots},
            "templates": self.templates,
            "actions": list(self.user_actions),
            "forms": list(self.forms),
        }
        # NOTE: Rasa 2+ parts only when set, so a 0.x domain's JSON and fingerprint
        # stay what they were.
        if self.form_specs:
            out["forms"] = {
                name: {
                    "required_slots": list(spec.required_slots),
                    **(
                        {"ignored_intents": list(spec.ignored_intents)}
                        if spec.ignored_intents
                        else {}
                    ),
                }
                for name, spec in self.form_specs.items()
            }
        if self.session_config is not None:
            out["session_config"] = {
                "session_expiration_time": self.session_config.session_expiration_time,
                "carry_over_slots_to_new_session": (
                    self.session_config.carry_over_slots_to_new_session
                ),
            }
        return out

    def to_yaml(self) -> str:
        return dump_yaml(self.as_dict())

    def with_responses(
        self, responses: dict[str, Any], source: str = "<data>"
    ) -> Domain:
        """This domain and the responses of data files (Rasa 2+ keeps retrieval
        intents' answers there), with their retrieval actions; a response defined
        in both is an error, as in the domain itself."""
        if not responses:
            return self
        reader = _DomainReader(YamlDoc(source, json.dumps({"responses": responses})))
        extra = reader.templates()
        twice = sorted(set(extra) & set(self.templates))
        if twice:
            raise InvalidDomain(
                f"responses {twice} are defined in the domain and in the data", source
            )
        templates = {**self.templates, **extra}
        actions = self.user_actions + _retrieval_actions(templates, self.user_actions)
        return replace(self, templates=templates, user_actions=actions)

    # ---- input -------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> Domain:
        """A ``domain.yml``, or a folder of domain files (Rasa 2+)."""
        return _DomainReader(load_domain_doc(path)).domain()

    @classmethod
    def from_yaml(cls, text: str, path: str = "<domain>") -> Domain:
        return _DomainReader(YamlDoc(path, text)).domain()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Domain:
        return _DomainReader(YamlDoc("<domain>", json.dumps(data))).domain()


class _DomainReader:
    """Turns a parsed domain into a Domain, naming the file and line of any mistake."""

    def __init__(self, doc: YamlDoc | _MergedDoc):
        self.doc = doc
        self.data = doc.data if doc.data is not None else {}

    def fail(self, message: str, *keys: Any) -> InvalidDomain:
        path, line = self.doc.where(*keys)
        return InvalidDomain(message, path, line)

    def names(self, key: str) -> list[Any]:
        value = self.data.get(key) or []
        if not isinstance(value, list):
            raise self.fail(f"'{key}' must be a list", key)
        seen = set()
        for i, item in enumerate(value):
            name = _item_name(item)
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
        self.version()
        actions = [str(_item_name(a)) for a in self.names("actions")]
        forms = self.forms()
        templates = self.templates()
        session = self.session_config()
        rasa2 = "responses" in self.data or self.major_version() >= 2
        if rasa2 and session is None:
            # NOTE: as Rasa 2+: a domain without session_config has the default one.
            session = SessionConfig()
        if rasa2:
            # NOTE: from Rasa 2 on a response is its own action, listed or not.
            actions += [
                name
                for name in templates
                if name.startswith("utter_") and "/" not in name and name not in actions
            ]
            actions += _retrieval_actions(templates, actions)
        domain = Domain(
            intents=self.intents(default=DEFAULT_INTENTS if rasa2 else ()),
            entities=tuple(_item_name(e) for e in self.names("entities")),
            slots=self.slots(forms),
            templates=templates,
            # NOTE: a default action listed again is dropped, as in the original.
            user_actions=tuple(
                a
                for a in actions
                if a not in DEFAULT_ACTIONS
                and not (
                    session is not None
                    and (a == ACTION_SESSION_START or a in RASA2_DEFAULT_ACTIONS)
                )
            ),
            forms=tuple(forms),
            store_entities_as_slots=self.config(),
            form_specs={k: v for k, v in forms.items() if v is not None},
            session_config=session,
            entity_properties=self.entity_properties(),
        )
        for i, intent in enumerate(domain.intents):
            if intent.triggers and intent.triggers not in domain.action_index:
                raise self.fail(
                    f"intent '{intent.name}' triggers unknown action "
                    f"'{intent.triggers}'",
                    "intents",
                    i,
                )
        for name, spec in domain.form_specs.items():
            missing = [s for s in spec.required_slots if s not in domain.slot_by_name]
            if missing:
                raise self.fail(
                    f"form '{name}' requires undeclared slots {missing}", "forms", name
                )
        return domain

    def version(self) -> None:
        version = self.data.get("version")
        if version is not None and not isinstance(version, str):
            raise self.fail('"version" must be a string such as "3.1"', "version")

    def intents(self, default: tuple[str, ...] = ()) -> tuple[Intent, ...]:
        """The listed intents, then the ``default`` ones not listed."""
        out = []
        for i, item in enumerate(self.names("intents")):
            if isinstance(item, str):
                out.append(Intent(item))
                continue
            name, props = next(iter(item.items()))
            props = props or {}
            # NOTE: is_retrieval_intent (Rasa's domain dumps) follows from the
            # responses, so it is accepted and not read.
            allowed = {"use_entities", "ignore_entities", "triggers"}
            allowed |= {"is_retrieval_intent"}
            if not isinstance(props, dict) or set(props) - allowed:
                raise self.fail(
                    f"intent '{name}' accepts only {sorted(allowed)}", "intents", i
                )
            use = props.get("use_entities", True)
            ignore = props.get("ignore_entities", [])
            triggers = props.get("triggers")
            ok = (
                (isinstance(use, bool) or _is_names(use))
                and _is_names(ignore)
                and isinstance(triggers, str | None)
            )
            if not ok:
                raise self.fail(f"intent '{name}' has invalid properties", "intents", i)
            out.append(
                Intent(
                    name,
                    use if isinstance(use, bool) else tuple(use),
                    triggers,
                    tuple(ignore),
                )
            )
        listed = {intent.name for intent in out}
        out += [Intent(name) for name in default if name not in listed]
        return tuple(out)

    def entity_properties(self) -> dict[str, dict[str, list[str]]]:
        out = {}
        for i, item in enumerate(self.names("entities")):
            if isinstance(item, str):
                continue
            name, props = next(iter(item.items()))
            props = props or {}
            if (
                not isinstance(props, dict)
                or set(props) - {"roles", "groups"}
                or not all(_is_names(v) for v in props.values())
            ):
                raise self.fail(
                    f"entity '{name}' accepts only lists of 'roles' and 'groups'",
                    "entities",
                    i,
                )
            if props:
                out[name] = {k: list(v) for k, v in props.items()}
        return out

    def forms(self) -> dict[str, FormSpec | None]:
        """0.x: a list of names. Rasa 2/3: name -> ``required_slots`` (a list, or
        2.x's slot -> mappings) and ``ignored_intents``."""
        raw = self.data.get("forms")
        if raw is None or isinstance(raw, list):
            return {str(_item_name(f)): None for f in self.names("forms")}
        if not isinstance(raw, dict):
            raise self.fail("'forms' must be a list or a mapping", "forms")
        out: dict[str, FormSpec | None] = {}
        self.form_mappings: dict[str, list[dict[str, Any]]] = {}
        for name, spec in raw.items():
            spec = spec or {}
            if isinstance(spec, dict) and all(
                k not in _FORM_KEYS and isinstance(v, list) for k, v in spec.items()
            ):
                # NOTE: Rasa 2.0's first form format: slot -> mappings, unwrapped.
                spec = {"required_slots": spec} if spec else {}
            if not isinstance(spec, dict) or set(spec) - _FORM_KEYS:
                raise self.fail(
                    f"form '{name}' takes 'required_slots' and 'ignored_intents'",
                    "forms",
                    name,
                )
            required = spec.get("required_slots") or []
            if isinstance(required, dict):  # Rasa 2.x: slot -> its mappings
                for slot, mappings in required.items():
                    if not isinstance(mappings, list):
                        raise self.fail(
                            f"form '{name}': slot '{slot}' needs a list of mappings",
                            "forms",
                            name,
                        )
                    for mapping in mappings:
                        if isinstance(mapping, dict):
                            # NOTE: as Rasa 2's forms: a slot the form is not
                            # asking for is filled from entities only.
                            condition = {"active_loop": name}
                            if mapping.get("type") != "from_entity":
                                condition["requested_slot"] = str(slot)
                            mapping = {**mapping, "conditions": [condition]}
                        self.form_mappings.setdefault(str(slot), []).append(mapping)
                required = list(required)
            ignored = spec.get("ignored_intents") or []
            if isinstance(ignored, str):
                ignored = [ignored]
            if not _is_names(required) or not _is_names(ignored):
                raise self.fail(
                    f"form '{name}': required_slots and ignored_intents list names",
                    "forms",
                    name,
                )
            out[str(name)] = FormSpec(tuple(required), tuple(ignored))
        return out

    def slots(self, forms: dict[str, FormSpec | None]) -> tuple[Slot, ...]:
        raw = self.data.get("slots") or {}
        if not isinstance(raw, dict):
            raise self.fail("'slots' must be a mapping of name to slot", "slots")
        extra = getattr(self, "form_mappings", {})
        v3 = self.major_version() >= 3
        slots = []
        for name, spec in raw.items():
            if isinstance(spec, dict) and (str(name) in extra or v3):
                spec = dict(spec)
                spec["mappings"] = [
                    *(spec.get("mappings") or []),
                    *extra.get(str(name), []),
                ]
                # NOTE: Rasa 3 fills slots only through their mappings.
                spec.setdefault("auto_fill", not v3)
            try:
                slots.append(slot_from_spec(str(name), spec))
            except InvalidDomain as err:
                raise self.fail(err.reason, "slots", name) from err
        undeclared = sorted(set(extra) - {str(n) for n in raw})
        if undeclared:
            raise self.fail(
                f"forms map undeclared slots {undeclared}; declare them in 'slots'",
                "forms",
            )
        if forms and REQUESTED_SLOT not in raw:
            slots.append(Slot(REQUESTED_SLOT, "unfeaturized", influence=False))
        return tuple(sorted(slots, key=lambda s: s.name))

    def major_version(self) -> int:
        version = self.data.get("version")
        try:
            return int(str(version).split(".")[0]) if version is not None else 0
        except ValueError:
            return 0

    def templates(self) -> dict[str, list[dict[str, Any]]]:
        """0.x ``templates`` and Rasa 2+ ``responses``: one table."""
        out: dict[str, list[dict[str, Any]]] = {}
        for key in ("templates", "responses"):
            raw = self.data.get(key) or {}
            if not isinstance(raw, dict):
                raise self.fail(f"'{key}' must be a mapping", key)
            for name, variations in raw.items():
                if str(name) in out:
                    raise self.fail(f"response '{name}' is defined twice", key, name)
                out[str(name)] = self.variations(key, str(name), variations)
        return out

    def variations(self, key: str, name: str, raw: Any) -> list[dict[str, Any]]:
        if not isinstance(raw, list) or not raw:
            raise self.fail(f"response '{name}' needs a list of variations", key, name)
        items = []
        for v in raw:
            if isinstance(v, str):
                v = {"text": v}
            if not isinstance(v, dict) or not set(v) & _RESPONSE_CONTENT:
                raise self.fail(
                    f"response '{name}': each variation is a string or a mapping "
                    f"with one of {sorted(_RESPONSE_CONTENT)}",
                    key,
                    name,
                )
            unknown = set(v) - _RESPONSE_KEYS
            if unknown:
                raise self.fail(
                    f"response '{name}': unknown keys {sorted(unknown)}", key, name
                )
            problem = _variation_problem(v)
            if problem:
                raise self.fail(f"response '{name}': {problem}", key, name)
            items.append(dict(v))
        return items

    def session_config(self) -> SessionConfig | None:
        raw = self.data.get("session_config")
        if raw is None:
            return None
        if not isinstance(raw, dict) or set(raw) - {
            "session_expiration_time",
            "carry_over_slots_to_new_session",
        }:
            raise self.fail(
                "session_config takes session_expiration_time and "
                "carry_over_slots_to_new_session",
                "session_config",
            )
        expiry = raw.get("session_expiration_time", 60)
        carry = raw.get("carry_over_slots_to_new_session", True)
        if (
            isinstance(expiry, bool)
            or not isinstance(expiry, int | float)
            or not 0 <= expiry < 1e9
            or not isinstance(carry, bool)
        ):
            raise self.fail(
                "session_expiration_time is minutes (a number >= 0) and "
                "carry_over_slots_to_new_session true or false",
                "session_config",
            )
        return SessionConfig(float(expiry), carry)

    def config(self) -> bool:
        raw = self.data.get("config") or {}
        if not isinstance(raw, dict):
            raise self.fail("'config' must be a mapping", "config")
        value = raw.get("store_entities_as_slots", True)
        if not isinstance(value, bool):
            raise self.fail("store_entities_as_slots must be true or false", "config")
        return value


_FORM_KEYS = {"required_slots", "ignored_intents"}
_RESPONSE_CONTENT = {"text", "image", "custom", "buttons", "attachment", "elements"}
_RESPONSE_KEYS = _RESPONSE_CONTENT | {
    "channel",
    "condition",
    "quick_replies",
    "metadata",
    "id",
    "button_type",
}


def _variation_problem(v: dict[str, Any]) -> str | None:
    for key in ("text", "image", "channel", "id"):
        if key in v and not isinstance(v[key], str):
            return f"'{key}' must be a string"
    buttons = v.get("buttons", [])
    if not isinstance(buttons, list) or not all(
        isinstance(b, dict) and isinstance(b.get("title"), str) for b in buttons
    ):
        return "'buttons' is a list of {title, payload}"
    condition = v.get("condition", [])
    if not isinstance(condition, list) or not all(
        isinstance(c, dict)
        and c.get("type", "slot") == "slot"
        and isinstance(c.get("name"), str)
        and "value" in c
        for c in condition
    ):
        return "'condition' is a list of {type: slot, name, value}"
    return None


def _retrieval_actions(
    templates: dict[str, Any], listed: Sequence[str]
) -> tuple[str, ...]:
    """``utter_faq`` for responses ``utter_faq/...``, unless already listed."""
    names = dict.fromkeys(
        name.split("/")[0]
        for name in templates
        if name.startswith("utter_") and "/" in name
    )
    return tuple(name for name in names if name not in listed)


def _mapping_values(
    mapping: dict[str, Any],
    entities: list[dict[str, Any]],
    intent: str | None,
    active_loop: str | None,
    requested_slot: str | None,
    text: str | None,
) -> list[Any]:
    """What one slot mapping takes from a user message (Rasa's action_extract_slots;
    ``from_trigger_intent`` only fills when its form starts, which is the form loop's
    business, and ``custom`` is the action server's)."""
    if "intent" in mapping and intent not in mapping["intent"]:
        return []
    if intent in mapping.get("not_intent", ()):
        return []
    conditions = mapping.get("conditions")
    if conditions and not any(
        c.get("active_loop") == active_loop
        and c.get("requested_slot", requested_slot) == requested_slot
        for c in conditions
    ):
        return []
    kind = mapping["type"]
    if kind == "from_entity":
        return [
            e.get("value")
            for e in entities
            if e.get("entity") == mapping["entity"]
            and all(e.get(k) == mapping[k] for k in ("role", "group") if k in mapping)
        ]
    if kind == "from_intent":
        return [mapping["value"]] if intent is not None else []
    if kind == "from_text":
        return [text] if text is not None else []
    return []


def _item_name(item: Any) -> Any:
    """A list item's name: the item itself, or the key of a one-key mapping."""
    return next(iter(item)) if isinstance(item, dict) and len(item) == 1 else item


def _is_names(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _looks_like_domain(doc: YamlDoc) -> bool:
    """Rasa's guess for a YAML file in a domain folder: a mapping with domain keys
    and no training data keys."""
    data = doc.data
    return (
        isinstance(data, dict)
        and any(k in data for k in _TOP_KEYS - {"version"})
        and not any(k in data for k in ("nlu", "stories", "rules"))
    )


class _MergedDoc:
    """Several domain files as one document (Rasa's domain folder), remembering
    which file each top-level entry came from so errors name the right file."""

    def __init__(self, docs: list[YamlDoc], folder: str):
        self.folder = folder
        self.data: dict[str, Any] = {}
        #: (key, merged index or mapping key) -> the file that defined it
        self.origin: dict[tuple[str, Any], YamlDoc] = {}
        self.offsets: dict[tuple[str, int], tuple[YamlDoc, int]] = {}
        for doc in docs:
            if not isinstance(doc.data, dict):
                raise InvalidDomain("a domain file must be a mapping", doc.path, 1)
            for key, value in doc.data.items():
                self.merge(doc, key, value)

    def merge(self, doc: YamlDoc, key: str, value: Any) -> None:
        have = self.data.get(key)
        if have is None:
            self.data[key] = (
                list(value)
                if isinstance(value, list)
                else dict(value)
                if isinstance(value, dict)
                else value
            )
            self._note(doc, key, value, 0)
            return
        if isinstance(have, list) and isinstance(value, list):
            names = {json.dumps(_item_name(v), default=str) for v in have}
            for i, item in enumerate(value):
                if json.dumps(_item_name(item), default=str) not in names:
                    self.offsets[(key, len(have))] = (doc, i)
                    have.append(item)
            return
        if isinstance(have, dict) and isinstance(value, dict):
            for k, v in value.items():
                if k in have and have[k] != v:
                    first = self.origin.get((key, k))
                    raise InvalidDomain(
                        f"'{key}: {k}' is defined differently here and in "
                        f"{first.path if first else 'another file'}",
                        doc.path,
                        doc.line(key, k),
                    )
                have[k] = v
                self.origin[(key, k)] = doc
            return
        if have != value:
            raise InvalidDomain(
                f"'{key}' differs between domain files", doc.path, doc.line(key)
            )

    def _note(self, doc: YamlDoc, key: str, value: Any, start: int) -> None:
        self.origin[(key, None)] = doc
        if isinstance(value, list):
            for i in range(len(value)):
                self.offsets[(key, start + i)] = (doc, i)
        elif isinstance(value, dict):
            for k in value:
                self.origin[(key, k)] = doc

    def where(self, *keys: Any) -> tuple[str, int | None]:
        if not keys:
            return self.folder, None
        key, rest = keys[0], keys[1:]
        if rest and (key, rest[0]) in self.offsets:
            listed, index = self.offsets[(key, rest[0])]
            return listed.path, listed.line(key, index, *rest[1:])
        doc = self.origin.get((key, rest[0] if rest else None)) or self.origin.get(
            (key, None)
        )
        return (doc.path, doc.line(*keys)) if doc else (self.folder, None)


def load_domain_doc(path: str | Path) -> YamlDoc | _MergedDoc:
    """One domain file, or every domain YAML file below a folder (sorted), merged."""
    root = Path(path)
    if not root.is_dir():
        return read_yaml(root)
    files = sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix in (".yml", ".yaml")
    )
    docs = [doc for doc in map(read_yaml, files) if _looks_like_domain(doc)]
    if not docs:
        raise InvalidDomain("no domain file in the folder", str(root))
    return _MergedDoc(docs, str(root))
