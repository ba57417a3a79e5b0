"""Rasa Core's RegexInterpreter: ``/intent@0.7{"entity": "value"}`` messages.

Clients use these to bypass NLU (buttons, tests). The grammar and its quirks are
Rasa Core's: every entity spans the whole JSON part, and bad JSON or a bad
confidence only logs a warning.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from worker import jsonlimits

logger = logging.getLogger(__name__)

INTENT_MESSAGE_PREFIX = "/"

_MESSAGE = re.compile(r"^[/]?([^{@]+)(@[0-9.]+)?([{].+)?")


def parse_intent_message(text: str) -> dict[str, Any]:
    """Parse ``[/]intent[@confidence][{json}]``; the result's text starts with /."""
    intent, confidence, entities = _extract(text)
    if not text.startswith(INTENT_MESSAGE_PREFIX):
        text = INTENT_MESSAGE_PREFIX + text
    return {
        "text": text,
        "intent": {"name": intent, "confidence": confidence},
        "intent_ranking": [{"name": intent, "confidence": confidence}],
        "entities": entities,
    }


def _extract(text: str) -> tuple[str | None, float, list[dict[str, Any]]]:
    match = _MESSAGE.search(text)
    if match is None:
        logger.warning("failed to parse an intent and entities from %r", text)
        return None, 0.0, []
    confidence = _confidence(match.group(2))
    entities = _entities(match.group(3), match.start(3), match.end(3), text)
    return match.group(1).strip(), confidence, entities


def _confidence(raw: str | None) -> float:
    if raw is None:
        return 1.0
    try:
        return float(raw.strip()[1:])
    except ValueError:
        logger.warning("invalid intent confidence %r; using 0.0", raw)
        return 0.0


def _entities(raw: str | None, start: int, end: int, text: str) -> list[dict[str, Any]]:
    if raw is None or not raw.strip():
        return []
    try:
        parsed = jsonlimits.loads(raw)
    except (json.JSONDecodeError, jsonlimits.JSONLimitError) as err:
        logger.warning("ignoring the entities of %r: invalid JSON (%s)", text, err)
        return []
    if not isinstance(parsed, dict):
        logger.warning("ignoring the entities of %r: not a JSON object", text)
        return []
    entities = []
    for name, values in parsed.items():
        for value in values if isinstance(values, list) else [values]:
            entities.append(
                {"entity": name, "start": start, "end": end, "value": value}
            )
    return entities
