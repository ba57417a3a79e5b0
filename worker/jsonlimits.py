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

import numpy as np
import orjson

#: the deepest nesting of arrays and objects a JSON body may have
MAX_DEPTH = 64
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1
_INT_CHARS = len(str(INT_MIN))
_SURROGATE = re.compile("[\ud800-\udfff]")
#: a run of 19 digits, once every digit is a zero (``_DIGITS``)
_LONG_NUMBER = b"0" * 19
_DIGITS = bytes.maketrans(b"123456789", b"000000000")
_NOT_STRUCTURE = bytes(set(range(256)) - set(b'[]{}"'))
_STRINGS = re.compile(rb'"[^"]*"')
#: an opening bracket is one level down (1), a closing one up (-1 as int8)
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


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


def _depth(raw: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest, read from its text: only
    the brackets outside strings count (escaped backslashes and quotes are dropped
    first, so every quote left opens or closes a string)."""
    raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    structure = _STRINGS.sub(b"", raw.translate(None, _NOT_STRUCTURE))
    steps = np.frombuffer(structure.translate(_STEPS), dtype=np.int8)
    return int(steps.cumsum(dtype=np.int64).max()) if steps.size else 0


def _check_strings(value: Any) -> None:
    """Refuse unpaired surrogates, which ``json`` decodes from ``\\u`` escapes."""
    stack = [value]
    while stack:
        node = stack.pop()
        if type(node) is str:
            if _SURROGATE.search(node):
                raise _unpaired()
        elif type(node) is dict:
            stack.extend(node)
            stack.extend(node.values())
        elif type(node) is list:
            stack.extend(node)


def _exact(text: str) -> Any:
    """The slow, exact reading: every limit checked where ``json`` meets it."""
    value = json.loads(
        text, parse_int=_int, parse_float=_float, parse_constant=_constant
    )
    if "\\u" in text:
        _check_strings(value)
    return value


def loads(text: str) -> Any:
    """``json.loads`` within the limits: ``JSONLimitError`` names the one broken;
    bad syntax stays ``json.JSONDecodeError``.

    PERF: the depth is read from the text before parsing, only when there are more
    brackets than the limit. orjson reads a body in a fraction of ``json``'s time
    and itself refuses NaN, Infinity, overflowing floats and unpaired surrogates,
    but turns integers past 64 bits into floats: a text with a run of 19 digits or
    more, like any text orjson refuses, is read exactly (which also tells a limit
    from bad syntax).
    """
    raw = text.encode()
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _depth(raw) > MAX_DEPTH:
        raise _too_deep()
    if _LONG_NUMBER in raw.translate(_DIGITS):
        return _exact(text)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _exact(text)
