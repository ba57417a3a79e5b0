"""The turns of one conversation one at a time: in a worker process by a queue,
across processes by a baton in the store while the conversation is hot.

A hot conversation (several requests on it at once) is serial by nature: each turn
depends on the one before. Left to race, concurrent turns each load the same
version, each predict, and all but one lose the compare-and-append and redo the
turn. Here they take turns instead, for the part that depends on the conversation
(from the load to the write); everything else (reading the request, NLU, sending
the answer) runs beside them.

- In a process, a conversation's turns queue (first come, first served) and each
  hands the next the state it wrote, as the store would answer it
  (``TrackerStore.after_write``): a turn that waited skips its load. Always on;
  a conversation nobody else is using pays for an uncontended lock, a microsecond.
- Across processes, once a turn of this process lost a conflict on a
  conversation (or found its baton held), the conversation is *hot* here for
  ``HOT_SECONDS``: the first turn of the queue takes the conversation's baton in
  the store with its load (``TrackerStore.take_baton``, the same one round
  trip), the process keeps it for the turns queued behind (``STREAK`` turns in a
  row at most, as it cannot know whether another process waits), and the last
  one passes it on (``pass_baton``, which wakes a waiting process). A process
  that finds the baton held waits for it (``wait_baton``), its turns' NLU done.

What stays as it was, and why:

- The compare-and-append is still the guarantee. Queue and baton are hints that
  spare conflicts; a turn that stopped waiting, a baton that ran out, a process
  that has not found the conversation hot yet: they race, conflict and redo, as
  before.
- Waiting is bounded: after ``wait`` seconds (for the queue, then for the baton)
  a turn goes on without them. A turn holds one conversation's place at a time,
  and only from its load to its write, so no turn waits on another that waits
  on it.
- A request that fails gives its place up and passes the baton on
  (``Ticket.leave`` runs in a ``finally``); a worker that dies takes its queue
  with it, and its baton runs out after ``BATON_TTL`` seconds.
- Nothing is kept between requests but which conversations are hot: a place lives
  only while a turn holds or waits for it, and the state handed on is the one
  the store holds.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable

from trackerstore import Loaded
from trackerstore import StoreError
from trackerstore import TrackerStore

log = logging.getLogger(__name__)

#: seconds a turn waits for its conversation before it goes on regardless
DEFAULT_WAIT = 2.0
#: seconds a conversation stays hot after the latest sign of another process
HOT_SECONDS = 2.0
#: seconds a baton is held at most, so a dead holder delays the others no longer
BATON_TTL = 1.0
#: seconds between two tries for a baton whose passing was not seen
BATON_POLL = 0.05
#: turns of one process in a row under one baton at most: then it is passed on,
#: and the next turn of the process lets a waiting process take it first
STREAK = 2
#: hot conversations remembered at most (the oldest are forgotten first)
MAX_HOT = 4096


class _Place:
    """A conversation's place in this process, while a turn holds it: the turns
    waiting for it in their order of arrival, the state the latest one wrote, and
    whether this process holds its baton. Changed under the queue's guard only."""

    __slots__ = ("baton", "latest", "streak", "waiting", "yielding")

    def __init__(self) -> None:
        #: one locked lock per waiting turn, which the turn before releases
        self.waiting: deque[threading.Lock] = deque()
        self.latest: Loaded | None = None
        self.baton = False
        #: turns in a row under this baton
        self.streak = 0
        #: the baton was passed on for fairness: wait for its turn to come back
        self.yielding = False


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
        """The state this turn starts from, if it needs no load of its own: the
        state the turn before it wrote, or the load that came with the baton."""
        if not self.held:
            return None
        place = self.place
        latest, place.latest = place.latest, None
        if place.baton or not self.queue.hot(self.cid):
            return latest
        return self.queue._take_baton(self)

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
    with an empty one of its own and a baton token of its own.
    """

    def __init__(self, store: TrackerStore, wait: float = DEFAULT_WAIT):
        self.store = store
        self.wait = wait
        self._start()
        ref = weakref.ref(self)
        # NOTE: a lock held by a thread of the parent at fork time would stay
        # held for ever in the child: the child starts afresh.
        os.register_at_fork(after_in_child=lambda: _restart(ref))

    def _start(self) -> None:
        self._guard = threading.Lock()
        self._places: dict[str, _Place] = {}
        #: cid -> until when (monotonic) it is hot
        self._hot: dict[str, float] = {}
        #: this process's baton token
        self.token = secrets.token_hex(8)

    def __len__(self) -> int:
        """Conversations that a turn holds or waits for now."""
        return len(self._places)

    def hot(self, cid: str) -> bool:
        """Whether another process was seen working on ``cid`` lately."""
        until = self._hot.get(cid)
        return until is not None and until > time.monotonic()

    def heat(self, cid: str) -> None:
        """Another process works on ``cid``: order the turns with a baton."""
        now = time.monotonic()
        hot = self._hot
        if len(hot) >= MAX_HOT and cid not in hot:
            # NOTE: a copy (made in one step under the GIL): other threads heat too
            cold = [c for c, until in list(hot.items()) if until <= now]
            for old in cold or list(hot)[:1]:
                hot.pop(old, None)
        hot[cid] = now + HOT_SECONDS

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

    def _take_baton(self, ticket: Ticket) -> Loaded | None:
        """The conversation loaded with its baton; None when the wait ran out."""
        cid, place, store = ticket.cid, ticket.place, self.store
        deadline = time.monotonic() + self.wait
        if place.yielding:
            # NOTE: passed on for fairness: let a process that waits take it first.
            place.yielding = False
            store.wait_baton(cid, BATON_POLL)
        while True:
            loaded = store.take_baton(cid, self.token, BATON_TTL)
            if loaded is not None:
                place.baton = True
                place.streak = 0
                return loaded
            self.heat(cid)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            store.wait_baton(cid, min(left, BATON_POLL))

    def _leave(self, ticket: Ticket) -> None:
        if not ticket.held:
            return
        ticket.held = False
        place = ticket.place
        following = None
        with self._guard:
            passing = place.baton and (not place.waiting or place.streak + 1 >= STREAK)
            if passing:
                place.baton = False
                place.yielding = bool(place.waiting)
            else:
                place.streak += 1
            if place.waiting:
                following = place.waiting.popleft()  # still held: theirs now
            else:
                del self._places[ticket.cid]
        try:
            if passing:
                self.store.pass_baton(ticket.cid, self.token)
        except StoreError as err:
            log.warning("%r: baton not passed on (it runs out): %s", ticket.cid, err)
        finally:
            if following is not None:
                following.release()


def _restart(ref: weakref.ref[TurnQueue]) -> None:
    queue = ref()
    if queue is not None:
        queue._start()
