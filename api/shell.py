"""``dialogd shell``: talk to a served bot from the terminal through its REST
channel, as ``rasa shell`` does (buttons shown as numbered choices)."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
import uuid
from typing import Any
from typing import TextIO

STOP = "/stop"
PROMPT = "Your input -> "


class Shell:
    def __init__(
        self,
        url: str,
        sender: str | None = None,
        token: str | None = None,
        *,
        out: TextIO = sys.stdout,
        timeout: float = 60.0,
    ):
        self.webhook = url.rstrip("/") + "/webhooks/rest/webhook"
        self.sender = sender or uuid.uuid4().hex
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.out = out
        self.timeout = timeout
        #: the payloads of the latest buttons, chosen by their number
        self.choices: list[str] = []

    def send(self, text: str) -> list[dict[str, Any]]:
        """One message; the bot's replies (raises ``ShellError``)."""
        body = json.dumps({"sender": self.sender, "message": text}).encode()
        request = urllib.request.Request(
            self.webhook, body, self.headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                status, raw = answer.status, answer.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        except OSError as err:
            raise ShellError(f"cannot reach the bot at {self.webhook}: {err}") from err
        try:
            data = json.loads(raw or b"null")
        except ValueError:
            data = None
        if status != 200:
            message = data.get("message") if isinstance(data, dict) else None
            raise ShellError(f"the bot answered {status}: {message or ''}")
        if not isinstance(data, list):
            raise ShellError("the bot's answer is not a list of messages")
        return data

    def show(self, messages: list[dict[str, Any]]) -> None:
        self.choices = []
        for message in messages:
            if message.get("text"):
                print(message["text"], file=self.out)
            for button in message.get("buttons") or ():
                if not isinstance(button, dict):
                    continue
                self.choices.append(str(button.get("payload", button.get("title"))))
                print(
                    f"  {len(self.choices)}: {button.get('title')} "
                    f"({button.get('payload')})",
                    file=self.out,
                )
            if message.get("image"):
                print(f"Image: {message['image']}", file=self.out)
            if message.get("attachment"):
                print(f"Attachment: {message['attachment']}", file=self.out)
            if message.get("custom") is not None:
                print(json.dumps(message["custom"], ensure_ascii=False), file=self.out)

    def choose(self, line: str) -> str:
        """A button's number stands for its payload."""
        if line.isdigit() and 1 <= int(line) <= len(self.choices):
            return self.choices[int(line) - 1]
        return line

    def run(self, lines: TextIO = sys.stdin) -> int:
        interactive = lines.isatty()
        print(
            f"Talking to {self.webhook} as '{self.sender}'; {STOP} to quit.",
            file=self.out,
        )
        while True:
            if interactive:
                print(PROMPT, end="", file=self.out, flush=True)
            line = lines.readline()
            if not line:
                return 0
            text = line.strip()
            if text == STOP:
                return 0
            if not text:
                continue
            try:
                self.show(self.send(self.choose(text)))
            except ShellError as err:
                print(f"error: {err}", file=sys.stderr)
                if "cannot reach" in str(err):
                    return 1


class ShellError(Exception):
    """The bot could not be reached, or did not answer with messages."""
