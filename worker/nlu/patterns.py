"""Regular expressions that come from data: run in linear time, or refused.

A pattern in training data, a pipeline config or a model archive is written by a
client. Python's ``re`` backtracks: ``(a+)+$`` on 31 characters holds a worker for
half a minute. Such patterns are compiled by RE2 (``google-re2``), whose matching
time is linear in the text; what RE2 cannot run in bounded time (backreferences,
lookarounds) does not compile, and is refused by name at training time.

NOTE: in RE2, ``\\w``, ``\\d`` and ``\\b`` are ASCII; ``\\p{L}`` and ``\\p{N}`` match
any letter or digit.
"""

from __future__ import annotations

import re
from typing import Any

import re2

#: what a compiled client pattern offers (``finditer``, ``search``, match spans)
ClientPattern = Any
#: a lookup table's regex as we build it: literals (``re.escape``d) between
#: word-boundary lookarounds. It has no repetition, so ``re`` runs it in time
#: linear in the text times the table's size; RE2 has no lookarounds.
_LITERAL = r"(?:[^\\()\[\]{}*+?|^$.]|\\.)*"
_LOOKUP = re.compile(
    rf"(?:\(\?i\))?\(\?<!\\w\)\(\?:{_LITERAL}(?:\|{_LITERAL})*\)\(\?!\\w\)"
)
#: RE2's memory budget per pattern; a pattern whose automaton needs more fails
MAX_MEMORY = 8 << 20


class PatternError(ValueError):
    """A client pattern that RE2 cannot run; the message names the pattern."""


def compile_client(pattern: str, *, ignore_case: bool = False) -> ClientPattern:
    """``pattern`` compiled by RE2, or PatternError saying why not."""
    if not isinstance(pattern, str) or not pattern:
        raise PatternError(f"a regex must be a non-empty string, not {pattern!r}")
    options = re2.Options()
    options.case_sensitive = not ignore_case
    options.max_mem = MAX_MEMORY
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as err:
        reason = err.args[0] if err.args else err
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(
            f"invalid regex {pattern!r}: {reason} (patterns run in linear "
            "time: no backreferences or lookarounds)"
        ) from err


def pattern_error(pattern: str) -> str | None:
    """Why ``pattern`` cannot be used, or None."""
    try:
        compile_client(pattern)
    except PatternError as err:
        return str(err)
    return None


def compile_data_pattern(source: str, *, ignore_case: bool = False) -> ClientPattern:
    """A pattern from training data or a model: a lookup table's alternation of
    literals runs on ``re`` (it needs lookarounds), anything else on RE2."""
    if isinstance(source, str) and _LOOKUP.fullmatch(source):
        return re.compile(source, re.IGNORECASE if ignore_case else 0)
    return compile_client(source, ignore_case=ignore_case)
