"""What an action sees: the state before it, the conversation's log (read once, and
only if asked), the channel; and the temporary trackers forms hand to the actions
they call (the state after some events of their own)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from worker.event_codec import event_to_dict
from worker.events import Event
from worker.tracker import NeedsHistory
from worker.tracker import Tracker


class _Source:
    """The stored log, read at most once per action run, whichever view asks."""

    __slots__ = ("events", "read")

    def __init__(self, read: Callable[[], list[Event]]):
        self.read = read
        self.events: list[Event] | None = None

    def get(self) -> list[Event]:
        if self.events is None:
            self.events = list(self.read())
        return self.events


class Context:
    """One action run's view of the conversation."""

    __slots__ = ("_log", "_source", "channel", "clock", "extra", "tracker")

    def __init__(
        self,
        tracker: Tracker,
        events: Callable[[], list[Event]] | _Source,
        channel: str | None,
        clock: Callable[[], float],
    ):
        self.tracker = tracker
        self._source = events if isinstance(events, _Source) else _Source(events)
        self._log: list[Event] | None = None
        self.channel = channel
        self.clock = clock
        #: events this run added to the tracker it was given (``after``)
        self.extra: list[Event] = []

    @property
    def slots(self) -> dict[str, Any]:
        return self.tracker.slots

    def log(self) -> list[Event]:
        """The whole log, as an action server gets it (Rasa sends every event)."""
        if self._log is None:
            self._log = [*self._source.get(), *self.extra]
        return self._log

    def after(self, events: list[Event]) -> Context:
        """The state once ``events`` are applied: Rasa's temporary tracker."""
        if not events:
            return self
        tracker = Tracker.from_snapshot(
            self.tracker.sender_id,
            self.tracker.domain,
            self.tracker.to_snapshot(),
            self.tracker.history,
        )
        assert tracker is not None  # NOTE: a snapshot of this very domain
        try:
            for event in events:
                tracker.update(event)
        except NeedsHistory:
            tracker = Tracker.from_events(
                self.tracker.sender_id,
                self.tracker.domain,
                [*self.log(), *events],
                self.tracker.history,
            )
        view = Context(tracker, self._source, self.channel, self.clock)
        view.extra = [*self.extra, *events]
        return view

    def tracker_json(self) -> dict[str, Any]:
        """Rasa's tracker JSON (``current_state(EventVerbosity.ALL)``)."""
        out = self.tracker.dump()
        out["events"] = [event_to_dict(e) for e in self.log()]
        return out
