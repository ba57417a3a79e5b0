"""What a feature of ``dialogd serve`` costs a parse turn: the same run, with and
without it. ``metrics`` compares the default with ``--no-metrics`` (and, apart,
times a turn's metric updates against the turn in one process, see
:func:`isolated_metrics_cost`); ``event-stream`` compares ``--event-stream`` with
the default.

Starts a private Redis and two ``dialogd serve`` instances of the moodbot model (one
gunicorn worker each), one with the feature and one without, then sends parse turns
to both in alternating blocks (so machine noise falls on both alike) and compares
the client's latency (median) and the server's CPU time per turn (the worker's user
+ system time, from /proc, over all the blocks).

    python -m bench.feature_cost metrics [--rounds 10] [--block 300] [--out F]
    python -m bench.feature_cost event-stream
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

from api.testing import Server
from bench.turn_latency import moodbot_model
from trackerstore import EmbeddedRedis

MESSAGES = ("hello", "I am very sad", "yes", "great", "bye")


def worker_pids(server: Server) -> list[int]:
    """The gunicorn workers: the children of the master (the server process)."""
    assert server.proc is not None
    master = server.proc.pid
    found = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in found]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the processes (fields 14 and 15 of /proc/PID/stat)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def block(session: requests.Session, url: str, n: int, tag: str) -> list[float]:
    """``n`` parse turns on fresh and repeated conversations; their latencies (ms)."""
    timings = []
    for i in range(n):
        cid = f"{tag}-{i % 50}"
        start = time.perf_counter()
        r = session.post(
            f"{url}/conversations/{cid}/parse",
            json={"query": MESSAGES[i % len(MESSAGES)]},
        )
        timings.append((time.perf_counter() - start) * 1000)
        r.raise_for_status()
    return timings


#: feature -> (flags with it, flags without it)
FEATURES = {
    "metrics": ((), ("--no-metrics",)),
    "event-stream": (("--event-stream",), ()),
}


def run(feature: str, rounds: int, size: int) -> dict:
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedRedis(Path(tmp) / "redis") as redis,
    ):
        work = Path(tmp)
        model = moodbot_model(work)
        on, off = FEATURES[feature]
        servers = {
            "with": Server(
                model, redis.url, "on:", work, nlu=True, workers=1, extra=on
            ),
            "without": Server(
                model, redis.url, "off:", work, nlu=True, workers=1, extra=off
            ),
        }
        try:
            for server in servers.values():
                server.start()
            sessions = {name: requests.Session() for name in servers}
            pids = {name: worker_pids(s) for name, s in servers.items()}
            for name, server in servers.items():  # warm up
                block(sessions[name], server.url, 200, "warm")
            timings: dict[str, list[float]] = {name: [] for name in servers}
            cpu = dict.fromkeys(servers, 0.0)
            for r in range(rounds):
                order = list(servers) if r % 2 == 0 else list(servers)[::-1]
                for name in order:
                    before = cpu_seconds(pids[name])
                    timings[name] += block(
                        sessions[name], servers[name].url, size, f"r{r}"
                    )
                    cpu[name] += cpu_seconds(pids[name]) - before
        finally:
            for server in servers.values():
                server.stop()
    turns = rounds * size
    result: dict = {
        name: {
            "p50_ms": round(statistics.median(t), 3),
            "mean_ms": round(statistics.fmean(t), 3),
            "cpu_ms_per_turn": round(cpu[name] * 1000 / turns, 3),
            "turns": turns,
        }
        for name, t in timings.items()
    }
    on, off = result["with"], result["without"]
    result["feature"] = feature
    result["ratio_p50"] = round(on["p50_ms"] / off["p50_ms"], 3)
    result["ratio_cpu"] = round(on["cpu_ms_per_turn"] / off["cpu_ms_per_turn"], 3)
    result["python"] = sys.version.split()[0]
    return result


def isolated_metrics_cost(model: Path, turns: int = 3000) -> dict:
    """The same question without the noise of a shared machine: the CPU time of a
    parse turn in this process (the app through Falcon's test client, an in-memory
    store, no metrics) against the CPU time of exactly the metric updates one
    parse turn makes (the middleware, the request's counter and histogram, four
    phase histograms), in multiprocess mode, each timed in a loop of its own."""
    import falcon.testing

    from api.app import create_app
    from api.metrics import MULTIPROC_ENV
    from api.metrics import Metrics
    from api.metrics import MetricsMiddleware
    from trackerstore import InMemoryStore
    from worker.models import FixedModels
    from worker.models import ModelSet
    from worker.observe import PHASES
    from worker.turn import Engine

    models = ModelSet.from_dirs(str(model / "core"), str(model / "nlu"))
    engine = Engine(FixedModels(models), InMemoryStore())
    client = falcon.testing.TestClient(create_app(engine))

    def parse_turns(n: int, tag: str) -> None:
        for i in range(n):
            client.simulate_post(
                f"/conversations/{tag}{i % 50}/parse",
                json={"query": MESSAGES[i % len(MESSAGES)]},
            )

    parse_turns(300, "warm")
    started = time.process_time()
    parse_turns(turns, "t")
    turn_us = (time.process_time() - started) / turns * 1e6

    with tempfile.TemporaryDirectory() as folder:
        previous = os.environ.get(MULTIPROC_ENV)
        os.environ[MULTIPROC_ENV] = folder
        try:
            metrics = Metrics()
            middleware = MetricsMiddleware(metrics, engine)
            req = falcon.testing.create_req(
                path="/conversations/a/parse", method="POST"
            )
            resp = falcon.Response()
            started = time.process_time()
            for _ in range(turns):
                middleware.process_request(req, resp)
                for phase in PHASES:
                    metrics.phase(phase, 0.0004)
                middleware.process_response(req, resp, None, True)
            metrics_us = (time.process_time() - started) / turns * 1e6
        finally:
            if previous is None:
                os.environ.pop(MULTIPROC_ENV, None)
            else:
                os.environ[MULTIPROC_ENV] = previous
    return {
        "turn_cpu_us": round(turn_us, 1),
        "metrics_cpu_us_per_turn": round(metrics_us, 1),
        "ratio": round((turn_us + metrics_us) / turn_us, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("feature", choices=sorted(FEATURES))
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--block", type=int, default=300, help="turns per block")
    parser.add_argument("--out", help="write the result as JSON here")
    args = parser.parse_args()
    result = run(args.feature, args.rounds, args.block)
    print("| server | p50 ms | mean ms | worker CPU ms/turn |")
    print("| --- | --- | --- | --- |")
    for name in ("with", "without"):
        r = result[name]
        cells = [f"{args.feature} {name}", r["p50_ms"], r["mean_ms"]]
        cells.append(r["cpu_ms_per_turn"])
        print("| " + " | ".join(map(str, cells)) + " |")
    print(f"ratio with/without: p50 {result['ratio_p50']}, CPU {result['ratio_cpu']}")
    if args.feature == "metrics":
        with tempfile.TemporaryDirectory() as tmp:
            alone = isolated_metrics_cost(moodbot_model(Path(tmp)))
        result["isolated"] = alone
        print(
            f"in one process: a parse turn {alone['turn_cpu_us']} us of CPU, its "
            f"metric updates {alone['metrics_cpu_us_per_turn']} us "
            f"(ratio {alone['ratio']})"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
