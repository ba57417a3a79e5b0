"""Rasa's entity annotations in example text: ``[text](entity)``,
``[text](entity:value)``, ``[text]{"entity": ..., "role": ..., "group": ...}`` and
``[text][{...}, {...}]`` (Rasa 2.x/3.x training data and end-to-end stories).

A module of its own, outside ``worker.nlu``: the story readers use it too.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: Rasa's entity markup: ``[text](entity)``, ``[text](entity:value)``,
#: ``[text]{"entity": ...}`` and ``[text][{...}, {...}]``.
_ANNOTATION = re.compile(
    r"\[(?P<surface>[^\]]+?)\]"
    r"(?:\((?P<entity>[^:)]+?)(?::(?P<value>[^)]+))?\)"
    r"|(?P<dict>\{[^}]+?\})"
    r"|\[(?P<list>.*?)\])"
)
_ENTITY_KEYS = frozenset({"entity", "value", "role", "group"})


def parse_annotations(item: str) -> tuple[str, list[dict[str, Any]]]:
    """The plain text of an annotated example and its entities (with role and
    group); ValueError says what markup is broken."""
    pieces: list[str] = []
    entities: list[dict[str, Any]] = []
    cursor = length = 0
    for match in _ANNOTATION.finditer(item):
        pieces.append(item[cursor : match.start()])
        length += match.start() - cursor
        surface = match.group("surface")
        for spec in _entity_specs(match):
            entity: dict[str, Any] = {
                "start": length,
                "end": length + len(surface),
                "value": spec.get("value", surface),
                "entity": spec["entity"],
            }
            for key in ("role", "group"):
                if key in spec:
                    entity[key] = spec[key]
            entities.append(entity)
        pieces.append(surface)
        length += len(surface)
        cursor = match.end()
    pieces.append(item[cursor:])
    rest = _ANNOTATION.sub("", item)
    if "](" in rest or "]{" in rest:
        raise ValueError(
            f"cannot parse the entity annotation in {item!r}; expected "
            '[text](entity), [text](entity:value) or [text]{"entity": ...}'
        )
    return "".join(pieces), entities


def _entity_specs(match: re.Match[str]) -> list[dict[str, str]]:
    if match.group("entity") is not None:
        spec = {"entity": match.group("entity").strip()}
        if match.group("value") is not None:
            spec["value"] = match.group("value")
        return [spec]
    raw = match.group("dict") or f"[{match.group('list')}]"
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(
            f"entity annotation {raw!r} is not valid JSON: {err.msg}"
        ) from err
    specs = parsed if isinstance(parsed, list) else [parsed]
    for spec in specs:
        ok = (
            isinstance(spec, dict)
            and set(spec) <= _ENTITY_KEYS
            and isinstance(spec.get("entity"), str)
            and all(isinstance(spec.get(k, ""), str) for k in _ENTITY_KEYS)
        )
        if not ok:
            raise ValueError(
                f"entity annotation {raw!r}: each entity is an object with a "
                "string 'entity' and optional string 'value', 'role', 'group'"
            )
    return specs
