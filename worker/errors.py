"""The engine's exception tree: everything ``worker`` raises on purpose.

``api/errors.py`` maps these to HTTP responses in one place; nothing here knows HTTP.
"""

from __future__ import annotations

import re

#: the folders of an absolute path two or more deep (not of a URL, not an intent
#: like ``/greet``): ``/tmp/dialogd-check-x/``
_FOLDERS = re.compile(r"(?<![\w.:/~-])/(?:[^/\s'\"()\[\],:]+/){2,}")


def public_message(message: str) -> str:
    """``message`` without the folders of the server paths it names: an error
    answered to a client says which file, never where the server keeps it."""
    return _FOLDERS.sub("", message) if "/" in message else message


class DialogdError(Exception):
    """Root of every error the engine raises on purpose."""


class TrainingDataError(DialogdError, ValueError):
    """A domain, story or NLU file is malformed; names the file and the line."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        self.path = path
        self.line = line
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")
        self.reason = message


class InvalidDomain(TrainingDataError):
    """The domain file does not describe a valid domain."""


class InvalidConfig(DialogdError, ValueError):
    """A pipeline or policy configuration is invalid."""


class TrainingTooLong(DialogdError):
    """A training job ran past its time limit and was stopped."""


class ModelError(DialogdError):
    """A model directory is missing, incomplete, or from an incompatible version."""


class NotFittedError(DialogdError, ValueError, AttributeError):
    """A model component was used for prediction before ``fit``."""


class InvalidEvent(DialogdError, ValueError):
    """An event in client input cannot be built (unknown type, bad fields)."""


class UnknownAction(DialogdError, ValueError):
    """An action name that the domain does not know."""


class InvalidInput(DialogdError, ValueError):
    """A request value is missing or has the wrong type."""

    def __init__(self, message: str, parameter: str = "", where: str = "body"):
        super().__init__(message)
        self.parameter = parameter
        self.where = where


class ConversationConflict(DialogdError):
    """A turn lost the compare-and-append race too many times in a row."""


class ConversationBusy(DialogdError):
    """Another message's loop held the conversation for longer than a request
    waits (``worker/loop.py``)."""
