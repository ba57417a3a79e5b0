"""JSON from clients, within what the server can store and answer.

Every JSON a client sends passes ``loads``: request bodies (``api.body``), the
``/intent{...}`` entities of a message's text, the JSON of Markdown stories and of
Rasa NLU data. It refuses what Python's ``json`` accepts but the rest of the server
cannot answer: nesting deeper than ``MAX_DEPTH`` (the response serializer, orjson,
stops at 255 levels, and a stored value comes back wrapped in a tracker), integers
outside 64 bits (msgpack and orjson stop there; Python's int parser raises past
4300 digits), floats that overflow to infinity, ``NaN``/``Infinity``, and unpaired
UTF-16 surrogate escapes (no UTF-8 encoder takes them).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

#: the deepest nesting of arrays and objects a JSON body may have
MAX_DEPTH = 64
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1
_INT_CHARS = len(str(INT_MIN))
_SURROGATE = re.compile("[\ud800-\udfff]")


class JSONLimitError(ValueError):
    """A JSON value within the syntax but beyond what the server can answer."""

    def __init__(self, message: str, limit: str, value: Any):
        super().__init__(message)
        self.limit = limit
        self.value = value


def _int(text: str) -> int:
    value = int(text) if len(text) <= _INT_CHARS else None
    if value is None or not INT_MIN <= value <= INT_MAX:
        raise JSONLimitError(
            "an integer outside 64 bits (-2**63 to 2**64-1)", "integer", "64 bits"
        )
    return value


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONLimitError(
            "a number too large for a double (over 1.8e308)", "number", "1.8e308"
        )
    return value


def _constant(text: str) -> Any:
    raise JSONLimitError(f"{text}, which is not JSON", "number", "finite")


def _too_deep() -> JSONLimitError:
    return JSONLimitError(f"nesting deeper than {MAX_DEPTH} levels", "depth", MAX_DEPTH)


def _unpaired() -> JSONLimitError:
    return JSONLimitError("an unpaired UTF-16 surrogate escape", "string", "UTF-8")


def _check(value: Any, strings: bool) -> None:
    """Depth (and, when the text has ``\\u`` escapes, unpaired surrogates) of a
    parsed body; iterative, so no input can exhaust the stack."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            if strings and any(_SURROGATE.search(k) for k in node):
                raise _unpaired()
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            children = (node,)
            depth -= 1
        for child in children:
            if isinstance(child, dict | list):
                if depth >= MAX_DEPTH:
                    raise _too_deep()
                stack.append((child, depth + 1))
            elif strings and isinstance(child, str) and _SURROGATE.search(child):
                raise _unpaired()


def loads(text: str) -> Any:
    """``json.loads`` within the limits: ``JSONLimitError`` names the one broken;
    bad syntax stays ``json.JSONDecodeError``."""
    try:
        value = json.loads(
            text, parse_int=_int, parse_float=_float, parse_constant=_constant
        )
    except RecursionError:
        raise _too_deep() from None
    # PERF: fewer brackets than the limit cannot nest deeper than it; a surrogate
    # can only come from a \u escape.
    strings = "\\u" in text
    if strings or text.count("[") + text.count("{") > MAX_DEPTH:
        _check(value, strings)
    return value
