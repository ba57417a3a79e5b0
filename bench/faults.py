"""A real server under faults of Redis and of its workers: what clients see.

Two gunicorn workers (``dialogd serve``) on a private ``redis-server`` (a free port,
its own folder, AOF on) serve a bounded load of clients, each playing parse/continue
turns on its own conversations with an ``Idempotency-Key`` per request, and
retrying a failed request with the same key. One scenario at a time:

- ``restart``: Redis stopped (SIGTERM) for a few seconds, then started again;
- ``stall``: Redis frozen (SIGSTOP) for 25 s, then SIGCONT;
- ``oom``: ``CONFIG SET maxmemory`` just above what Redis holds, then lifted;
- ``kill``: one gunicorn worker SIGKILLed.

Per scenario: requests sent, failed answers (status and reason), the longest time
without a 200 from the fault on (outage), the time from the end of the fault to
the first 200 after it (recovery), turns
acknowledged (200) but missing from the logs read back, turns committed twice
(a retry applied again: more user events than parse keys), and requests committed
but answered as failed (their retry found its key applied: the server logs it).
Each fault (200 slow clients too: ``slow``) is one entry of ``SCENARIOS``: a
function given the Redis and the server while the load runs.

    python -m bench.faults [--clients 6] [--seconds 40] [--scenarios restart stall ...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
import requests

from api.testing import Server
from api.testing import free_port
from bench.slow_clients import SlowClients
from bench.slow_clients import normal_client
from bench.turn_latency import moodbot_model
from trackerstore.embedded import redis_server_binary

TEXTS = ("hello", "I am sad", "yes", "great", "bye", "no", "very good", "hi there")


class PrivateRedis:
    """A ``redis-server`` of our own on a free port, to stop, freeze and fill."""

    def __init__(self, work: Path, *, appendonly: bool = True):
        self.work = work
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.appendonly = appendonly
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> PrivateRedis:
        self.proc = subprocess.Popen(
            [
                redis_server_binary(),
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--dir", str(self.work), "--save", ""),
                *("--appendonly", "yes" if self.appendonly else "no"),
                *("--maxmemory-policy", "noeviction"),
            ],
            cwd=self.work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.client() as client:
                    client.ping()
                return self
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.05)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.resume()
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Client(threading.Thread):
    """Turns on its own conversations; a failed request is retried with its key
    until it succeeds or the run ends."""

    def __init__(
        self,
        url: str,
        name: str,
        stop: threading.Event,
        timeout: float,
        same_key: bool = True,
    ):
        super().__init__(daemon=True)
        #: False: every try gets a new key, as if the client sent none
        self.same_key = same_key
        self.url = url
        self.name_ = name
        self.stop = stop
        self.timeout = timeout
        self.session = requests.Session()
        #: (time, ok, status/reason) of every request
        self.calls: list[tuple[float, bool, str]] = []
        #: conversation -> idempotency keys of its parse requests answered 200
        self.acked: dict[str, list[str]] = {}
        #: conversation -> every parse key sent (answered or not)
        self.sent: dict[str, list[str]] = {}
        self.unanswered = 0

    def request(self, path: str, body: dict, key: str) -> bool:
        """Send until answered 200 (same key each time); False if the run ended."""
        while not self.stop.is_set():
            try:
                resp = self.session.post(
                    self.url + path,
                    json=body,
                    headers={"Idempotency-Key": key},
                    timeout=self.timeout,
                )
                outcome = str(resp.status_code)
                if resp.status_code != 200:
                    with contextlib.suppress(ValueError):
                        outcome += " " + resp.json().get("reason", "")
            except requests.RequestException as exc:
                outcome = type(exc).__name__
                resp = None
            ok = resp is not None and resp.status_code == 200
            self.calls.append((time.monotonic(), ok, outcome))
            if ok:
                return True
            if not self.same_key:
                key = uuid.uuid4().hex
            time.sleep(0.2)
        self.unanswered += 1
        return False

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            cid = f"{self.name_}-{n // 6}"
            n += 1
            key = uuid.uuid4().hex
            self.sent.setdefault(cid, []).append(key)
            body: dict[str, Any] = {"query": TEXTS[n % len(TEXTS)]}
            if not self.request(f"/conversations/{cid}/parse", body, key):
                return
            self.acked.setdefault(cid, []).append(key)
            body = {"executed_action": "utter_greet", "events": []}
            if not self.request(
                f"/conversations/{cid}/continue", body, uuid.uuid4().hex
            ):
                return


def check_logs(store: redis.Redis, prefix: str, clients: list[Client]) -> dict:
    """Read every conversation's log back: acknowledged parses missing, and parses
    applied more than once (a user event per key is expected: one per parse)."""
    from trackerstore import RedisStore

    lost = duplicated = 0
    with RedisStore(
        f"redis://127.0.0.1:{store.connection_pool.connection_kwargs['port']}/0",
        prefix=prefix,
    ) as reader:
        for client in clients:
            for cid, sent in client.sent.items():
                users = sum(1 for e in reader.read_log(cid) if e["event"] == "user")
                acked = len(client.acked.get(cid, []))
                lost += max(0, acked - users)
                duplicated += max(0, users - len(sent))
    return {"acked_lost": lost, "committed_twice": duplicated}


def summarise(clients: list[Client], fault_at: float, fault_end: float) -> dict:
    """Failures, the longest time without a 200 from the fault on (outage), and
    the time from the end of the fault to the first 200 after it (recovery)."""
    calls = sorted(c for client in clients for c in client.calls)
    failed = Counter(outcome for _, ok, outcome in calls if not ok)
    successes = [at for at, ok, _ in calls if ok and at >= fault_at]
    gaps = [b - a for a, b in zip([fault_at, *successes], successes, strict=False)]
    after = [at for at in successes if at >= fault_end]
    return {
        "requests": len(calls),
        "ok": sum(1 for _, ok, _ in calls if ok),
        "failed": dict(failed),
        "fault_s": round(fault_end - fault_at, 2),
        "outage_s": round(max(gaps, default=0.0), 2),
        "recovery_s": round(after[0] - fault_end, 2) if after else None,
        "turns_acked": sum(len(k) for c in clients for k in c.acked.values()),
        "unanswered_at_end": sum(c.unanswered for c in clients),
    }


def scenario(
    name: str,
    model: Path,
    work: Path,
    fault: Callable[[PrivateRedis, Server], dict[str, Any] | None],
    args: argparse.Namespace,
) -> dict[str, Any]:
    folder = work / name
    folder.mkdir()
    store = PrivateRedis(folder).start()
    prefix = f"faults:{name}:"
    server = Server(model, store.url, prefix, folder, nlu=True, workers=2)
    server.start()
    stop = threading.Event()
    clients = [
        Client(server.url, f"{name}{i}", stop, args.client_timeout, not args.new_keys)
        for i in range(args.clients)
    ]
    try:
        for client in clients:
            client.start()
        time.sleep(args.warmup)
        fault_at = time.monotonic()
        extra: dict[str, Any] = {}
        for n in range(args.repeat):
            if n:
                time.sleep(args.gap)
            extra.update(fault(store, server) or {})
        fault_end = time.monotonic()
        time.sleep(args.seconds)
        stop.set()
        for client in clients:
            client.join(args.client_timeout + 5)
        result = summarise(clients, fault_at, fault_end) | extra
        with store.client() as reader:
            result.update(check_logs(reader, prefix, clients))
        # a retry whose key a write already carried: committed, answered failed
        result["committed_answered_failed"] = server.log().count("applied already")
        return result
    finally:
        stop.set()
        store.resume()  # a server stopping waits for requests a frozen Redis holds
        server.stop()
        store.stop()


def _restart(store: PrivateRedis, server: Server) -> None:
    store.stop()
    time.sleep(3)
    store.start()


def _stall(store: PrivateRedis, server: Server) -> None:
    store.pause()
    time.sleep(25)
    store.resume()


def _oom(store: PrivateRedis, server: Server) -> None:
    with store.client() as client:
        client.config_set("maxmemory", client.info("memory")["used_memory"] + 20_000)
        time.sleep(8)
        client.config_set("maxmemory", 0)


def _kill(store: PrivateRedis, server: Server) -> None:
    assert server.proc is not None
    workers = subprocess.run(
        ["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True
    ).stdout.split()
    os.kill(int(workers[0]), signal.SIGKILL)


def _slow(store: PrivateRedis, server: Server) -> dict[str, Any]:
    """200 slow sockets (nothing sent, a head or a body trickled, reopened when
    closed) while one more client times its turns, against the same client's
    turns just before the attack, under the same load."""
    port = int(server.url.rsplit(":", 1)[1])
    alone = normal_client(server.url, requests=100, timeout=10, pause=0.1)
    with SlowClients(port, n=200, seconds=30):
        attacked = normal_client(server.url, requests=200, timeout=10, pause=0.1)
    return {"normal_client_alone": alone, "normal_client_attacked": attacked}


SCENARIOS: dict[str, Callable[[PrivateRedis, Server], dict[str, Any] | None]] = {
    "restart": _restart,
    "stall": _stall,
    "oom": _oom,
    "kill": _kill,
    "slow": _slow,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=40, help="after the fault")
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--repeat", type=int, default=1, help="the fault, N times")
    parser.add_argument("--gap", type=float, default=5, help="between repeats (s)")
    parser.add_argument("--client-timeout", type=float, default=30)
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS))
    parser.add_argument(
        "--new-keys",
        action="store_true",
        help="a new key on every retry: what clients without keys get",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory(prefix="dialogd-faults-") as tmp:
        work = Path(tmp)
        model = moodbot_model(work)
        for name in args.scenarios:
            results[name] = scenario(name, model, work, SCENARIOS[name], args)
            print(name, json.dumps(results[name]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
