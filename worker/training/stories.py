"""Story Markdown (Rasa Core 0.14 docs, "Stories") read into story steps joined
by checkpoints.

Every mistake is a ``TrainingDataError`` naming the file and line: a story that is
silently skipped trains a bot that silently misbehaves.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from worker import jsonlimits
from worker.domain import Domain
from worker.errors import InvalidEvent
from worker.errors import TrainingDataError
from worker.event_codec import event_from_dict
from worker.events import EVENT_TYPES
from worker.events import ActionExecuted
from worker.events import Event
from worker.events import SlotSet
from worker.events import UserUttered

logger = logging.getLogger(__name__)

STORY_START = "STORY_START"
GENERATED_PREFIX = "GENR_"
NLU_HEADER = re.compile(r"^##\s*(intent|synonym|regex|lookup):", re.MULTILINE)
_COMMENT = re.compile(r"<!--.*?-->")
_NAME_AND_JSON = re.compile(r"^(?P<name>[^{]+?)\s*(?P<json>\{.*\})?$")
_USER = re.compile(
    r"^/?(?P<intent>[^{@:\s]+)\s*(?:@(?P<conf>[0-9]*\.?[0-9]+))?\s*(?P<json>\{.*\})?$"
)
_E2E = re.compile(r"^(?P<intent>[^{@:\s]+)\s*:\s*(?P<text>.*)$")
_MARKUP = re.compile(
    r"\[(?P<text>[^\]]+)\]\((?P<entity>[^:)]+)(?::(?P<value>[^)]+))?\)"
)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A named junction between story steps; ``conditions`` are required slots."""

    name: str
    conditions: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class Rule:
    """What makes a step a Rasa 2+ rule: the ``condition`` that must hold before
    its steps (slots and active loop), whether it only applies at the start of a
    conversation, and whether it ends by listening for the user."""

    condition: tuple[Event, ...] = ()
    conversation_start: bool = False
    wait_for_user_input: bool = True


@dataclass(frozen=True, slots=True)
class StoryStep:
    """A run of events between start and end checkpoints (one ``##`` block or part).

    ``events`` holds the story's own events; user turns are ``UserUttered`` and the
    implicit ``action_listen`` and slot events are added by the generator.
    """

    block_name: str
    start_checkpoints: tuple[Checkpoint, ...]
    events: tuple[Event, ...]
    end_checkpoints: tuple[Checkpoint, ...]
    source: str = ""
    rule: Rule | None = None

    @property
    def starts_story(self) -> bool:
        return any(c.name == STORY_START for c in self.start_checkpoints)


@dataclass
class _Draft:
    start: list[Checkpoint]
    events: list[Event] = field(default_factory=list)
    end: list[Checkpoint] = field(default_factory=list)

    def copy(self) -> _Draft:
        return _Draft(list(self.start), list(self.events), list(self.end))


class Block:
    """One ``##`` block; OR lines fork it into copies joined by a new checkpoint."""

    def __init__(self, name: str, source: str, rule: Rule | None = None):
        self.name = name
        self.source = source
        self.rule = rule
        self.start: list[Checkpoint] = []
        self.done: list[_Draft] = []
        self.current: list[_Draft] = []

    def checkpoint(self, cp: Checkpoint) -> bool:
        """Add a start or end checkpoint; False for conditions on an end one."""
        if not self.current:
            self.start.append(cp)
            return True
        if cp.conditions:
            return False
        for draft in self.current:
            if cp not in draft.end:
                draft.end.append(cp)
        return True

    def user(self, messages: list[UserUttered], fork_name: str) -> None:
        self.alternatives([[m] for m in messages], fork_name)

    def alternatives(self, options: list[list[Event]], fork_name: str) -> None:
        """One of ``options`` happens next (``OR``): each is a fork of the block,
        joined again at a generated checkpoint."""
        self._ensure_open()
        if len(options) == 1:
            for draft in self.current:
                draft.events.extend(options[0])
            return
        joint = Checkpoint(fork_name)
        forks = []
        for draft in self.current:
            for events in options:
                fork = draft.copy()
                fork.events.extend(events)
                fork.end = [joint]
                forks.append(fork)
        self.current = forks

    def event(self, event: Event) -> None:
        self._ensure_open()
        for draft in self.current:
            draft.events.append(event)

    def _ensure_open(self) -> None:
        """Steps that already end move to ``done``; new ones start at their ends."""
        finished = [d for d in self.current if d.end]
        unfinished = [d for d in self.current if not d.end]
        self.done.extend(finished)
        if unfinished:
            self.current = unfinished
            return
        if self.current:
            names = dict.fromkeys(c.name for d in self.current for c in d.end)
            start = [Checkpoint(n) for n in names]
        else:
            start = list(self.start) or [Checkpoint(STORY_START)]
        self.current = [_Draft(start)]

    def steps(self) -> list[StoryStep]:
        return [
            StoryStep(
                self.name,
                tuple(d.start),
                tuple(d.events),
                tuple(d.end),
                self.source,
                self.rule,
            )
            for d in [*self.done, *self.current]
        ]


class _Reader:
    """Reads one file line by line; ``fail`` builds the error for the current line."""

    def __init__(self, domain: Domain, path: str):
        self.domain = domain
        self.path = path
        self.line = 0
        self.blocks: list[Block] = []

    def fail(self, message: str) -> TrainingDataError:
        return TrainingDataError(message, self.path, self.line)

    def read(self, text: str) -> list[StoryStep]:
        in_comment = False
        for self.line, raw in enumerate(text.splitlines(), start=1):
            line, in_comment = _strip_comments(raw, in_comment)
            if line:
                self._line(line)
        return [step for block in self.blocks for step in block.steps()]

    def _line(self, line: str) -> None:
        if line.startswith("#"):
            source = f"{self.path}:{self.line}"
            self.blocks.append(Block(line.lstrip("#").strip(), source))
            return
        if line[0] not in ">*-":
            raise self.fail(
                f"cannot read line {line!r}: expected '##', '>', '*' or '-'"
            )
        if not self.blocks:
            raise self.fail("a story line before the first '## story name' line")
        body = line[1:].strip()
        if line[0] == ">":
            self._checkpoint(body)
        elif line[0] == "*":
            if not body.startswith("form:"):
                self._user(body)
        elif not body.startswith("form:"):
            for event in self._events(body):
                self.blocks[-1].event(event)

    def _checkpoint(self, body: str) -> None:
        name, data = self._name_and_json(body)
        if not self.blocks[-1].checkpoint(Checkpoint(name, data or {})):
            raise self.fail(f"checkpoint '{name}': only start checkpoints take slots")

    def _user(self, body: str) -> None:
        alternatives = [part.strip() for part in body.split(" OR ")]
        if not all(alternatives):
            raise self.fail("empty alternative in a user line")
        digest = hashlib.sha1(f"{self.path}:{self.line}".encode()).hexdigest()[:8]
        messages = [self._message(text) for text in alternatives]
        self.blocks[-1].user(messages, f"{GENERATED_PREFIX}OR_{digest}")

    def _message(self, text: str) -> UserUttered:
        e2e = _E2E.match(text)
        if e2e:
            return _e2e_message(e2e["intent"], e2e["text"].strip())
        match = _USER.match(text)
        if match is None:
            raise self.fail(f"cannot read user message {text!r}")
        intent = match["intent"]
        confidence = float(match["conf"]) if match["conf"] else 1.0
        entities = []
        for key, value in (self._json(match["json"]) or {}).items():
            for item in value if isinstance(value, list) else [value]:
                entities.append({"entity": key, "value": item})
        if intent not in self.domain.intent_by_name:
            logger.warning(
                "%s:%d: intent '%s' is not in the domain", self.path, self.line, intent
            )
        parse_data = {
            "intent": {"name": intent, "confidence": confidence},
            "entities": entities,
            "text": text,
        }
        return UserUttered(text=text, parse_data=parse_data)

    def _events(self, body: str) -> list[Event]:
        """A ``-`` line: slots, any event type by name, else a domain action."""
        name, data = self._name_and_json(body)
        if name == "slot":
            return self._slots(data)
        if name in EVENT_TYPES:
            try:
                return [event_from_dict({**(data or {}), "event": name}, _zero)]
            except InvalidEvent as err:
                raise self.fail(str(err)) from err
        if data is not None:
            raise self.fail(f"'{name}' is not an event type; known: {_known_events()}")
        if name not in self.domain.action_index:
            raise self.fail(f"action '{name}' is not in the domain")
        return [ActionExecuted(name=name)]

    def _slots(self, data: dict[str, Any] | None) -> list[Event]:
        if not data:
            raise self.fail('a slot line needs a JSON object: slot{"name": value}')
        unknown = [k for k in data if k not in self.domain.slot_by_name]
        if unknown:
            raise self.fail(f"unknown slot(s) {unknown}")
        return [SlotSet(name=k, value=v) for k, v in data.items()]

    def _name_and_json(self, body: str) -> tuple[str, dict[str, Any] | None]:
        match = _NAME_AND_JSON.match(body)
        if match is None:
            raise self.fail(f"cannot read {body!r}")
        return match["name"], self._json(match["json"])

    def _json(self, text: str | None) -> dict[str, Any] | None:
        if text is None:
            return None
        try:
            data = jsonlimits.loads(text)
        except json.JSONDecodeError as err:
            raise self.fail(f"invalid JSON {text!r}: {err.msg}") from err
        except jsonlimits.JSONLimitError as err:
            raise self.fail(f"the JSON {text[:80]!r} has {err}") from err
        if not isinstance(data, dict):
            raise self.fail(f"expected a JSON object, got {text!r}")
        return data


def _zero() -> float:
    return 0.0


def _known_events() -> str:
    return ", ".join(sorted(EVENT_TYPES))


def _strip_comments(raw: str, in_comment: bool) -> tuple[str, bool]:
    """The line without ``<!-- -->`` comments, which may span lines."""
    line = raw
    if in_comment:
        end = line.find("-->")
        if end < 0:
            return "", True
        line = line[end + 3 :]
    line = _COMMENT.sub("", line)
    start = line.find("<!--")
    if start >= 0:
        return line[:start].strip(), True
    return line.strip(), False


def _e2e_message(intent: str, marked_up: str) -> UserUttered:
    """An end-to-end user line: plain text, and the markup becomes entities."""
    entities = []
    text = ""
    last = 0
    for m in _MARKUP.finditer(marked_up):
        text += marked_up[last : m.start()]
        start = len(text)
        text += m["text"]
        entities.append(
            {
                "entity": m["entity"],
                "value": m["value"] or m["text"],
                "start": start,
                "end": len(text),
            }
        )
        last = m.end()
    text += marked_up[last:]
    parse_data = {
        "intent": {"name": intent, "confidence": 1.0},
        "entities": entities,
        "text": text,
    }
    return UserUttered(text=text, parse_data=parse_data)


def parse_stories(
    text: str, domain: Domain, path: str = "<stories>"
) -> list[StoryStep]:
    """The story steps of one Markdown text."""
    return _Reader(domain, path).read(text)
