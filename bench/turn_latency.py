"""Parse latency against conversation length, over real HTTP.

Starts a private Redis and one ``dialogd serve`` instance (gunicorn, 1 worker) with
the moodbot model, fills conversations to each length with ``PUT .../tracker/events``,
then times ``POST .../parse`` on them, interleaving the lengths so that machine noise
falls on all of them alike. Prints a table and writes JSON with ``--out``.

    python -m bench.turn_latency [--lengths 10 5000] [--requests 2000] [--out F]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from api.cli import main as dialogd
from api.testing import Server
from trackerstore import EmbeddedRedis

ROOT = Path(__file__).resolve().parent.parent
MOODBOT = ROOT / "examples" / "moodbot"


def moodbot_model(work: Path) -> Path:
    model = ROOT / "models" / "moodbot"
    if (model / "core" / "metadata.json").exists():
        return model
    model = work / "moodbot"
    (work / "config.yml").write_text((MOODBOT / "config.yml").read_text())
    assert (
        dialogd(
            [
                "train",
                "--domain",
                str(MOODBOT / "domain.yml"),
                "--stories",
                str(MOODBOT / "data" / "stories.md"),
                "--nlu",
                str(MOODBOT / "data" / "nlu.md"),
                "--config",
                str(work / "config.yml"),
                "--out",
                str(model),
            ]
        )
        == 0
    )
    return model


def turn_events(n: int) -> list[dict]:
    """``n`` events of moodbot turns: listen, user, action, bot, ..."""
    pattern: list[dict[str, Any]] = [
        {"event": "action", "name": "action_listen"},
        {
            "event": "user",
            "text": "/greet",
            "parse_data": {
                "intent": {"name": "greet", "confidence": 1.0},
                "entities": [],
            },
        },
        {"event": "action", "name": "utter_greet"},
        {"event": "bot", "text": "Hey! How are you?"},
    ]
    events: list[dict[str, Any]] = [
        {**pattern[i % 4], "timestamp": 1e9 + i} for i in range(n)
    ]
    events[-1] = {"event": "action", "name": "action_listen", "timestamp": 1e9 + n}
    return events


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(lengths: list[int], n_requests: int, conversations: int) -> dict:
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedRedis(Path(tmp) / "redis") as redis,
    ):
        work = Path(tmp)
        server = Server(
            moodbot_model(work), redis.url, "bench:", work, nlu=True, workers=1
        ).start()
        try:
            s = requests.Session()
            cids = {}
            for length in lengths:
                cids[length] = [f"len{length}-{i}" for i in range(conversations)]
                for cid in cids[length]:
                    r = s.put(
                        f"{server.url}/conversations/{cid}/tracker/events",
                        json=turn_events(length),
                        params={"include_events": "NONE"},
                    )
                    r.raise_for_status()
            for _ in range(200):  # warm up
                s.post(
                    f"{server.url}/conversations/warm/parse", json={"query": "hello"}
                )
            timings: dict[int, list[float]] = {length: [] for length in lengths}
            rng = random.Random(0)
            for i in range(n_requests):
                length = lengths[i % len(lengths)]
                cid = rng.choice(cids[length])
                start = time.perf_counter()
                r = s.post(
                    f"{server.url}/conversations/{cid}/parse",
                    json={"query": "I am feeling great"},
                )
                timings[length].append((time.perf_counter() - start) * 1000)
                r.raise_for_status()
        finally:
            server.stop()
    base = statistics.median(timings[lengths[0]])
    return {
        "lengths": {
            str(length): {
                "p50_ms": round(statistics.median(t), 3),
                "p99_ms": round(percentile(t, 0.99), 3),
                "mean_ms": round(statistics.fmean(t), 3),
                "ratio_p50_to_shortest": round(statistics.median(t) / base, 3),
                "requests": len(t),
            }
            for length, t in timings.items()
        },
        "python": sys.version.split()[0],
        "cpu": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[10, 5000])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    result = run(args.lengths, args.requests, args.conversations)
    print(f"{'events':>8} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'p50 ratio':>10}")
    for length, row in result["lengths"].items():
        print(
            f"{length:>8} {row['p50_ms']:>8} {row['p99_ms']:>8} {row['mean_ms']:>8} "
            f"{row['ratio_p50_to_shortest']:>10}"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
