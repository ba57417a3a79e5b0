"""Rule-based entity extractors: numbers, and direct regex / lookup-table matches.

They learn nothing from examples, so they work from the first training example on
and sit next to (usually after) the statistical `PerceptronEntityExtractor`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import Self

import numpy as np

from worker.errors import InvalidConfig
from worker.nlu.base import Component
from worker.nlu.base import Message
from worker.nlu.base import check_param
from worker.nlu.patterns import ClientPattern
from worker.nlu.patterns import PatternError
from worker.nlu.patterns import compile_data_pattern
from worker.nlu.training_data import NLUData

_UNITS = {
    word: i
    for i, word in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
        ]
    )
}
_TENS = {
    word: 10 * i
    for i, word in enumerate(
        ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"],
        start=2,
    )
}
_SCALES = {"thousand": 10**3, "million": 10**6, "billion": 10**9}
_NUMBER_WORDS = {**_UNITS, **_TENS, "hundred": 100, "dozen": 12, **_SCALES}

_DIGITS = re.compile(
    r"(?<![\w.,])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w]|[.,]\d)"
)
_WORD = re.compile(r"[a-z]+", re.IGNORECASE)


def _kind(word: str) -> str | None:
    if word in _UNITS:
        return "teen" if _UNITS[word] >= 10 else "unit"
    if word in _TENS:
        return "ten"
    if word in ("hundred", "dozen"):
        return "hundred"
    return "scale" if word in _SCALES else None


#: Which kind of number word may follow which ("twenty one", "five hundred",
#: "fifteen hundred", "two thousand"); None is the start of the phrase.
_FOLLOWS = {
    "unit": {None, "ten", "hundred", "scale"},
    "teen": {None, "hundred", "scale"},
    "ten": {None, "hundred", "scale"},
    "hundred": {None, "unit", "teen"},
    "scale": {None, "unit", "teen", "ten", "hundred"},
}


def words_to_number(words: Sequence[str]) -> int | None:
    """The value of number words (``twenty one``, ``a hundred and five``), or None.

    ``a`` counts as one only before ``hundred``/``dozen``/a scale; ``and`` only
    after ``hundred`` or a scale and before more number words. A phrase that is not
    one well-formed number (``one two``, ``one and two``) gives None.
    """
    total = current = 0
    last: str | None = None
    lowered = [w.lower() for w in words]
    for i, word in enumerate(lowered):
        following = lowered[i + 1] if i + 1 < len(lowered) else ""
        if word == "a" and last is None and _kind(following) in ("hundred", "scale"):
            current = 1
            last = "unit"
            continue
        if word == "and":
            if last in ("hundred", "scale") and _kind(following) in (
                "unit",
                "teen",
                "ten",
            ):
                continue
            return None
        kind = _kind(word)
        if kind is None or last not in _FOLLOWS[kind] or (word == "zero" and words[1:]):
            return None
        if kind in ("unit", "teen", "ten"):
            current += _UNITS.get(word, 0) + _TENS.get(word, 0)
        elif kind == "hundred":
            current = (current or 1) * _NUMBER_WORDS[word]
        else:
            total += (current or 1) * _SCALES[word]
            current = 0
        last = kind
    return total + current if last is not None else None


class NumberExtractor(Component):
    """Finds numbers written in digits (``42``, ``1,500``, ``3.5``) or English words
    (``twenty one``, ``a hundred and five``); the value is an int or float."""

    provides = frozenset({"entities"})
    fitted_attribute = "fitted_"

    def __init__(self, entity: str = "number") -> None:
        self.entity = entity

    def fit(self, messages: Sequence[Message], data: NLUData) -> Self:
        """Check the entity name; nothing is learned."""
        check_param(
            "entity",
            self.entity,
            isinstance(self.entity, str) and bool(self.entity),
            "a non-empty string",
        )
        self.fitted_ = True
        return self

    def extract(self, text: str) -> list[dict[str, Any]]:
        """Number entities of ``text``, in text order."""
        found = []
        for match in _DIGITS.finditer(text):
            raw = match.group().replace(",", "")
            value: float | int = float(raw) if "." in raw else int(raw)
            found.append((match.start(), match.end(), value))
        words = [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]
        i = 0
        while i < len(words):
            best = None
            # Longest run of number words starting here whose gaps are spaces,
            # hyphens or "and" ("twenty-one", "one hundred and five").
            j = i
            while j < len(words) and words[j][0].lower() in (
                *_NUMBER_WORDS,
                "a",
                "and",
            ):
                if j > i and text[words[j - 1][2] : words[j][1]] not in (" ", "-"):
                    break
                number = words_to_number([w for w, _, _ in words[i : j + 1]])
                if number is not None:
                    best = (j, number)
                j += 1
            if best is None:
                i += 1
                continue
            end_index, value = best
            found.append((words[i][1], words[end_index][2], value))
            i = end_index + 1
        found.sort()
        return [
            {
                "start": start,
                "end": end,
                "value": value,
                "entity": self.entity,
                "confidence": 1.0,
                "extractor": type(self).__name__,
            }
            for start, end, value in found
        ]

    def process(self, message: Message) -> None:
        self.check_fitted()
        message.entities.extend(self.extract(message.text))

    def to_arrays(self) -> dict[str, np.ndarray]:
        self.check_fitted()
        return {}

    def _set_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.fit([], NLUData())


class RegexEntityExtractor(Component):
    """Direct matches of the data's regex features and lookup tables as entities.

    The entity type is the regex or lookup table name. A match that overlaps an
    entity already found (by an earlier extractor) is dropped.
    """

    provides = frozenset({"entities"})
    fitted_attribute = "names_"

    def __init__(
        self,
        use_regexes: bool = True,
        use_lookup_tables: bool = True,
        case_sensitive: bool = False,
    ) -> None:
        self.use_regexes = use_regexes
        self.use_lookup_tables = use_lookup_tables
        self.case_sensitive = case_sensitive

    def fit(self, messages: Sequence[Message], data: NLUData) -> Self:
        """Collect the patterns of the training data."""
        for name in ("use_regexes", "use_lookup_tables", "case_sensitive"):
            value = getattr(self, name)
            check_param(name, value, isinstance(value, bool), "a bool")
        patterns = []
        if self.use_regexes:
            patterns += list(data.regex_features)
        if self.use_lookup_tables:
            patterns += [
                (name, lookup_regex(elements))
                for name, elements in data.lookup_tables
                if elements
            ]
        self._compile(patterns)
        return self

    def _compile(self, patterns: Sequence[tuple[str, str]]) -> None:
        self.names_ = np.array([name for name, _ in patterns], dtype=str)
        self.sources_ = np.array([source for _, source in patterns], dtype=str)
        self._regexes = [
            (name, _compile(source, not self.case_sensitive))
            for name, source in patterns
        ]

    def process(self, message: Message) -> None:
        self.check_fitted()
        taken = [(e["start"], e["end"]) for e in message.entities]
        for name, regex in self._regexes:
            for match in regex.finditer(message.text):
                start, end = match.span()
                if start == end or any(s < end and e > start for s, e in taken):
                    continue
                taken.append((start, end))
                message.entities.append(
                    {
                        "start": start,
                        "end": end,
                        "value": match.group(),
                        "entity": name,
                        "confidence": 1.0,
                        "extractor": type(self).__name__,
                    }
                )

    def to_arrays(self) -> dict[str, np.ndarray]:
        self.check_fitted()
        return {"names_": self.names_, "sources_": self.sources_}

    def _set_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        names, sources = arrays["names_"].tolist(), arrays["sources_"].tolist()
        self._compile(list(zip(names, sources, strict=True)))


def _compile(source: str, ignore_case: bool) -> ClientPattern:
    try:
        return compile_data_pattern(source, ignore_case=ignore_case)
    except PatternError as err:
        raise InvalidConfig(str(err)) from err


def lookup_regex(elements: Sequence[str]) -> str:
    """One alternation of the elements, longest first, bounded by non-word chars."""
    options = "|".join(re.escape(e) for e in sorted(elements, key=len, reverse=True))
    return rf"(?<!\w)(?:{options})(?!\w)"
