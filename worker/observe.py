"""What a turn reports about itself while it runs: how long each phase took and
how often a write lost its compare-and-append.

The engine knows nothing of Prometheus: ``api.metrics`` implements
:class:`TurnObserver`; without it the turn reports to :data:`NO_OBSERVER`.
"""

from __future__ import annotations

from typing import Protocol

#: the phases a turn times: NLU, the policies' prediction, the store's load (the
#: wait for it, when it was sent ahead), its compare-and-append, and an action the
#: server runs (a response, a built-in, a call to the action server)
PHASES = ("nlu", "policy", "store_load", "store_write", "action")


class TurnObserver(Protocol):
    def phase(self, name: str, seconds: float) -> None:
        """``name`` (one of :data:`PHASES`) took ``seconds`` once."""

    def conflict(self) -> None:
        """A write lost its compare-and-append: the turn is redone."""


class _NoObserver:
    """Reports go nowhere."""

    def phase(self, name: str, seconds: float) -> None:
        pass

    def conflict(self) -> None:
        pass


NO_OBSERVER: TurnObserver = _NoObserver()
