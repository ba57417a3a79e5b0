"""The turns of one conversation one at a time in a process, each starting from the
state the one before wrote (worker/turnqueue.py)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from tests.unit.test_turn import CONFIG
from tests.unit.test_turn import FIXTURES
from trackerstore import InMemoryStore
from trackerstore import Loaded
from trackerstore import StoreUnavailable
from worker.domain import Domain
from worker.model import CoreModel
from worker.nlu import Interpreter
from worker.observe import TurnObserver
from worker.turn import Engine
from worker.turnqueue import TurnQueue


def _waiting(queue: TurnQueue, cid: str, n: int) -> None:
    """Until ``n`` turns wait for ``cid`` (each test thread blocks in ``enter``)."""
    deadline = time.monotonic() + 30
    while len(queue._places[cid].waiting) < n:
        assert time.monotonic() < deadline, "the turn never queued"
        time.sleep(0.001)


def _enter_in_thread(queue: TurnQueue, cid: str, out: list) -> threading.Thread:
    def run() -> None:
        ticket = queue.enter(cid)
        out.append((ticket, ticket.start()))

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_turns_take_the_place_in_their_order_of_arrival() -> None:
    queue = TurnQueue()
    assert not queue.busy("c")
    first = queue.enter("c")
    assert (first.held, first.waited) == (True, False)
    assert queue.busy("c") and not queue.busy("other")
    order: list[int] = []

    def turn(n: int) -> None:
        ticket = queue.enter("c")
        order.append(n)
        ticket.leave()

    threads = []
    for n in range(4):
        threads.append(threading.Thread(target=turn, args=(n,)))
        threads[-1].start()
        _waiting(queue, "c", n + 1)
    other = queue.enter("other")  # another conversation does not wait
    assert not other.waited
    other.leave()
    first.leave()
    for thread in threads:
        thread.join(30)
    assert order == [0, 1, 2, 3]
    assert len(queue) == 0  # nothing kept once no turn holds or waits
    assert not queue.busy("c")


def test_a_waiting_turn_starts_from_the_state_the_turn_before_wrote() -> None:
    queue = TurnQueue()
    first = queue.enter("c")
    assert first.start() is None  # nobody before it: it loads
    out: list = []
    thread = _enter_in_thread(queue, "c", out)
    _waiting(queue, "c", 1)
    written = Loaded(7, {"n": 7})
    first.wrote(lambda: written)
    first.leave()
    thread.join(30)
    ticket, start = out[0]
    assert ticket.waited and start == written
    ticket.leave()


def test_a_turn_that_wrote_with_nobody_waiting_hands_nothing_on() -> None:
    queue = TurnQueue()
    first = queue.enter("c")

    def unwanted() -> Loaded:
        raise AssertionError("the state was built for nobody")

    first.wrote(unwanted)
    first.leave()
    second = queue.enter("c")
    assert second.start() is None
    second.leave()


def test_the_wait_is_bounded_and_the_late_turn_goes_on_unordered() -> None:
    queue = TurnQueue(wait=0.05)
    first = queue.enter("c")
    late = queue.enter("c")  # the holder never leaves in time
    assert (late.held, late.waited) == (False, True)
    assert late.start() is None
    late.leave()  # gives nothing up: it held nothing
    assert len(queue) == 1
    out: list = []
    thread = _enter_in_thread(queue, "c", out)
    _waiting(queue, "c", 1)
    first.leave()
    thread.join(30)
    assert out[0][0].held
    out[0][0].leave()
    assert len(queue) == 0


class Conflicts(TurnObserver):
    def __init__(self) -> None:
        self.count = 0

    def phase(self, name: str, seconds: float) -> None:
        pass

    def conflict(self) -> None:
        self.count += 1


@pytest.fixture(scope="module")
def core() -> CoreModel:
    domain = Domain.load(FIXTURES / "default_with_slots.yml")
    return CoreModel.train(domain, FIXTURES / "stories_defaultdomain.md", CONFIG)


def test_the_threads_of_a_process_never_conflict_on_one_conversation(core) -> None:
    """Eight threads parsing into one conversation: each turn waits for the one
    before and starts from what it wrote; nothing lost, nothing redone."""
    observer = Conflicts()
    store = InMemoryStore()
    loads: list[str] = []
    real_load = store.load

    def load(cid: str) -> Loaded:
        loads.append(cid)
        return real_load(cid)

    real_append = store.append

    def append(*args: Any) -> int:
        time.sleep(0.001)  # a round trip: the other threads queue meanwhile
        return real_append(*args)

    store.load = load
    store.append = append
    engine = Engine.for_model(core, Interpreter(), store, observer=observer)

    def client(i: int) -> None:
        for j in range(10):
            reply = engine.parse("c", f'/greet{{"name": "{i}-{j}"}}')
            assert reply["tracker"]["slots"]["name"] == f"{i}-{j}"

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert observer.count == 0
    events = engine.tracker("c", "ALL")["events"]
    users = sorted(e["text"] for e in events if e["event"] == "user")
    assert users == sorted(
        f'/greet{{"name": "{i}-{j}"}}' for i in range(8) for j in range(10)
    )
    assert len(loads) < 80  # turns that waited did not load
    assert len(engine.queue) == 0


def test_a_failed_turn_gives_its_place_up(core) -> None:
    store = InMemoryStore()
    engine = Engine.for_model(core, Interpreter(), store)
    real_append = store.append

    def down(*args: Any, **kwargs: Any) -> int:
        raise StoreUnavailable("Redis is unavailable: test")

    store.append = down
    with pytest.raises(StoreUnavailable):
        engine.parse("c", "/greet")
    assert len(engine.queue) == 0
    store.append = real_append
    assert engine.parse("c", "/greet")["next_action"]
