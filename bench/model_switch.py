"""Serving while a model trains, and memory across model switches.

- Latency: two instances (2 workers each) and a trainer process on one Redis; wrk
  drives ``/parse`` at 8 connections for ``--seconds`` without training, then again
  while the trainer fits an NLU model on SNIPS (a ~30 s job), and reports p50/p99 of
  both and their ratio.
- Memory: the RSS of every worker after each of ``--switches`` switches between two
  registered models, under light traffic.

    python -m bench.model_switch [--seconds 10] [--switches 20] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from api.testing import Server
from api.testing import free_port
from bench import data as bench_data
from bench.http_throughput import wrk
from bench.resources import _memory
from bench.turn_latency import moodbot_model
from trackerstore import EmbeddedRedis


def worker_pids(server: Server) -> list[int]:
    """The gunicorn workers (not the trainer process an instance may start)."""
    assert server.proc is not None
    out = subprocess.run(
        ["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True
    ).stdout.split()
    # NOTE: the trainer runs ``python -m api trainer``; a worker's command line is
    # its master's, which may hold ``--trainer``: compare whole arguments.
    return [
        int(p)
        for p in out
        if b"trainer" not in Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")
    ]


def latency(servers: list[Server], seconds: int, snips: Path) -> dict:
    base = servers[0].url
    quiet = wrk(base, "parse", 8, 1000, seconds, "quiet")
    r = requests.post(
        f"{base}/train",
        params={"name": "snips", "wait": "false"},
        data=snips.read_bytes(),
        timeout=60,
    )
    r.raise_for_status()
    job = r.json()["job"]
    while requests.get(f"{base}/train/{job}").json()["status"] == "queued":
        time.sleep(0.1)
    busy = wrk(base, "parse", 8, 1000, seconds, "busy")
    state = requests.get(f"{base}/train/{job}").json()
    return {
        "without_training": quiet,
        "while_training": busy,
        "training_still_running_at_end": state["status"] == "running",
        "p99_ratio": round(busy["p99_us"] / quiet["p99_us"], 3),
        "p50_ratio": round(busy["p50_us"] / quiet["p50_us"], 3),
    }


def memory(servers: list[Server], switches: int) -> dict:
    base = servers[0].url
    for name, text in (("m-a", "hello there"), ("m-b", "good morning")):
        nlu = {
            "rasa_nlu_data": {
                "common_examples": [
                    {"text": text, "intent": "greet"},
                    {"text": "bye", "intent": "goodbye"},
                    {"text": "I am sad", "intent": "mood_unhappy"},
                ]
            }
        }
        requests.post(
            f"{base}/train", params={"name": name}, json=nlu, timeout=120
        ).raise_for_status()
    pids = [pid for s in servers for pid in worker_pids(s)]
    rss = []
    session = requests.Session()
    for i in range(switches + 1):
        if i:
            requests.put(f"{base}/model", json={"name": "m-a" if i % 2 else "m-b"})
            time.sleep(1.0)
        for j in range(50):
            session.post(
                f"{servers[j % 2].url}/conversations/mem-{j}/parse",
                json={"query": "hello"},
            )
        rss.append([_memory(pid)["rss_mb"] for pid in pids])
    return {
        "rss_mb_per_worker_after_each_switch": rss,
        "first": rss[1],
        "last": rss[-1],
        "growth_mb": [round(b - a, 1) for a, b in zip(rss[1], rss[-1], strict=True)],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--switches", type=int, default=20)
    parser.add_argument("--out")
    args = parser.parse_args()
    try:
        snips = bench_data.path("snips") / "rasa" / "train.json"
    except bench_data.DataMissing as exc:
        parser.error(str(exc))
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedRedis(Path(tmp) / "redis", port=free_port()) as redis,
    ):
        work = Path(tmp)
        model = moodbot_model(work)
        servers = [
            Server(
                model, redis.url, "sw:", work, nlu=True, workers=2, extra=extra
            ).start()
            for extra in (("--trainer",), ())
        ]
        try:
            result = {
                "latency": latency(servers, args.seconds, snips),
                "memory": memory(servers, args.switches),
            }
        finally:
            for server in servers:
                server.stop()
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
