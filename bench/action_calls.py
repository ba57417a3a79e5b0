"""Custom-action calls per second through ``ActionRunner``, beside the floor of the
same run: the same server answering a bare POST of a small request on a kept-alive
connection (``http.client``), so the ratio is the cost of our side (the tracker
with every event, the domain, checking and applying the answer).

The action servers are the test ones (tests/fixtures/actions: rasa_sdk's own
server, and Node.js with its standard library); the action reads two slots, sends
a text and a domain response with an argument, and sets two slots. Conversations
of several lengths show what sending every event costs (Rasa sends them all).

    python -m bench.action_calls [--servers node rasa_sdk] [--lengths 10 1000]
        [--calls 1000] [--rounds 5] [--threads 1 8] [--out FILE]
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from tests.actions.servers import FIXTURES
from tests.actions.servers import ActionServer
from tests.actions.talk import Talk
from worker.actions import ActionEndpoint
from worker.actions import ActionRunner
from worker.domain import Domain
from worker.events import ActionExecuted
from worker.events import BotUttered

DOMAIN = Domain.load(FIXTURES / "domain.yml")
ACTION = "action_greet_by_name"


def conversation(length: int) -> Talk:
    """A conversation of about ``length`` events, ending on a user message."""
    talk = Talk(DOMAIN, sender=f"bench-{length}")
    while len(talk.log) < length - 1:
        talk.user("hi, I am Ada", "greet", [{"entity": "name", "value": "Ada"}])
        talk.add(
            ActionExecuted(name="utter_weather", timestamp=3.0),
            BotUttered(text="It is sunny for you, Ada.", data={}, timestamp=3.0),
            ActionExecuted(name="action_listen", timestamp=3.0),
        )
    talk.user("hi, I am Ada", "greet", [{"entity": "name", "value": "Ada"}])
    return talk


def floor_body() -> bytes:
    """The smallest request the test actions answer."""
    tracker = {
        "sender_id": "floor",
        "slots": {"name": "Ada", "visits": None, "last_intent": None},
        "latest_message": {"intent": {"name": "greet"}, "intent_ranking": []},
        "events": [],
        "paused": False,
        "followup_action": None,
        "active_loop": {},
        "latest_action_name": "action_listen",
    }
    body = {"next_action": ACTION, "sender_id": "floor", "tracker": tracker}
    return json.dumps({**body, "domain": {}, "version": "3.6.21"}).encode()


def elapsed(threads: int, calls: int, call: Any) -> float:
    """Seconds for ``calls`` calls of ``call(thread_index)`` on ``threads``
    threads."""
    per_thread = max(1, calls // threads)

    def work(index: int) -> None:
        for _ in range(per_thread):
            call(index)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda i: i, range(threads)))  # threads started
        start = time.perf_counter()
        list(pool.map(work, range(threads)))
        return time.perf_counter() - start


class Floor:
    """Bare POSTs of a small request, one kept-alive connection per thread."""

    def __init__(self, url: str, threads: int):
        self.parts = urlsplit(url)
        self.body = floor_body()
        host = self.parts.hostname or ""
        self.connections = [
            http.client.HTTPConnection(host, self.parts.port) for _ in range(threads)
        ]
        for index in range(threads):
            self(index)  # connected

    def __call__(self, index: int) -> None:
        connection = self.connections[index]
        connection.request(
            "POST", self.parts.path, self.body, {"Content-Type": "application/json"}
        )
        answer = connection.getresponse()
        answer.read()
        assert answer.status == 200

    def close(self) -> None:
        for connection in self.connections:
            connection.close()


class Ours:
    """``ActionRunner.run`` on a conversation of ``length`` events."""

    def __init__(self, url: str, length: int, threads: int):
        self.runner = ActionRunner(DOMAIN, ActionEndpoint(url))
        self.talk = conversation(length)
        for _ in range(threads):
            self(0)  # warm, and connected

    def __call__(self, index: int) -> None:
        events = self.talk.run(self.runner, ACTION)
        assert len(events) == 4

    def close(self) -> None:
        self.runner.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", nargs="+", default=["node", "rasa_sdk"])
    parser.add_argument("--lengths", nargs="+", type=int, default=[10, 100, 1000])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--calls", type=int, default=1000, help="per measurement")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)
    results = []
    print(
        f"{'server':9} {'threads':>7} {'events':>7} {'calls/s':>8} {'floor/s':>8} ratio"
    )
    for kind in args.servers:
        if kind == "node" and shutil.which("node") is None:
            print("node: not installed, skipped")
            continue
        with ActionServer(kind) as server:
            for threads in args.threads:
                # NOTE: the floor and every length run in turns, a slice of the
                # calls each, so the machine's noise falls on all of them alike.
                callers: dict[str, Any] = {"floor": Floor(server.url, threads)}
                for length in args.lengths:
                    callers[str(length)] = Ours(server.url, length, threads)
                seconds = dict.fromkeys(callers, 0.0)
                share = max(threads, args.calls // args.rounds)
                for _ in range(args.rounds):
                    for name, call in callers.items():
                        seconds[name] += elapsed(threads, share, call)
                for call in callers.values():
                    call.close()
                done = args.rounds * (share // threads) * threads
                floor = done / seconds["floor"]
                for length in args.lengths:
                    ours = done / seconds[str(length)]
                    row = {
                        "server": kind,
                        "threads": threads,
                        "events": length,
                        "calls_per_s": round(ours, 1),
                        "floor_per_s": round(floor, 1),
                        "ratio": round(ours / floor, 3),
                    }
                    results.append(row)
                    print(
                        f"{kind:9} {threads:7} {length:7} {ours:8.0f} {floor:8.0f} "
                        f"{ours / floor:.2f}"
                    )
    if args.out:
        with open(args.out, "w") as out:
            json.dump(results, out, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
