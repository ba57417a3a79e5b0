"""What running an action can end in, besides its events.

The message loop logs ``ActionExecutionRejected`` for a rejection and an
``ActionExecuted`` without events for a failure (Rasa 3's processor does both).
"""

from __future__ import annotations

from worker.errors import DialogdError


class ActionRejected(DialogdError):
    """The action refused to run: a form that cannot use the user's message, or an
    action server's 400 ``{"error", "action_name"}``. Other policies may predict
    another action."""

    def __init__(self, action: str, reason: str | None = None):
        self.action = action
        self.reason = reason or f"action '{action}' rejected to run"
        super().__init__(self.reason)


class ActionFailed(DialogdError):
    """The action could not run (its server failed, timed out, was unreachable or
    answered nonsense); ``reason`` is the log line. The loop goes on predicting."""

    def __init__(self, action: str, reason: str):
        self.action = action
        self.reason = reason
        super().__init__(f"action '{action}' failed: {reason}")


class RemoteError(DialogdError):
    """An HTTP exchange with an action or NLG server failed; ``kind`` is one of
    ``refused``, ``timeout``, ``too_large``, ``protocol``, ``status``."""

    def __init__(self, kind: str, message: str, status: int | None = None):
        self.kind = kind
        self.status = status
        super().__init__(message)
