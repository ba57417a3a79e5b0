"""Reader for Rasa NLU Markdown (``## intent:x``, ``[text](entity)``; see §6.2)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from worker.errors import TrainingDataError
from worker.nlu.training_data import Entity
from worker.nlu.training_data import Example
from worker.nlu.training_data import NLUData
from worker.nlu.training_data import add_synonym
from worker.nlu.training_data import extend_unique
from worker.nlu.training_data import read_lookup_file
from worker.nlu.training_data import regex_error

logger = logging.getLogger(__name__)

_COMMENT = re.compile(r"<!--[\s\S]*?--!*>")
_HEADER = re.compile(r"##\s*(.+?):(.*)")
_ITEM = re.compile(r"[-*+]\s*(.+)")
_ANNOTATION = re.compile(
    r"\[(?P<surface>[^\]]+)\]\((?P<entity>[^:)]+)(?::(?P<value>[^)]+))?\)"
)
_SECTIONS = ("intent", "synonym", "regex", "lookup")


class _MarkdownReader:
    """Rasa's MarkdownReader as a line-by-line state machine over sections."""

    def __init__(self, path: Path, lookup_files: bool) -> None:
        self.path = path
        self.lookup_files = lookup_files
        self.section: str | None = None
        self.title = ""
        self.examples: list[Example] = []
        self.synonyms: dict[str, str] = {}
        self.regexes: list[tuple[str, str]] = []
        self.lookups: dict[str, list[str]] = {}

    def fail(self, message: str, line: int) -> TrainingDataError:
        return TrainingDataError(message, str(self.path), line)

    def read(self, raw: str) -> NLUData:
        for number, line in enumerate(self.strip_comments(raw).splitlines(), 1):
            self.read_line(line.strip(), number)
        return NLUData(
            examples=tuple(self.examples),
            synonyms=self.synonyms,
            regex_features=tuple(self.regexes),
            lookup_tables=tuple((k, tuple(v)) for k, v in self.lookups.items()),
        )

    def strip_comments(self, raw: str) -> str:
        # NOTE: a comment becomes its own newlines so later line numbers stay right.
        text = _COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), raw)
        if "<!--" in text:
            raise self.fail(
                "unclosed comment '<!--'", text.count("\n", 0, text.index("<!--")) + 1
            )
        return text

    def read_line(self, line: str, number: int) -> None:
        if not line:
            return
        header = _HEADER.search(line)
        if header:
            kind, title = header.group(1).strip(), header.group(2).strip()
            if kind not in _SECTIONS:
                raise self.fail(
                    f"unknown section '## {kind}:'; valid section types: "
                    f"{', '.join(_SECTIONS)}",
                    number,
                )
            if not title:
                raise self.fail(f"section '## {kind}:' has no name", number)
            self.section, self.title = kind, title
            return
        item = _ITEM.match(line)
        if self.section is None:
            if item:
                raise self.fail(
                    "list item outside any '## <type>:<name>' section", number
                )
        elif item:
            self.read_item(item.group(1).strip(), number)
        elif self.section == "lookup":
            try:
                elements = read_lookup_file(line, self.path, self.lookup_files)
            except ValueError as err:
                raise self.fail(str(err), number) from err
            extend_unique(self.lookups.setdefault(self.title, []), elements)
        else:
            logger.warning(
                "%s:%d: ignoring a line that is not a list item", self.path, number
            )

    def read_item(self, item: str, number: int) -> None:
        if self.section == "intent":
            self.examples.append(self.parse_example(item, number))
        elif self.section == "synonym":
            add_synonym(self.synonyms, item, self.title)
        elif self.section == "regex":
            error = regex_error(item)
            if error:
                raise self.fail(error, number)
            self.regexes.append((self.title, item))
        else:
            extend_unique(self.lookups.setdefault(self.title, []), (item,))

    def parse_example(self, item: str, number: int) -> Example:
        pieces: list[str] = []
        entities: list[Entity] = []
        cursor = length = 0
        for match in _ANNOTATION.finditer(item):
            pieces.append(item[cursor : match.start()])
            length += match.start() - cursor
            surface, entity = match.group("surface"), match.group("entity").strip()
            value = match.group("value") or surface
            if value != surface:
                add_synonym(self.synonyms, surface, value)
            entities.append(
                Entity(
                    start=length, end=length + len(surface), value=value, entity=entity
                )
            )
            pieces.append(surface)
            length += len(surface)
            cursor = match.end()
        pieces.append(item[cursor:])
        if _broken_annotation(item):
            raise self.fail(
                f"cannot parse the entity annotation in {item!r}; expected "
                "[surface](entity) or [surface](entity:value)",
                number,
            )
        return Example("".join(pieces), self.title, tuple(entities))


def _broken_annotation(item: str) -> bool:
    """True if markup is left once every valid ``[surface](entity)`` is removed."""
    return "](" in _ANNOTATION.sub("", item)


def read_markdown(raw: str, path: Path, *, lookup_files: bool = False) -> NLUData:
    """Parse Markdown NLU data; ``path`` names errors and anchors lookup files (read
    only with ``lookup_files``: see `read_lookup_file`)."""
    return _MarkdownReader(path, lookup_files).read(raw)
