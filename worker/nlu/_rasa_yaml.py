"""Reader for Rasa 2.x/3.x NLU YAML (``nlu:`` items of a ``data/*.yml`` file).

Follows Rasa 3.6's ``RasaYAMLReader`` (rasa/shared/nlu/training_data/formats/
rasa_yaml.py) and its entity annotation parser, but strictly: an example line that is
not a ``- `` item, an unknown key, or markup that is not a valid annotation is a
``TrainingDataError`` naming the file and line, where Rasa warns and drops it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from typing import cast

from worker.annotations import parse_annotations
from worker.errors import TrainingDataError
from worker.nlu.training_data import Entity
from worker.nlu.training_data import Example
from worker.nlu.training_data import NLUData
from worker.nlu.training_data import add_synonym
from worker.nlu.training_data import extend_unique
from worker.nlu.training_data import merge_data
from worker.nlu.training_data import regex_error
from worker.yamlfile import YamlDoc

#: Keys a data file may hold next to ``nlu``; stories and rules are read elsewhere.
#: ``responses`` are those of retrieval intents (``utter_faq/ask_name``), which
#: Rasa 2+ projects keep in data files as often as in the domain.
_DATA_KEYS = frozenset({"version", "nlu", "stories", "rules", "responses"})
_ITEM_KINDS = ("intent", "synonym", "regex", "lookup")


class _YamlNLUReader:
    def __init__(self, doc: YamlDoc) -> None:
        self.doc = doc
        self.synonyms: dict[str, str] = {}
        self.examples: list[Example] = []
        self.regexes: list[tuple[str, str]] = []
        self.lookups: dict[str, list[str]] = {}

    def read(self) -> NLUData:
        data = self.doc.data
        if data is None:
            return NLUData()
        if not isinstance(data, dict):
            raise self.doc.error("a data file must be a mapping (version, nlu, ...)")
        unknown = sorted(str(k) for k in set(data) - _DATA_KEYS)
        if unknown:
            raise self.doc.error(
                f"unknown top-level keys {unknown}; valid: {sorted(_DATA_KEYS)}",
                unknown[0],
            )
        version = data.get("version")
        if version is not None and not isinstance(version, str):
            raise self.doc.error('"version" must be a string such as "3.1"', "version")
        items = data.get("nlu") or []
        if not isinstance(items, list):
            raise self.doc.error('"nlu" must be a list of items', "nlu")
        for i, item in enumerate(items):
            self.item(item, i)
        return merge_data(
            [
                NLUData(
                    examples=tuple(self.examples),
                    synonyms=self.synonyms,
                    regex_features=tuple(self.regexes),
                    lookup_tables=tuple((k, tuple(v)) for k, v in self.lookups.items()),
                    responses=self.responses(data.get("responses")),
                )
            ]
        )

    def responses(self, value: Any) -> dict[str, list[dict[str, Any]]]:
        """``responses:`` as written; the domain checks their variations when a
        Core model is trained with them (`Domain.with_responses`)."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.doc.error('"responses" must be a mapping', "responses")
        for name, variations in value.items():
            if not isinstance(name, str) or not name.startswith("utter_"):
                raise self.doc.error(
                    f"response {name!r} must be named utter_...", "responses", name
                )
            if not isinstance(variations, list) or not all(
                isinstance(v, dict) for v in variations
            ):
                raise self.doc.error(
                    f"response {name!r} must be a list of variations",
                    "responses",
                    name,
                )
        return value

    def item(self, item: Any, i: int) -> None:
        where = ("nlu", i)
        kinds = [k for k in _ITEM_KINDS if isinstance(item, dict) and k in item]
        if len(kinds) != 1:
            raise self.doc.error(
                "an nlu item needs exactly one of 'intent', 'synonym', 'regex', "
                "'lookup'",
                *where,
            )
        kind = kinds[0]
        name = item[kind]
        if not isinstance(name, str) or not name.strip():
            raise self.doc.error(f"'{kind}' must be a non-empty string", *where, kind)
        allowed = {kind, "examples"} | ({"metadata"} if kind == "intent" else set())
        extra = sorted(str(k) for k in set(item) - allowed)
        if extra:
            raise self.doc.error(
                f"unknown keys {extra} in a {kind} item; valid: {sorted(allowed)}",
                *where,
                extra[0],
            )
        if kind == "intent":
            intent, slash, key = name.strip().partition("/")
            if slash and not (intent and key and "/" not in key):
                raise self.doc.error(
                    f"intent {name!r}: a retrieval intent is named intent/key, "
                    "such as faq/ask_name",
                    *where,
                    kind,
                )
            self.metadata(item.get("metadata"), (*where, "metadata"))
            for text, line in self.intent_examples(item.get("examples"), where):
                self.examples.append(self.parse_example(text, name.strip(), line))
            return
        for text, line in self.block(item.get("examples"), (*where, "examples")):
            if kind == "synonym":
                add_synonym(self.synonyms, text, name)
            elif kind == "regex":
                error = regex_error(text)
                if error:
                    raise TrainingDataError(error, self.doc.path, line)
                self.regexes.append((name, text))
            else:
                extend_unique(self.lookups.setdefault(name, []), (text,))

    def metadata(self, value: Any, keys: tuple[Any, ...]) -> None:
        """Per-intent and per-example metadata is accepted and not used."""
        if value is not None and not isinstance(value, dict):
            raise self.doc.error("'metadata' must be a mapping", *keys)

    def intent_examples(
        self, examples: Any, where: tuple[Any, ...]
    ) -> list[tuple[str, int | None]]:
        """``examples: |`` block text, or a list of ``{text, metadata}`` items."""
        keys = (*where, "examples")
        if not isinstance(examples, list):
            return self.block(examples, keys)
        out = []
        for j, entry in enumerate(examples):
            if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
                raise self.doc.error(
                    "each listed example needs a string 'text'", *keys, j
                )
            extra = sorted(str(k) for k in set(entry) - {"text", "metadata"})
            if extra:
                raise self.doc.error(
                    f"unknown keys {extra} in an example; valid: ['metadata', 'text']",
                    *keys,
                    j,
                )
            self.metadata(entry.get("metadata"), (*keys, j, "metadata"))
            text = entry["text"].strip()
            if not text:
                raise self.doc.error("an example's text is empty", *keys, j)
            out.append((text, self.doc.line(*keys, j)))
        return out

    def block(self, text: Any, keys: tuple[Any, ...]) -> list[tuple[str, int | None]]:
        """The ``- item`` lines of a block string, each with its file line."""
        if not isinstance(text, str):
            raise self.doc.error(
                "'examples' must be a block of '- ' lines (examples: |)", *keys
            )
        first = self.doc.line(*keys)
        # NOTE: a literal block starts on the line after its '|' indicator.
        offset = (first or 0) + (1 if first is not None else 0)
        out = []
        for n, raw in enumerate(text.splitlines()):
            line = raw.strip()
            number = offset + n if first is not None else None
            if not line:
                continue
            if not line.startswith("-"):
                raise TrainingDataError(
                    f"an example line must start with '- ': {line!r}",
                    self.doc.path,
                    number,
                )
            item = line[1:].strip()
            if not item:
                raise TrainingDataError("an empty example", self.doc.path, number)
            out.append((item, number))
        return out

    def parse_example(self, item: str, intent: str, line: int | None) -> Example:
        try:
            text, entities = parse_annotations(item)
        except ValueError as err:
            raise TrainingDataError(str(err), self.doc.path, line) from err
        for entity in entities:
            surface = text[entity["start"] : entity["end"]]
            if entity["value"] != surface:
                add_synonym(self.synonyms, surface, entity["value"])
        return Example(text, intent, tuple(cast(list[Entity], entities)))


def read_rasa_yaml(raw: str, path: Path) -> NLUData:
    """Parse the ``nlu:`` part of a Rasa YAML data file."""
    return _YamlNLUReader(YamlDoc(str(path), raw)).read()


def has_nlu_section(raw: str) -> bool:
    """Rasa's guess for a YAML file in a data folder: it holds a top-level ``nlu:``
    (or ``responses:``, the retrieval intents' answers)."""
    return re.search(r"^(nlu|responses)\s*:", raw, re.MULTILINE) is not None
