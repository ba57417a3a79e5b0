"""What every converted bAbI bot has: its files, and helpers to write them.

A converted bot is what a developer would write for dialogd: ``domain.yml``, Markdown
stories, Markdown NLU data and a ``config.yml`` with the pipeline and policies.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import yaml

from bench.babi.data import Dialogue

#: Spans in a user text: (start, end, entity type, canonical value).
Span = tuple[int, int, str, str]
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True, slots=True)
class Gold:
    """The action that said a gold bot sentence (and the restaurant it offered)."""

    action: str
    target: str | None = None


#: The gold actions of a dialogue's turns; None where training never had one.
GoldFn = Callable[[Dialogue], list[Gold | None]]


@dataclass(frozen=True)
class BotFiles:
    domain: dict[str, Any]
    stories: str
    nlu: str
    config: dict[str, Any]
    #: stories of the dev dialogues, for early stopping
    validation_stories: str = ""
    #: the converter's reading of any dialogue, for playing with the gold history
    gold: GoldFn | None = field(default=None, compare=False)
    #: what the client's code knows besides the domain (a restaurant database)
    knowledge: dict[str, Any] = field(default_factory=dict)

    def write(self, directory: str | Path) -> Path:
        root = Path(directory)
        (root / "data").mkdir(parents=True, exist_ok=True)
        (root / "validation").mkdir(exist_ok=True)
        (root / "validation" / "stories.md").write_text(self.validation_stories)
        for name, data in (("domain.yml", self.domain), ("config.yml", self.config)):
            text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
            (root / name).write_text(text)
        (root / "data" / "stories.md").write_text(self.stories)
        (root / "data" / "nlu.md").write_text(self.nlu)
        (root / "client.json").write_text(json.dumps(self.knowledge, indent=1))
        return root


def render(template: str, slots: dict[str, Any]) -> str:
    """A template's text with ``{slot}`` filled from the tracker's slots."""
    return _PLACEHOLDER.sub(lambda m: str(slots.get(m[1]) or ""), template)


def user_line(intent: str, spans: Sequence[Span]) -> str:
    """A story's user line: ``* intent{"type": "value", ...}``."""
    entities: dict[str, Any] = {}
    for _, _, kind, value in spans:
        entities[kind] = value
    if not entities:
        return f"* {intent}"
    return f"* {intent}{json.dumps(entities, ensure_ascii=False)}"


def marked_up(text: str, spans: Sequence[Span]) -> str:
    """NLU Markdown: ``[surface](type)`` or ``[surface](type:value)``."""
    out, last = [], 0
    for start, end, kind, value in sorted(spans):
        surface = text[start:end]
        out.append(text[last:start])
        label = kind if surface == value else f"{kind}:{value}"
        out.append(f"[{surface}]({label})")
        last = end
    out.append(text[last:])
    return "".join(out)


def nlu_markdown(examples: Iterable[tuple[str, str, Sequence[Span]]]) -> str:
    """``## intent:x`` sections, each example once, in first-seen order."""
    by_intent: dict[str, dict[str, None]] = {}
    for intent, text, spans in examples:
        by_intent.setdefault(intent, {})[marked_up(text, spans)] = None
    parts = []
    for intent, lines in by_intent.items():
        parts.append(f"## intent:{intent}")
        parts.extend(f"- {line}" for line in lines)
        parts.append("")
    return "\n".join(parts)


_CONSONANTS = "bcdfghjklmnprstvz"
_VOWELS = "aeiou"


def pseudo_words(n: int, seed: int, avoid: Iterable[str] = ()) -> list[str]:
    """``n`` made-up lowercase words (1-3 syllables), none of them in ``avoid``.

    NOTE: the NLU data gets copies of its examples with these in place of entity
    values, so the entity extractor learns the context ("with ... food") and not
    just the handful of values in the training dialogues.
    """
    rng = random.Random(seed)
    seen = set(avoid)
    out: list[str] = []
    while len(out) < n:
        word = "".join(
            rng.choice(_CONSONANTS) + rng.choice(_VOWELS)
            for _ in range(rng.randint(1, 3))
        )
        if rng.random() < 0.5:
            word += rng.choice(_CONSONANTS)
        if word not in seen:
            seen.add(word)
            out.append(word)
    return out


def find_values(text: str, vocab: dict[str, str]) -> list[Span]:
    """Whole-word matches of ``surface -> (type)`` vocabulary entries, longest first,
    without overlaps."""
    spans: list[Span] = []
    taken = [False] * len(text)
    for surface in sorted(vocab, key=len, reverse=True):
        for m in re.finditer(rf"(?<![\w']){re.escape(surface)}(?![\w'])", text):
            if any(taken[m.start() : m.end()]):
                continue
            for i in range(m.start(), m.end()):
                taken[i] = True
            kind, _, value = vocab[surface].partition(":")
            spans.append((m.start(), m.end(), kind, value or surface))
    return sorted(spans)


def substitute(text: str, spans: Sequence[Span], values: dict[int, str]) -> tuple:
    """``text`` with span ``i`` replaced by ``values[i]``; returns (text, spans)."""
    out, new_spans, last, shift = [], [], 0, 0
    for i, (start, end, kind, value) in enumerate(spans):
        out.append(text[last:start])
        if i in values:
            word = values[i]
            new_spans.append((start + shift, start + shift + len(word), kind, word))
            out.append(word)
            shift += len(word) - (end - start)
        else:
            new_spans.append((start + shift, end + shift, kind, value))
            out.append(text[start:end])
        last = end
    out.append(text[last:])
    return "".join(out), new_spans
