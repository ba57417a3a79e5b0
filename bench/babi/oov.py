"""An out-of-vocabulary copy of a split: entity values replaced by unseen ones.

The official ``tst-OOV`` files use cuisines and cities that never occur in the
training dialogues (they are only in ``dialog-babi-kb-all.txt``). We are not given
those files, so we build the same kind of copy of any split: every cuisine and
city, inside sentences and inside restaurant names, phone numbers and addresses, is
mapped to one of the KB's unseen values. Numbers of people and price ranges stay.
"""

from __future__ import annotations

import re

#: In-vocabulary value -> the KB's out-of-vocabulary value (a fixed bijection).
OOV_MAP = {
    "british": "cantonese",
    "french": "japanese",
    "indian": "korean",
    "italian": "thai",
    "spanish": "vietnamese",
    "bombay": "bangkok",
    "london": "beijing",
    "madrid": "hanoi",
    "paris": "seoul",
    "rome": "tokyo",
}
_WORD = re.compile(r"[a-z]+")


def oov_text(text: str, mapping: dict[str, str] = OOV_MAP) -> str:
    """The file's text with every mapped value replaced, also inside ``a_b_c`` names."""
    return _WORD.sub(lambda m: mapping.get(m[0], m[0]), text)
