"""``dialogd data convert``: NLU data and stories between Markdown and Rasa YAML.

Conversion goes through what the readers build (``NLUData``, story steps), so a
converted file trains the same model: ``OR`` alternatives come out as the steps
they mean, joined at their generated checkpoints.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from worker.errors import TrainingDataError
from worker.events import ActionExecuted
from worker.events import Event
from worker.events import Form
from worker.events import SlotSet
from worker.events import UserUttered
from worker.nlu.training_data import Entity
from worker.nlu.training_data import NLUData
from worker.training.stories import STORY_START
from worker.training.stories import StoryStep
from worker.yamlfile import dump_yaml

YAML_VERSION = "3.1"


# ---- NLU ------------------------------------------------------------------------
def annotate(text: str, entities: Sequence[Entity] | Sequence[dict[str, Any]]) -> str:
    """The example text with its entities marked up as Rasa writes them."""
    out, cursor = [], 0
    for entity in sorted(entities, key=lambda e: e["start"]):
        if entity["start"] < cursor:
            continue  # NOTE: an overlapping annotation cannot be written inline.
        surface = text[entity["start"] : entity["end"]]
        out.append(text[cursor : entity["start"]])
        extra = {k: v for k, v in entity.items() if k in ("role", "group")}
        if extra or "(" in entity["entity"]:
            spec: dict[str, Any] = {"entity": entity["entity"], **extra}
            if entity["value"] != surface:
                spec["value"] = entity["value"]
            out.append(f"[{surface}]{json.dumps(spec, ensure_ascii=False)}")
        elif entity["value"] != surface:
            out.append(f"[{surface}]({entity['entity']}:{entity['value']})")
        else:
            out.append(f"[{surface}]({entity['entity']})")
        cursor = entity["end"]
    out.append(text[cursor:])
    return "".join(out)


def nlu_to_yaml(data: NLUData) -> str:
    items: list[dict[str, Any]] = []
    by_intent: dict[str, list[str]] = {}
    for example in data.examples:
        if example.intent is None:
            raise TrainingDataError(
                f"example {example.text!r} has no intent: Rasa YAML needs one"
            )
        by_intent.setdefault(example.intent, []).append(
            annotate(example.text, example.entities)
        )
    for intent, lines in by_intent.items():
        items.append({"intent": intent, "examples": _lines(lines)})
    synonyms: dict[str, list[str]] = {}
    for surface, value in data.synonyms.items():
        if surface != value.lower():
            synonyms.setdefault(value, []).append(surface)
    items += [{"synonym": v, "examples": _lines(s)} for v, s in synonyms.items()]
    items += [
        {"regex": name, "examples": _lines([pattern])}
        for name, pattern in data.regex_features
    ]
    items += [
        {"lookup": name, "examples": _lines(list(elements))}
        for name, elements in data.lookup_tables
    ]
    return dump_yaml({"version": YAML_VERSION, "nlu": items})


def nlu_to_markdown(data: NLUData) -> str:
    sections: dict[str, list[str]] = {}
    for example in data.examples:
        title = f"intent:{example.intent}" if example.intent else "intent:None"
        line = annotate(example.text, example.entities)
        sections.setdefault(title, []).append(line)
    for surface, value in data.synonyms.items():
        if surface != value.lower():
            sections.setdefault(f"synonym:{value}", []).append(surface)
    for name, pattern in data.regex_features:
        sections.setdefault(f"regex:{name}", []).append(pattern)
    for name, elements in data.lookup_tables:
        sections.setdefault(f"lookup:{name}", []).extend(elements)
    return "\n".join(
        f"## {title}\n" + "".join(f"- {line}\n" for line in lines)
        for title, lines in sections.items()
    )


def _lines(items: Sequence[str]) -> str:
    return "".join(f"- {item}\n" for item in items)


# ---- stories ----------------------------------------------------------------------
def stories_to_yaml(steps: Sequence[StoryStep]) -> str:
    stories, rules = [], []
    for step in steps:
        body = [_yaml_step(e) for e in step.events]
        starts = [c for c in step.start_checkpoints if c.name != STORY_START]
        head: list[dict[str, Any]] = []
        for cp in starts:
            entry: dict[str, Any] = {"checkpoint": cp.name}
            if cp.conditions:
                entry["slot_was_set"] = [{k: v} for k, v in cp.conditions.items()]
            head.append(entry)
        tail = [{"checkpoint": cp.name} for cp in step.end_checkpoints]
        if step.rule is None:
            stories.append({"story": step.block_name, "steps": head + body + tail})
            continue
        item: dict[str, Any] = {"rule": step.block_name}
        if step.rule.condition:
            item["condition"] = [_yaml_step(e) for e in step.rule.condition]
        if step.rule.conversation_start:
            item["conversation_start"] = True
        item["steps"] = head + body + tail
        if not step.rule.wait_for_user_input:
            item["wait_for_user_input"] = False
        rules.append(item)
    data: dict[str, Any] = {"version": YAML_VERSION}
    if stories:
        data["stories"] = stories
    if rules:
        data["rules"] = rules
    return dump_yaml(data)


def _is_end_to_end(event: UserUttered) -> bool:
    """True when the message has its own text, not just the intent written out
    (Markdown's ``* greet{"name": "Ada"}`` keeps that line as its text)."""
    text, intent = event.text, event.intent_name or ""
    if text is None or text == intent:
        return False
    return not text.lstrip("/").startswith((f"{intent}{{", f"{intent}@"))


def _yaml_step(event: Event) -> dict[str, Any]:
    if isinstance(event, UserUttered):
        step: dict[str, Any] = {"intent": event.intent_name}
        if _is_end_to_end(event):
            assert event.text is not None
            step = {"user": annotate(event.text, event.entities), **step}
        elif event.entities:
            step["entities"] = [_yaml_entity(e) for e in event.entities]
        return step
    if isinstance(event, ActionExecuted):
        return {"action": event.name}
    if isinstance(event, SlotSet):
        return {"slot_was_set": [{event.name: event.value}]}
    if isinstance(event, Form):  # and ActiveLoop, a Form
        return {"active_loop": event.name}
    raise TrainingDataError(f"a '{event.type_name}' event cannot be written in YAML")


def _yaml_entity(entity: dict[str, Any]) -> Any:
    if not entity.get("value") and "role" not in entity and "group" not in entity:
        return entity["entity"]
    out = {entity["entity"]: entity.get("value", "")}
    out.update({k: entity[k] for k in ("role", "group") if k in entity})
    return out


def stories_to_markdown(steps: Sequence[StoryStep]) -> str:
    blocks = []
    for step in steps:
        if step.rule is not None:
            raise TrainingDataError(
                f"'{step.block_name}' is a rule: Markdown stories cannot hold rules"
            )
        lines = [f"## {step.block_name}"]
        for cp in step.start_checkpoints:
            if cp.name != STORY_START:
                cond = json.dumps(cp.conditions) if cp.conditions else ""
                lines.append(f"> {cp.name}{cond}")
        lines += [_markdown_line(e) for e in step.events]
        lines += [f"> {cp.name}" for cp in step.end_checkpoints]
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def _markdown_line(event: Event) -> str:
    if isinstance(event, UserUttered):
        if _is_end_to_end(event):
            assert event.text is not None
            return f"* {event.intent_name}: {annotate(event.text, event.entities)}"
        values: dict[str, Any] = {}
        for entity in event.entities:
            values.setdefault(entity["entity"], []).append(entity.get("value"))
        flat = {k: v[0] if len(v) == 1 else v for k, v in values.items()}
        return f"* {event.intent_name}{json.dumps(flat) if flat else ''}"
    if isinstance(event, ActionExecuted):
        return f"  - {event.name}"
    if isinstance(event, SlotSet):
        return f"  - slot{json.dumps({event.name: event.value})}"
    if isinstance(event, Form):
        # NOTE: Rasa 2's Markdown wrote ``active_loop{...}``; ``form{...}`` is read
        # by every version, so it is the one written.
        return f"  - form{json.dumps({'name': event.name})}"
    raise TrainingDataError(
        f"a '{event.type_name}' event cannot be written in Markdown stories"
    )
