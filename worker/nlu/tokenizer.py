"""Whitespace/punctuation tokenizer that keeps character offsets for entity spans."""

from __future__ import annotations

import re
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Self

import numpy as np

from worker.errors import InvalidConfig
from worker.nlu.base import Component
from worker.nlu.base import Message
from worker.nlu.base import Token
from worker.nlu.patterns import ClientPattern
from worker.nlu.patterns import PatternError
from worker.nlu.patterns import compile_client
from worker.nlu.training_data import NLUData

#: Words (keeping inner apostrophes, hyphens and dots: "don't", "pre-party", "3.5"),
#: else single punctuation characters, so "R&B" gives R, &, B.
DEFAULT_PATTERN = r"\w+(?:['\u2019.\-]\w+)*|[^\w\s]"


class Tokenizer(Component):
    """Splits text into tokens; case is kept, featurizers lower-case what they need."""

    provides = frozenset({"tokens"})
    fitted_attribute = "regex_"

    def __init__(self, pattern: str = DEFAULT_PATTERN) -> None:
        self.pattern = pattern

    def fit(self, messages: Sequence[Message], data: NLUData) -> Self:
        """Compile the pattern; there is nothing to learn from the data."""
        self.regex_ = _compile(self.pattern)
        return self

    def tokenize(self, text: str) -> list[Token]:
        """Tokens with their ``[start, end)`` character spans in ``text``."""
        self.check_fitted()
        # PERF: tuple.__new__ skips the named tuple's Python-level constructor.
        return [
            tuple.__new__(Token, (m[0], m.start(), m.end()))
            for m in self.regex_.finditer(text)
        ]

    def process(self, message: Message) -> None:
        message.tokens = self.tokenize(message.text)

    def to_arrays(self) -> dict[str, np.ndarray]:
        self.check_fitted()
        return {}

    def _set_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.regex_ = _compile(self.pattern)


def _compile(pattern: str) -> ClientPattern:
    """Ours on ``re`` (its ``\\w`` is Unicode); one from a config on RE2."""
    if pattern == DEFAULT_PATTERN:
        return re.compile(pattern)
    try:
        return compile_client(pattern)
    except PatternError as err:
        raise InvalidConfig(f"Tokenizer pattern: {err}") from err
