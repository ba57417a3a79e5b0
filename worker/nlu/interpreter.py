"""What the server calls per user message: the trained model or the regex grammar."""

from __future__ import annotations

from typing import Any

from worker.nlu.pipeline import NLUPipeline
from worker.nlu.pipeline import empty_parse_result
from worker.nlu.regex_interpreter import INTENT_MESSAGE_PREFIX
from worker.nlu.regex_interpreter import parse_intent_message


class Interpreter:
    """Routes a message to `parse_intent_message` or to the NLU model.

    The text is stripped first. Text starting with ``/`` always takes the regex
    grammar (clients use it to bypass NLU). Without a model, plain text takes it
    too, so ``hello`` parses as intent ``hello`` with text ``/hello``, as Rasa Core's
    RegexInterpreter did. Empty text gives the empty parse result in both cases.
    """

    __slots__ = ("model",)

    def __init__(self, model: NLUPipeline | None = None) -> None:
        self.model = model

    def parse(self, text: str) -> dict[str, Any]:
        """The parse result for one message (§6.3 or §6.4 shape)."""
        text = text.strip()
        if not text:
            return empty_parse_result()
        if self.model is None or text.startswith(INTENT_MESSAGE_PREFIX):
            return parse_intent_message(text)
        return self.model.parse(text)
