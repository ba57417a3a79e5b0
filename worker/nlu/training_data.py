"""NLU training data in memory, and the helpers the format readers share."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from pathlib import Path
from typing import Any
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


#: Between a retrieval intent and its response key: ``faq/ask_name``.
RETRIEVAL_DELIMITER = "/"


def base_intent(intent: str) -> str:
    """What a classifier learns: ``faq`` of the retrieval intent ``faq/ask_name``."""
    return intent.split(RETRIEVAL_DELIMITER, 1)[0]


@dataclass(frozen=True, slots=True)
class Example:
    """One training utterance; ``intent`` is None for entity-only examples, and
    ``faq/ask_name`` (intent, then response key) for a retrieval intent's."""

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
    #: Responses of retrieval intents (``utter_faq/ask_name``), from ``responses:``
    #: of Rasa 2+ data files or the domain: the response selector reports them.
    responses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def intents(self) -> list[str]:
        """Distinct intent names, sorted (the classifier's label order); a
        retrieval intent's examples count for the intent (``faq``)."""
        return sorted(
            {base_intent(ex.intent) for ex in self.examples if ex.intent is not None}
        )

    @property
    def retrieval_intents(self) -> list[str]:
        """Intents whose examples carry a response key, sorted."""
        return sorted(
            {
                base_intent(ex.intent)
                for ex in self.examples
                if ex.intent is not None and RETRIEVAL_DELIMITER in ex.intent
            }
        )

    def with_base_intents(self) -> NLUData:
        """The same data with every retrieval intent's response key dropped: what
        the intent classifier and the entity extractors learn from."""
        if not self.retrieval_intents:
            return self
        examples = tuple(
            ex
            if ex.intent is None or RETRIEVAL_DELIMITER not in ex.intent
            else Example(ex.text, base_intent(ex.intent), ex.entities)
            for ex in self.examples
        )
        return replace(self, examples=examples)


def merge_data(parts: list[NLUData]) -> NLUData:
    examples: list[Example] = []
    synonyms: dict[str, str] = {}
    regexes: list[tuple[str, str]] = []
    lookups: dict[str, list[str]] = {}
    responses: dict[str, list[dict[str, Any]]] = {}
    for part in parts:
        responses.update(part.responses)
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
        responses=responses,
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
