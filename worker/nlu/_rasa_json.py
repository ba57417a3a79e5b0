"""Reader for Rasa NLU JSON (``{"rasa_nlu_data": {...}}``; Rasa NLU 0.13-0.15 docs,
"Training Data Format")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from typing import TypeGuard

from worker import jsonlimits
from worker.errors import TrainingDataError
from worker.nlu.training_data import Entity
from worker.nlu.training_data import Example
from worker.nlu.training_data import NLUData
from worker.nlu.training_data import add_synonym
from worker.nlu.training_data import merge_data
from worker.nlu.training_data import read_lookup_file
from worker.nlu.training_data import regex_error

_JSON_KEYS = frozenset(
    {
        "common_examples",
        "intent_examples",
        "entity_examples",
        "entity_synonyms",
        "regex_features",
        "lookup_tables",
    }
)


class _PositionedDict(dict):
    """A JSON object that remembers the offset of its ``{`` (for error lines only)."""

    pos = 0


def _json_line(raw: str, keys: tuple[str | int, ...]) -> int:
    """Line of the JSON object at ``keys``; re-parses slowly, so only on errors."""

    def parse_object(s_and_end: tuple[str, int], *args: Any) -> tuple[Any, int]:
        obj, end = json.decoder.JSONObject(s_and_end, *args)  # type: ignore[attr-defined]
        positioned = _PositionedDict(obj)
        positioned.pos = s_and_end[1] - 1
        return positioned, end

    decoder = json.JSONDecoder()
    decoder.parse_object = parse_object  # type: ignore[attr-defined]
    decoder.scan_once = json.scanner.py_make_scanner(decoder)  # type: ignore[attr-defined]
    node: Any = decoder.decode(raw)
    pos = getattr(node, "pos", 0)
    for key in keys:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            break
        pos = getattr(node, "pos", pos)
    return raw.count("\n", 0, pos) + 1


class _JsonReader:
    """Validates a parsed ``rasa_nlu_data`` document, with error lines on demand."""

    def __init__(self, raw: str, path: Path, lookup_files: bool) -> None:
        self.lookup_files = lookup_files
        self.raw = raw
        self.path = path
        self.synonyms: dict[str, str] = {}

    def fail(self, message: str, *keys: str | int) -> TrainingDataError:
        keys = ("rasa_nlu_data", *keys)
        return TrainingDataError(message, str(self.path), _json_line(self.raw, keys))

    def read(self, doc: Any) -> NLUData:
        if not isinstance(doc, dict) or set(doc) != {"rasa_nlu_data"}:
            raise TrainingDataError(
                'expected a JSON object with the single key "rasa_nlu_data"',
                str(self.path),
                1,
            )
        data = doc["rasa_nlu_data"]
        if not isinstance(data, dict):
            raise self.fail('"rasa_nlu_data" must be an object')
        unknown = sorted(set(data) - _JSON_KEYS)
        if unknown:
            raise self.fail(f"unknown keys {unknown}; valid keys: {sorted(_JSON_KEYS)}")
        examples = [
            self.example(item, section, i)
            for section in ("common_examples", "intent_examples", "entity_examples")
            for i, item in enumerate(self.items(data, section))
        ]
        for i, item in enumerate(self.items(data, "entity_synonyms")):
            value, synonyms = item.get("value"), item.get("synonyms")
            if not isinstance(value, str) or not _is_str_list(synonyms):
                raise self.fail(
                    "a synonym needs a string value and a list of strings",
                    "entity_synonyms",
                    i,
                )
            for surface in synonyms:
                add_synonym(self.synonyms, surface, value)
        regexes = []
        for i, item in enumerate(self.items(data, "regex_features")):
            name, pattern = item.get("name"), item.get("pattern")
            if not isinstance(name, str) or not isinstance(pattern, str):
                raise self.fail(
                    "a regex feature needs a string name and pattern",
                    "regex_features",
                    i,
                )
            error = regex_error(pattern)
            if error:
                raise self.fail(error, "regex_features", i)
            regexes.append((name, pattern))
        lookups = [
            self.lookup(item, i)
            for i, item in enumerate(self.items(data, "lookup_tables"))
        ]
        return merge_data(
            [NLUData(tuple(examples), self.synonyms, tuple(regexes), tuple(lookups))]
        )

    def items(self, data: dict[str, Any], section: str) -> list[dict[str, Any]]:
        items = data.get(section, [])
        if not isinstance(items, list):
            raise self.fail(f'"{section}" must be a list', section)
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise self.fail(f"item {i} of {section} must be an object", section, i)
        return items

    def example(self, item: dict[str, Any], section: str, i: int) -> Example:
        text, intent = item.get("text"), item.get("intent")
        if not isinstance(text, str) or not text:
            raise self.fail("an example needs a non-empty string text", section, i)
        if intent is not None and not isinstance(intent, str):
            raise self.fail("an example's intent must be a string", section, i)
        raw_entities = item.get("entities") or []
        if not isinstance(raw_entities, list):
            raise self.fail("an example's entities must be a list", section, i)
        entities = []
        for j, ent in enumerate(raw_entities):
            where = (section, i, "entities", j)
            if not isinstance(ent, dict) or not isinstance(ent.get("entity"), str):
                raise self.fail("an entity needs a string 'entity'", *where)
            start, end = ent.get("start"), ent.get("end")
            if not _is_int(start) or not _is_int(end):
                raise self.fail("entity start and end must be integers", *where)
            if not 0 <= start < end <= len(text):
                raise self.fail(
                    f"entity span {start}:{end} is out of range for a text of "
                    f"length {len(text)}",
                    *where,
                )
            surface = text[start:end]
            value = str(ent.get("value", surface))
            if value != surface:
                add_synonym(self.synonyms, surface, value)
            entities.append(
                Entity(start=start, end=end, value=value, entity=ent["entity"])
            )
        return Example(text, intent or None, tuple(entities))

    def lookup(self, item: dict[str, Any], i: int) -> tuple[str, tuple[str, ...]]:
        name, elements = item.get("name"), item.get("elements")
        if not isinstance(name, str):
            raise self.fail("a lookup table needs a string name", "lookup_tables", i)
        if isinstance(elements, str):
            try:
                elements = read_lookup_file(elements, self.path, self.lookup_files)
            except ValueError as err:
                raise self.fail(str(err), "lookup_tables", i) from err
        elif not _is_str_list(elements):
            raise self.fail(
                "lookup elements must be a list of strings or a file path",
                "lookup_tables",
                i,
            )
        return name, tuple(elements)


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str_list(value: Any) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def read_rasa_json(raw: str, path: Path, *, lookup_files: bool = False) -> NLUData:
    """Parse Rasa NLU JSON; ``path`` names errors and anchors lookup files (read
    only with ``lookup_files``: see `read_lookup_file`)."""
    try:
        doc = jsonlimits.loads(raw)
    except json.JSONDecodeError as err:
        raise TrainingDataError(
            f"invalid JSON: {err.msg}", str(path), err.lineno
        ) from err
    except jsonlimits.JSONLimitError as err:
        raise TrainingDataError(f"the JSON has {err}", str(path)) from err
    return _JsonReader(raw, path, lookup_files).read(doc)
