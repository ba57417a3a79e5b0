"""How many requests each worker of one instance holds, for its peers to see.

All workers accept from one listening socket, and a gthread worker keeps every
connection it accepted for as long as the client keeps it alive. Left alone, the
worker that happens to be awake when a burst of connections arrives takes them all,
and with keep-alive clients (wrk, nginx's upstream pool) it then does all the work
while its peers idle (issue 18: one worker at 99% of the CPU in 4 rounds of 6 behind
nginx). So each worker publishes the requests it holds (being read, queued or
served) on a board in shared memory, and leaves the listening socket to its peers
while it holds more than one of them (api/serving/worker.py); and a connection
is closed after ``DIALOGD_KEEPALIVE_REQUESTS`` requests (1000), so that a pool
of long-lived connections that all went to one worker is dealt out again.

The board is an anonymous shared mapping made by the master before the first fork;
the master gives each worker a slot (gunicorn's ``pre_fork`` hook) and frees it when
the worker has exited (``child_exit``). A slot is a row of int64: the worker's pid
(0: free, or the worker stopped listening), the requests it holds, and the
``CLOCK_MONOTONIC`` millisecond of its last loop. A worker that has not looped for
:data:`STALE_MS` (stuck, or stopped) is left out, so it can never keep its peers
from accepting for longer than that.
"""

from __future__ import annotations

import mmap
import os
import time
from collections.abc import Mapping
from typing import Any

#: Workers one board can hold; a worker beyond them accepts without looking.
SLOTS = 256
#: A peer whose last loop is older than this is not compared with (a worker loops
#: at least once a second: gthread's poll timeout).
STALE_MS = 2000

_PID, _HELD, _BEAT = range(3)
_WIDTH = 3


def enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """``DIALOGD_BALANCE``: ``on`` (the default) or ``off`` (every worker accepts
    whenever it can, as gunicorn's own gthread worker does)."""
    value = environ.get("DIALOGD_BALANCE", "").strip().lower() or "on"
    if value not in ("on", "off"):
        raise ValueError(f"DIALOGD_BALANCE must be on or off, not {value!r}")
    return value == "on"


def keepalive_requests(environ: Mapping[str, str] = os.environ) -> int:
    """``DIALOGD_KEEPALIVE_REQUESTS``: requests served on one connection before it
    is closed (with ``Connection: close`` on the last answer); 0: no limit."""
    value = environ.get("DIALOGD_KEEPALIVE_REQUESTS", "").strip()
    count = int(value) if value else 1000
    if count < 0:
        raise ValueError(f"DIALOGD_KEEPALIVE_REQUESTS must be 0 or more, not {value!r}")
    return count


def _now_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class Board:
    """The slots, in memory shared by the master and every worker it forks."""

    def __init__(self, slots: int = SLOTS):
        self._map = mmap.mmap(-1, (slots * _WIDTH + 1) * 8)
        # The first cell: slots up to the highest one ever given out.
        self._cells = memoryview(self._map).cast("q")
        self.slots = slots

    def give(self, taken: set[int]) -> int | None:
        """In the master: the lowest slot not in ``taken``, empty; None when all
        are taken."""
        slot = next((n for n in range(self.slots) if n not in taken), None)
        if slot is not None:
            self.leave(slot)
            self._cells[0] = max(self._cells[0], slot + 1)
        return slot

    def publish(self, slot: int, pid: int, held: int) -> None:
        """In a worker, once a loop: it is alive and holds ``held`` requests."""
        base = 1 + slot * _WIDTH
        cells = self._cells
        cells[base + _HELD] = held
        cells[base + _BEAT] = _now_ms()
        cells[base + _PID] = pid

    def leave(self, slot: int) -> None:
        """The slot's worker no longer takes connections (stopping, or gone)."""
        self._cells[1 + slot * _WIDTH + _PID] = 0

    def least_held(self, slot: int) -> int | None:
        """The fewest requests a live peer of ``slot`` holds; None: no live peer."""
        cells = self._cells
        oldest = _now_ms() - STALE_MS
        least = None
        for peer in range(cells[0]):
            base = 1 + peer * _WIDTH
            if peer == slot or not cells[base + _PID] or cells[base + _BEAT] < oldest:
                continue
            held = cells[base + _HELD]
            if least is None or held < least:
                least = held
        return least


_board: Board | None = None


def board() -> Board:
    """This instance's board, made on first use: in the master, before it forks."""
    global _board
    if _board is None:
        _board = Board()
    return _board


def pre_fork(server: Any, worker: Any) -> None:
    """gunicorn hook, in the master: a slot for the worker about to be forked."""
    taken = {getattr(w, "slot", None) for w in server.WORKERS.values()}
    worker.slot = board().give({n for n in taken if n is not None})


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn hook, in the master: the worker has exited; its slot is free."""
    slot = getattr(worker, "slot", None)
    if slot is not None:
        board().leave(slot)
