"""The event stream under load, across a worker's SIGKILL: does a consumer read
every logged event exactly once, in log order per conversation?

Starts a private Redis and ``dialogd serve --event-stream`` (moodbot, 2 workers),
runs ``--turns`` turns (a user message and the bot's actions, reported with
``/continue``) from several client threads, SIGKILLs a worker half way, and reads
the stream meanwhile as one consumer of a consumer group. Clients send an
``Idempotency-Key`` and resend a request the killed worker dropped. At the end it
compares, conversation by conversation, what the consumer got with the logs.

    python -m bench.event_stream [--turns 10000] [--threads 8] [--out F]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from api.testing import Server
from bench.turn_latency import moodbot_model
from trackerstore import EmbeddedRedis
from trackerstore import RedisStore
from trackerstore.stream import Entry
from trackerstore.stream import EventStream

MESSAGES = ("hello", "I am very sad", "yes", "great", "bye", "no")
RETRIES = 50


class Resending:
    """A client that resends a request (same idempotency key) when the
    connection drops or the server answers 502/503: a killed worker."""

    def __init__(self, url: str):
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.conn: http.client.HTTPConnection | None = None
        self.resent = 0

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": uuid.uuid4().hex,
        }
        for _ in range(RETRIES):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                self.conn.request("POST", path, data, headers)
                reply = self.conn.getresponse()
                payload = reply.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                self.resent += 1
                time.sleep(0.05)
                continue
            if reply.status in (502, 503):
                self.resent += 1
                time.sleep(0.05)
                continue
            if reply.status >= 400:
                raise RuntimeError(f"{path}: HTTP {reply.status} {payload[:200]!r}")
            answer: dict[str, Any] = json.loads(payload)
            return answer
        raise RuntimeError(f"{path}: no answer after {RETRIES} tries")

    def turn(self, cid: str, text: str) -> None:
        reply = self.post(f"/conversations/{cid}/parse", {"query": text})
        for _ in range(10):
            action = reply.get("next_action")
            if action in (None, "action_listen"):
                return
            events = [{"event": "bot", "text": f"({action})"}]
            reply = self.post(
                f"/conversations/{cid}/continue",
                {"executed_action": action, "events": events},
            )


def load(
    url: str,
    turns: int,
    threads: int,
    conversations: int,
    halfway: Callable[[], None] | None = None,
) -> int:
    """``turns`` turns over ``conversations`` conversations; ``halfway`` runs once
    half of them are done. Returns how many requests were resent."""
    done = 0
    lock = threading.Lock()
    fired = threading.Event()
    errors: list[BaseException] = []
    resent = [0] * threads

    def client(k: int) -> None:
        nonlocal done
        c = Resending(url)
        try:
            for i in range(k, turns, threads):
                c.turn(f"bench-{i % conversations}", MESSAGES[i % len(MESSAGES)])
                with lock:
                    done += 1
                    fire = halfway is not None and done >= turns // 2
                if fire and not fired.is_set():
                    fired.set()
                    assert halfway is not None
                    halfway()
        except BaseException as err:  # reported by the caller
            errors.append(err)
        resent[k] = c.resent

    pool = [threading.Thread(target=client, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]
    return sum(resent)


class GroupReader(threading.Thread):
    """One consumer of a consumer group, acknowledging each batch it got."""

    def __init__(self, stream: EventStream, group: str):
        super().__init__(daemon=True)
        self.stream = stream
        self.group = group
        self.got: list[Entry] = []
        self.stop = threading.Event()
        stream.create_group(group, "0")

    def run(self) -> None:
        while True:
            batch = self.stream.read_group(self.group, "reader", 1000, 200)
            self.got += batch
            self.stream.ack(self.group, [e.id for e in batch])
            if not batch and self.stop.is_set():
                return


def rebuild(entries: list[Entry]) -> tuple[dict[str, list[dict]], list[str]]:
    """Each conversation's events as the entries tell them, and every break of
    log order or exactly-once found on the way."""
    logs: dict[str, list[dict]] = defaultdict(list)
    problems = []
    seen: set[str] = set()
    for entry in entries:
        if entry.id in seen:
            problems.append(f"entry {entry.id} delivered twice")
        seen.add(entry.id)
        if entry.type == "reset":
            logs[entry.sender_id] = []
        elif entry.type == "event" and entry.event is not None:
            log = logs[entry.sender_id]
            if entry.seq != len(log):
                problems.append(
                    f"{entry.sender_id}: seq {entry.seq} after {len(log)} events"
                )
            event = dict(entry.event)
            event.pop("sender_id")
            log.append(event)
    return logs, problems


def compare(store: RedisStore, entries: list[Entry]) -> dict[str, Any]:
    """The consumer's view against the logs in Redis."""
    streamed, problems = rebuild(entries)
    ids = sorted(store.conversation_ids())
    logged = 0
    for cid in ids:
        log = store.read_log(cid)
        logged += len(log)
        if streamed.get(cid) != log:
            problems.append(f"{cid}: stream and log differ")
    problems += [f"{cid}: streamed, not stored" for cid in set(streamed) - set(ids)]
    return {
        "conversations": len(ids),
        "events_logged": logged,
        "events_streamed": sum(len(v) for v in streamed.values()),
        "entries_read": len(entries),
        "problems": problems,
    }


def worker_pids(server: Server) -> list[int]:
    assert server.proc is not None
    pid = server.proc.pid
    return [
        int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    ]


def run(turns: int, threads: int, conversations: int) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedRedis(Path(tmp) / "redis") as redis,
    ):
        work = Path(tmp)
        server = Server(
            moodbot_model(work),
            redis.url,
            "bench:",
            work,
            nlu=True,
            workers=2,
            extra=["--event-stream"],
        ).start()
        killed: list[int] = []

        def kill_a_worker() -> None:
            victim = worker_pids(server)[0]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

        stream = EventStream(redis.url, prefix="bench:")
        reader = GroupReader(stream, "bench")
        reader.start()
        try:
            started = time.perf_counter()
            resent = load(server.url, turns, threads, conversations, kill_a_worker)
            seconds = time.perf_counter() - started
        finally:
            server.stop()
        reader.stop.set()
        reader.join()
        result = compare(RedisStore(redis.url, prefix="bench:"), reader.got)
    return {
        "turns": turns,
        "threads": threads,
        "seconds": round(seconds, 2),
        "killed_worker": killed,
        "requests_resent": resent,
        **result,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--out", help="write the result as JSON here")
    args = parser.parse_args()
    result = run(args.turns, args.threads, args.conversations)
    problems = result["problems"]
    shown = {**result, "problems": problems[:20]}
    print(json.dumps(shown, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
