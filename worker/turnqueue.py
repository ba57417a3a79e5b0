"""One turn at a time per conversation within a worker process, each handing the
state it wrote to the next.

A hot conversation (several requests on it at once) is serial by nature: each turn
depends on the one before. Left to race, the threads of a worker each load the
same version, each predict, and all but one lose the compare-and-append and redo
the turn. Here the turns of one conversation in one process take turns instead,
for the part that depends on the conversation (from the load to the write);
everything else (reading the request, NLU, sending the answer) runs beside them.
A turn that waited starts from the state the turn before it wrote, as the store
would answer it (``TrackerStore.after_write``), so it skips its load.

What stays as it was, and why:

- The compare-and-append is still the guarantee. The queue orders the turns of
  this process only; other processes (the other workers, other machines) and a
  turn that stopped waiting still race, conflict and redo. Ordering them too would
  take a lock in Redis, and a worker waiting on another worker's progress idles
  its threads (2 per worker), the other conversations' requests included: racing
  costs a redo now and then, waiting could cost every request of the worker.
- Waiting is bounded: after ``wait`` seconds a turn goes on without its place (and
  may conflict). A turn holds one conversation's place at a time, and only from
  its load to its write, so no turn waits on another that waits on it.
- A request that fails gives its place up (``Ticket.leave`` runs in a
  ``finally``); a worker that dies takes its places with it: they are in its
  memory only, never in Redis, unlike the message loop's lease (``worker.loop``).
- Nothing is kept between requests: a conversation's entry lives only while a turn
  holds or waits for it, and the state handed on is the one the store holds.

What it costs a turn on a conversation nobody else is using: an uncontended lock
and one dict entry, about a microsecond and a half of CPU.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import deque
from collections.abc import Callable

from trackerstore import Loaded

#: seconds a turn waits for its conversation before it goes on regardless
DEFAULT_WAIT = 2.0


class _Place:
    """A conversation's place in this process, while a turn holds it: the turns
    waiting for it in their order of arrival, and the state the latest one wrote.
    Changed under the queue's guard only."""

    __slots__ = ("latest", "waiting")

    def __init__(self) -> None:
        #: one locked lock per waiting turn, which the turn before releases
        self.waiting: deque[threading.Lock] = deque()
        self.latest: Loaded | None = None


class Ticket:
    """One turn's place in its conversation's queue (``TurnQueue.enter``)."""

    __slots__ = ("cid", "held", "place", "queue", "waited")

    def __init__(
        self, queue: TurnQueue, cid: str, place: _Place, held: bool, waited: bool
    ):
        self.queue = queue
        self.cid = cid
        self.place = place
        #: False when the wait ran out: the turn goes on unordered
        self.held = held
        #: True when another turn held the conversation as this one came
        self.waited = waited

    def start(self) -> Loaded | None:
        """The state the turn before this one wrote, if it wrote and this turn
        waited for it; None: load it. Taken once."""
        if not self.held:
            return None
        latest, self.place.latest = self.place.latest, None
        return latest

    def wrote(self, state: Callable[[], Loaded]) -> None:
        """This turn's write won; ``state`` gives what the store now holds, asked
        for only when another turn waits for it."""
        place = self.place
        if self.held and place.waiting:
            place.latest = state()

    def leave(self) -> None:
        self.queue._leave(self)


class TurnQueue:
    """The places of the conversations that turns of this process are working on.

    Built before gunicorn forks (with the engine), so each forked worker starts
    with an empty one of its own.
    """

    def __init__(self, wait: float = DEFAULT_WAIT):
        self.wait = wait
        self._start()
        ref = weakref.ref(self)
        # NOTE: a lock held by a thread of the parent at fork time would stay
        # held for ever in the child: the child starts afresh.
        os.register_at_fork(after_in_child=lambda: _restart(ref))

    def _start(self) -> None:
        self._guard = threading.Lock()
        self._places: dict[str, _Place] = {}

    def __len__(self) -> int:
        """Conversations that a turn holds or waits for now."""
        return len(self._places)

    def busy(self, cid: str) -> bool:
        """Whether a turn of this process holds ``cid`` now (a new one would wait)."""
        return cid in self._places

    def enter(self, cid: str) -> Ticket:
        """Take ``cid``'s place, after the turns that hold it or wait for it (first
        come, first served), waiting up to ``wait`` seconds; always ``leave`` the
        ticket, whatever happens."""
        with self._guard:
            place = self._places.get(cid)
            if place is None:
                self._places[cid] = place = _Place()
                return Ticket(self, cid, place, True, False)
            # NOTE: FIFO, the turn that leaves hands the place over: with a plain
            # lock, a thread that gives it up and comes back with its next request
            # takes it again before the woken waiter runs, and the waiter starves.
            turn = threading.Lock()
            turn.acquire()
            place.waiting.append(turn)
        if turn.acquire(timeout=self.wait):
            return Ticket(self, cid, place, True, True)
        with self._guard:
            try:
                place.waiting.remove(turn)
            except ValueError:  # handed over as the wait ran out: it is ours
                return Ticket(self, cid, place, True, True)
        return Ticket(self, cid, place, False, True)

    def _leave(self, ticket: Ticket) -> None:
        if not ticket.held:
            return
        ticket.held = False
        place = ticket.place
        with self._guard:
            if place.waiting:
                place.waiting.popleft().release()  # still held: theirs now
            else:
                del self._places[ticket.cid]


def _restart(ref: weakref.ref[TurnQueue]) -> None:
    queue = ref()
    if queue is not None:
        queue._start()
