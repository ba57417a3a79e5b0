"""Redis memory per turn, worker memory, and time from start to first answer.

- Redis: a moodbot conversation played turn by turn (parse + continue: the user,
  action and listen events); ``MEMORY USAGE`` of its keys is read at several lengths,
  and the growth per turn is reported for each stretch.
- Workers: ``dialogd serve`` with the moodbot model and 2 workers; RSS and PSS (RSS
  with the copy-on-write pages shared with the master divided among the sharers) of
  each worker after 500 turns, and the time from starting the command to the first
  answered ``/parse``.

    python -m bench.resources [--out FILE]
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
import requests

from api.testing import Server
from bench.turn_latency import moodbot_model
from trackerstore import EmbeddedRedis
from trackerstore import RedisStore
from trackerstore.redis_store import conversation_keys
from worker.models import FixedModels
from worker.models import ModelSet
from worker.turn import Engine

CHECKPOINTS = (10, 100, 1000, 3000)
MESSAGES = ["I am feeling great", "hello there", "I am very sad", "yes it did"]


def redis_per_turn(model: Path, url: str) -> dict:
    store = RedisStore(url, prefix="mem:")
    engine = Engine(
        FixedModels(ModelSet.from_dirs(model / "core", model / "nlu")), store
    )
    client = redis.Redis.from_url(url)
    keys = conversation_keys("mem:", "c")
    usage: dict[int, dict[str, Any]] = {}
    for turn in range(1, CHECKPOINTS[-1] + 1):
        reply = engine.parse("c", MESSAGES[turn % len(MESSAGES)])
        action = reply["next_action"]
        if action and action != "action_listen":
            engine.continue_("c", action, [])
        if turn in CHECKPOINTS:
            usage[turn] = {
                "log_bytes": client.memory_usage(keys[0], samples=0),
                "meta_bytes": client.memory_usage(keys[1], samples=0),
                "events": store.log_length("c"),
            }
    stretches = []
    for a, b in itertools.pairwise(CHECKPOINTS):
        grown = (
            usage[b]["log_bytes"]
            + usage[b]["meta_bytes"]
            - usage[a]["log_bytes"]
            - usage[a]["meta_bytes"]
        )
        events = usage[b]["events"] - usage[a]["events"]
        stretches.append(
            {
                "turns": f"{a}-{b}",
                "bytes_per_event": round(grown / events, 1),
                "bytes_per_turn": round(grown / (b - a), 1),
            }
        )
    return {"at": usage, "growth": stretches}


def _memory(pid: int) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(
        int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")
    )
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    pss = next(
        int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")
    )
    return {"rss_mb": round(rss / 1024, 1), "pss_mb": round(pss / 1024, 1)}


def workers(model: Path, url: str, tmp: Path) -> dict:
    start = time.perf_counter()
    server = Server(model, url, "", tmp, nlu=True, workers=2)
    server.start(poll_interval=0.005)
    base = server.url
    requests.post(
        f"{base}/conversations/first/parse", json={"query": "hello"}, timeout=5
    ).raise_for_status()
    first_answer = time.perf_counter() - start
    try:
        session = requests.Session()
        for i in range(500):
            session.post(
                f"{base}/conversations/w{i % 20}/parse",
                json={"query": MESSAGES[i % len(MESSAGES)]},
            )
        assert server.proc is not None
        children = subprocess.run(
            ["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True
        ).stdout.split()
        per_worker = [_memory(int(pid)) for pid in children]
        return {
            "first_answer_s": round(first_answer, 3),
            "master": _memory(server.proc.pid),
            "workers": per_worker,
        }
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedRedis(Path(tmp) / "redis") as server,
    ):
        model = moodbot_model(Path(tmp))
        result = {
            "redis": redis_per_turn(model, server.url),
            "server": workers(model, server.url, Path(tmp)),
        }
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
