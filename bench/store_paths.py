"""Client CPU of a turn's store work, redis-py's public path against the fast paths.

A turn's store work is a prefetched load and an append. One process, one private
Redis, two stores: one with ``trackerstore.clients.FAST_PATHS`` (kernel socket
timeouts, commands sent straight on the thread's connection), one without
(redis-py's ``execute_command`` and ``socket_timeout``). Blocks alternate, and
the figure is the median of the per-block ratios:

    python -m bench.store_paths [--turns 2000] [--blocks 8]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import redis

from api.testing import free_port
from trackerstore import EmbeddedRedis
from trackerstore import clients
from trackerstore.redis_store import RedisStore

SNAPSHOT = {"slots": {}, "states": [{"intent_greet": 1.0}] * 5, "pad": "x" * 1500}
EVENTS = [
    {"event": "user", "text": "hello there", "timestamp": 1.0},
    {"event": "action", "name": "utter_greet", "timestamp": 1.0},
]


def block(store: RedisStore, turns: int) -> float:
    """Client CPU microseconds per turn over ``turns`` turns on 50 conversations."""
    start = time.process_time()
    for i in range(turns):
        cid = f"c{i % 50}"
        loaded = store.prefetch(cid).result()
        store.append(cid, EVENTS, loaded.version, SNAPSHOT)
    return (time.process_time() - start) / turns * 1e6


def run(turns: int, blocks: int) -> dict:
    figures: dict[bool, list[float]] = {True: [], False: []}
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedRedis(Path(tmp) / "redis", port=free_port()) as server,
    ):
        stores = {}
        for fast in (True, False):
            clients.FAST_PATHS = fast  # read when the client is made, and per call
            stores[fast] = RedisStore(server.url, prefix=f"{fast}:")
            for cid in range(50):
                stores[fast].append(f"c{cid}", EVENTS, 0, SNAPSHOT)
        for _ in range(blocks):
            for fast in (True, False):
                clients.FAST_PATHS = fast
                figures[fast].append(block(stores[fast], turns))
        for store in stores.values():
            store.close()
    ratios = [b / a for a, b in zip(figures[True], figures[False], strict=True)]
    return {
        "redis_py": redis.__version__,
        "fast_us_per_turn": round(statistics.median(figures[True]), 1),
        "public_us_per_turn": round(statistics.median(figures[False]), 1),
        "public_over_fast": round(statistics.median(ratios), 3),
        "blocks": blocks,
        "turns": turns,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=2000)
    parser.add_argument("--blocks", type=int, default=8)
    args = parser.parse_args()
    print(json.dumps(run(args.turns, args.blocks)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
