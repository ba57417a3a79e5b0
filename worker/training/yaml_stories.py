"""Stories and rules in Rasa 2.x/3.x YAML, read into the same story steps as the
Markdown stories.

Follows Rasa 3.6's ``YAMLStoryReader`` (rasa/shared/core/training_data/
story_reader/yaml_story_reader.py): ``stories:`` and ``rules:`` items with
``steps`` of ``intent`` (with ``entities``), ``user``, ``action``,
``slot_was_set``, ``active_loop``, ``checkpoint`` and ``or``; rules with
``condition``, ``conversation_start`` and ``wait_for_user_input``. Where Rasa warns
and skips a step, this reader stops with the file and line: a skipped step trains a
bot that silently misbehaves.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from worker.annotations import parse_annotations
from worker.domain import Domain
from worker.errors import TrainingDataError
from worker.events import ActionExecuted
from worker.events import ActiveLoop
from worker.events import Event
from worker.events import SlotSet
from worker.events import UserUttered
from worker.training.stories import GENERATED_PREFIX
from worker.training.stories import Block
from worker.training.stories import Checkpoint
from worker.training.stories import Rule
from worker.training.stories import StoryStep
from worker.yamlfile import YamlDoc

#: Rasa's value for a text (or list) slot named without a value in a story.
FILLED = "filled"
_USER_KEYS = frozenset({"intent", "user", "entities", "metadata"})
_STEP_KINDS = ("action", "bot", "checkpoint", "slot_was_set", "active_loop", "or")


def has_story_sections(text: str) -> bool:
    """Rasa's guess for a YAML file in a data folder: a top-level stories/rules."""
    return re.search(r"^(stories|rules)\s*:", text, re.MULTILINE) is not None


class _Reader:
    def __init__(self, doc: YamlDoc, domain: Domain):
        self.doc = doc
        self.domain = domain
        self.blocks: list[Block] = []

    def fail(self, message: str, *keys: Any) -> TrainingDataError:
        return TrainingDataError(message, self.doc.path, self.doc.line(*keys))

    def read(self) -> list[StoryStep]:
        data = self.doc.data
        if data is None:
            return []
        if not isinstance(data, dict):
            raise self.fail("a data file must be a mapping (version, stories, ...)")
        for section, title in (("stories", "story"), ("rules", "rule")):
            items = data.get(section) or []
            if not isinstance(items, list):
                raise self.fail(f"'{section}' must be a list", section)
            for i, item in enumerate(items):
                self.item(section, title, i, item)
        return [step for block in self.blocks for step in block.steps()]

    def item(self, section: str, title: str, i: int, item: Any) -> None:
        where = (section, i)
        allowed = {title, "steps", "metadata"}
        if title == "rule":
            allowed |= {"condition", "conversation_start", "wait_for_user_input"}
        if not isinstance(item, dict) or title not in item:
            raise self.fail(f"each item of '{section}' needs a '{title}' name", *where)
        extra = sorted(str(k) for k in set(item) - allowed)
        if extra:
            raise self.fail(
                f"unknown keys {extra} in a {title}; valid: {sorted(allowed)}",
                *where,
                extra[0],
            )
        name = item[title]
        if not isinstance(name, str) or not name.strip():
            raise self.fail(f"a {title} needs a non-empty name", *where, title)
        steps = item.get("steps")
        if not isinstance(steps, list) or not steps:
            raise self.fail(f"{title} '{name}' needs a list of steps", *where)
        rule = self.rule(item, where) if title == "rule" else None
        self.blocks.append(
            Block(name, f"{self.doc.path}:{self.doc.line(*where)}", rule)
        )
        for j, step in enumerate(steps):
            self.step(step, (*where, "steps", j))

    def rule(self, item: dict[str, Any], where: tuple[Any, ...]) -> Rule:
        flags = {}
        for key, default in (
            ("conversation_start", False),
            ("wait_for_user_input", True),
        ):
            value = item.get(key, default)
            if not isinstance(value, bool):
                raise self.fail(f"'{key}' must be true or false", *where, key)
            flags[key] = value
        condition = item.get("condition") or []
        if not isinstance(condition, list):
            raise self.fail("'condition' must be a list of steps", *where, "condition")
        events: list[Event] = []
        for j, step in enumerate(condition):
            keys = (*where, "condition", j)
            if not isinstance(step, dict) or len(step) != 1:
                raise self.fail(
                    "a rule condition is 'slot_was_set' or 'active_loop'", *keys
                )
            if "slot_was_set" in step:
                events.extend(self.slots(step["slot_was_set"], keys))
            elif "active_loop" in step:
                events.append(self.active_loop(step["active_loop"], keys))
            else:
                raise self.fail(
                    "a rule condition is 'slot_was_set' or 'active_loop'", *keys
                )
        return Rule(tuple(events), **flags)

    def step(self, step: Any, keys: tuple[Any, ...]) -> None:
        block = self.blocks[-1]
        if not isinstance(step, dict):
            raise self.fail("a step is a mapping such as 'intent: greet'", *keys)
        if "intent" in step or "user" in step:
            block.user([self.user(step, keys)], self.fork_name(keys))
            return
        kinds = [k for k in _STEP_KINDS if k in step]
        if not kinds:
            raise self.fail(
                f"unknown step {sorted(map(str, step))}; a step is one of intent, "
                f"user, {', '.join(_STEP_KINDS)}",
                *keys,
            )
        kind = kinds[0]
        allowed = {kind, "metadata"} | (
            {"slot_was_set"} if kind == "checkpoint" else set()
        )
        extra = sorted(str(k) for k in set(step) - allowed)
        if extra:
            raise self.fail(f"unknown keys {extra} in a {kind} step", *keys, extra[0])
        value = step[kind]
        if kind == "action":
            block.event(self.action(value, keys))
        elif kind == "bot":
            raise self.fail(
                "end-to-end bot text ('bot:') cannot be trained: name the action "
                "(action: utter_...) instead",
                *keys,
            )
        elif kind == "checkpoint":
            self.checkpoint(value, step.get("slot_was_set"), keys)
        elif kind == "slot_was_set":
            for event in self.slots(value, keys):
                block.event(event)
        elif kind == "active_loop":
            block.event(self.active_loop(value, keys))
        else:
            block.alternatives(self.alternatives(value, keys), self.fork_name(keys))

    def user(self, step: dict[str, Any], keys: tuple[Any, ...]) -> UserUttered:
        extra = sorted(str(k) for k in set(step) - _USER_KEYS)
        if extra:
            raise self.fail(f"unknown keys {extra} in a user step", *keys, extra[0])
        intent = step.get("intent")
        if intent is None:
            raise self.fail(
                "a user step needs an 'intent' (end-to-end text alone cannot be "
                "trained by dialogd's policies)",
                *keys,
            )
        if not isinstance(intent, str) or not intent.strip():
            raise self.fail("'intent' must be an intent name", *keys, "intent")
        intent = intent.strip().removeprefix("/").split("/")[0]
        if intent not in self.domain.intent_by_name:
            raise self.fail(f"intent '{intent}' is not in the domain", *keys, "intent")
        if "user" in step:
            text = step["user"]
            if not isinstance(text, str) or not text.strip():
                raise self.fail("'user' must be the message text", *keys, "user")
            try:
                plain, entities = parse_annotations(text.strip())
            except ValueError as err:
                raise self.fail(str(err), *keys, "user") from err
            parsed = [dict(e) for e in entities]
            if "entities" in step:
                raise self.fail(
                    "a user step with text marks its entities in the text", *keys
                )
        else:
            plain = None
            parsed = self.entities(step.get("entities") or [], keys)
        parse_data = {
            "intent": {"name": intent, "confidence": 1.0},
            "entities": parsed,
            "text": plain if plain is not None else intent,
        }
        return UserUttered(text=plain, parse_data=parse_data)

    def entities(self, raw: Any, keys: tuple[Any, ...]) -> list[dict[str, Any]]:
        """``- city: Berlin``, ``- city`` (present, no value), ``- city: Berlin``
        with ``role``/``group`` keys beside it (Rasa's form)."""
        if not isinstance(raw, list):
            raise self.fail("'entities' must be a list", *keys, "entities")
        out = []
        for j, item in enumerate(raw):
            if isinstance(item, str):
                out.append({"entity": item, "value": ""})
                continue
            names = (
                [k for k in item if k not in ("role", "group")]
                if isinstance(item, dict)
                else []
            )
            if len(names) != 1 or not all(
                isinstance(item.get(k, ""), str) for k in ("role", "group")
            ):
                raise self.fail(
                    "an entity is a name, or 'name: value' with optional role "
                    "and group",
                    *keys,
                    "entities",
                    j,
                )
            entity = {"entity": str(names[0]), "value": item[names[0]]}
            entity.update({k: item[k] for k in ("role", "group") if k in item})
            out.append(entity)
        return out

    def action(self, name: Any, keys: tuple[Any, ...]) -> ActionExecuted:
        if not isinstance(name, str) or name not in self.domain.action_index:
            raise self.fail(f"action {name!r} is not in the domain", *keys, "action")
        return ActionExecuted(name=name)

    def slots(self, raw: Any, keys: tuple[Any, ...]) -> list[Event]:
        items = raw if isinstance(raw, list) else [raw]
        events: list[Event] = []
        for item in items:
            pairs = item.items() if isinstance(item, dict) else [(item, None)]
            for name, value in pairs:
                slot = (
                    self.domain.slot_by_name.get(name)
                    if isinstance(name, str)
                    else None
                )
                if slot is None:
                    raise self.fail(f"slot {name!r} is not in the domain", *keys)
                if not isinstance(item, dict):
                    value = self.default_value(slot.name, slot.type, keys)
                events.append(SlotSet(name=slot.name, value=value))
        return events

    def default_value(self, name: str, kind: str, keys: tuple[Any, ...]) -> Any:
        """A slot named without a value: Rasa's ``filled`` for text and list slots;
        for other featurised types the value matters, so it must be given."""
        if kind == "text":
            return FILLED
        if kind == "list":
            return [FILLED]
        slot = self.domain.slot_by_name[name]
        if slot.dims:
            raise self.fail(
                f"slot '{name}' of type {kind} needs a value: '- {name}: <value>'",
                *keys,
            )
        return None

    def active_loop(self, name: Any, keys: tuple[Any, ...]) -> Event:
        if name is not None and (
            not isinstance(name, str) or name not in self.domain.action_index
        ):
            raise self.fail(f"active_loop {name!r} is not a form of the domain", *keys)
        return ActiveLoop(name=name)

    def checkpoint(self, name: Any, slots: Any, keys: tuple[Any, ...]) -> None:
        if not isinstance(name, str) or not name:
            raise self.fail("a checkpoint needs a name", *keys)
        conditions: dict[str, Any] = {}
        for item in slots or []:
            if not isinstance(item, dict):
                raise self.fail(
                    f"checkpoint '{name}': slot_was_set items are 'slot: value'", *keys
                )
            conditions.update(item)
        if not self.blocks[-1].checkpoint(Checkpoint(name, conditions)):
            raise self.fail(f"checkpoint '{name}': only start checkpoints take slots")

    def alternatives(self, raw: Any, keys: tuple[Any, ...]) -> list[list[Event]]:
        if not isinstance(raw, list) or len(raw) < 2:
            raise self.fail("'or' lists two or more alternatives", *keys, "or")
        out: list[list[Event]] = []
        for j, item in enumerate(raw):
            where = (*keys, "or", j)
            if isinstance(item, dict) and ("intent" in item or "user" in item):
                out.append([self.user(item, where)])
            elif isinstance(item, dict) and set(item) == {"slot_was_set"}:
                out.append(self.slots(item["slot_was_set"], where))
            else:
                raise self.fail(
                    "an 'or' alternative is a user step or a slot_was_set", *where
                )
        return out

    def fork_name(self, keys: tuple[Any, ...]) -> str:
        line = self.doc.line(*keys)
        digest = hashlib.sha1(f"{self.doc.path}:{line}".encode()).hexdigest()[:8]
        return f"{GENERATED_PREFIX}OR_{digest}"


def parse_yaml_stories(
    text: str, domain: Domain, path: str = "<stories>"
) -> list[StoryStep]:
    """The story and rule steps of one YAML data file (NLU items are ignored)."""
    return _Reader(YamlDoc(path, text), domain).read()
