"""NLU training data in memory, and the helpers the format readers share."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import NotRequired
from typing import TypedDict

from worker.nlu.patterns import pattern_error

logger = logging.getLogger(__name__)


class Entity(TypedDict):
    """A labelled span; ``text[start:end]`` is the surface, ``value`` may differ.
    ``role`` and ``group`` come from Rasa 2+ annotations (``[x]{"entity": ...}``)."""

    start: int
    end: int
    value: str
    entity: str
    role: NotRequired[str]
    group: NotRequired[str]


@dataclass(frozen=True, slots=True)
class Example:
    """One training utterance; ``intent`` is None for entity-only examples."""

    text: str
    intent: str | None = None
    entities: tuple[Entity, ...] = ()


@dataclass(frozen=True, slots=True)
class NLUData:
    """Everything the NLU pipeline learns from, merged over all data files."""

    examples: tuple[Example, ...] = ()
    synonyms: dict[str, str] = field(default_factory=dict)
    regex_features: tuple[tuple[str, str], ...] = ()
    lookup_tables: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def intents(self) -> list[str]:
        """Distinct intent names, sorted (the classifier's label order)."""
        return sorted({ex.intent for ex in self.examples if ex.intent is not None})


def merge_data(parts: list[NLUData]) -> NLUData:
    examples: list[Example] = []
    synonyms: dict[str, str] = {}
    regexes: list[tuple[str, str]] = []
    lookups: dict[str, list[str]] = {}
    for part in parts:
        examples.extend(part.examples)
        for surface, value in part.synonyms.items():
            add_synonym(synonyms, surface, value)
        regexes.extend(part.regex_features)
        for name, elements in part.lookup_tables:
            extend_unique(lookups.setdefault(name, []), elements)
    return NLUData(
        examples=tuple(examples),
        synonyms=synonyms,
        regex_features=tuple(regexes),
        lookup_tables=tuple((name, tuple(els)) for name, els in lookups.items()),
    )


def add_synonym(synonyms: dict[str, str], surface: str, value: str) -> None:
    """Map the lower-cased surface to ``value`` (the mapper looks up lower case)."""
    key = surface.lower()
    if synonyms.get(key, value) != value:
        # NOTE: Rasa warns and lets the last definition win; we keep that behaviour.
        logger.warning(
            "synonym %r maps to both %r and %r; using %r",
            surface,
            synonyms[key],
            value,
            value,
        )
    synonyms[key] = value


def extend_unique(target: list[str], items: Iterable[str]) -> None:
    """Append unseen items in order: lookup tables merge across files."""
    seen = set(target)
    for item in items:
        if item not in seen:
            seen.add(item)
            target.append(item)


def read_lookup_file(name: str, data_file: Path, allowed: bool) -> list[str]:
    """Elements of a newline-separated file inside the data file's folder.

    Only data read from the command line (``allowed``) names files: data that came
    over HTTP never does, so the message says nothing of what exists on the
    server. Raises ValueError; the caller knows the data file line to report.
    """
    if not allowed:
        raise ValueError(
            f"lookup table elements must be a list of strings: {name!r} would be a "
            "file name, and training data sent to the server cannot name files"
        )
    folder = data_file.parent.resolve()
    file = (folder / name).resolve()
    if not file.is_relative_to(folder):
        raise ValueError(
            f"lookup table file {name!r} is outside the folder of {data_file.name}"
        )
    try:
        content = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read lookup table file {str(file)!r}: {err}") from err
    return [item.strip() for item in content.splitlines() if item.strip()]


def regex_error(pattern: str) -> str | None:
    """Why ``pattern`` does not compile, or None; checked at load, not at training."""
    return pattern_error(pattern)
