"""Throughput and latency of ``/parse`` and ``/continue`` under wrk, next to the floor.

One private Redis; the floor app (``bench/floor_app.py``) and dialogd serving moodbot,
each under ``api/serving/settings.py`` with the same worker count, measured in the same
run at 1, 8 and 32 connections, over many conversations and over one hot one. Every
row records each worker's share of the CPU time (``bench/cpu_shares.py``) and, for
dialogd, the turns redone after a conflict per answered turn (its ``/metrics``).
``--compare NAME=DIR`` adds a dialogd run from another checkout (``git worktree add
DIR <commit>``, or ``git archive <commit> | tar -x -C DIR``), same model, same Redis,
in every round: an A/B of two versions of the code, each beside the same floor.

    python -m bench.http_throughput [--workers 2] [--seconds 8] [--connections 8]
        [--conversations 1] [--compare before=DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from api.testing import Server
from api.testing import free_port
from bench.cpu_shares import CpuShares
from bench.cpu_shares import imbalanced
from bench.turn_latency import moodbot_model
from trackerstore import EmbeddedRedis

LUA = Path(__file__).with_name("wrk_turn.lua")


def wait_ready(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/status", timeout=1).ok:
                return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not become ready")


def run_wrk(script: Path, url: str, connections: int, seconds: int, **env: str) -> dict:
    """wrk with a Lua ``script`` that prints one JSON line of figures when done
    (``env`` goes to the script); the figures, with ``rps``."""
    out = subprocess.run(
        [
            "wrk",
            f"-t{min(2, connections)}",
            f"-c{connections}",
            f"-d{seconds}s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=True,
    )
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    figures["rps"] = round(figures["requests"] / (figures["duration_us"] / 1e6), 1)
    return figures


def wrk(
    url: str, path: str, connections: int, conversations: int, seconds: int, prefix: str
) -> dict:
    """A turn (``parse`` or ``continue``) on one of ``conversations``."""
    return run_wrk(
        LUA,
        url,
        connections,
        seconds,
        DLG_PATH=path,
        DLG_CONVS=str(conversations),
        DLG_PREFIX=prefix,
    )


def redos(url: str) -> float | None:
    """Turns redone after a conflict so far (all workers), from ``/metrics``."""
    try:
        text = requests.get(url + "/metrics", timeout=10).text
    except requests.RequestException:
        return None
    for line in text.splitlines():
        if line.startswith("dialogd_turn_conflicts_total"):
            return float(line.split()[-1])
    return None


def start_dialogd(
    model: Path, redis_url: str, name: str, work: Path, workers: int, code: str | None
) -> Server:
    """dialogd serving ``model``, from this checkout or from the one at ``code``.

    NOTE: ``python -m`` puts the working directory first on ``sys.path``, before
    ``PYTHONPATH``: without ``PYTHONSAFEPATH`` the other checkout's server would
    import this one's code."""
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "PYTHONSAFEPATH")}
    if code is not None:
        os.environ.update(PYTHONPATH=str(Path(code).resolve()), PYTHONSAFEPATH="1")
    try:
        return Server(
            model, redis_url, f"bench-{name}:", work, nlu=True, workers=workers
        ).start()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run(
    workers: int,
    seconds: int,
    connections: list[int],
    rounds: int,
    conversations: list[int] | None = None,
    compare: dict[str, str] | None = None,
) -> dict:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    results = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedRedis(Path(tmp) / "redis", port=free_port()) as redis,
    ):
        work = Path(tmp)
        floor_port = free_port()
        floor = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.floor_app",
                "--redis-url",
                redis.url,
                "-p",
                str(floor_port),
                "--workers",
                str(workers),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        model = moodbot_model(work)
        servers = {
            "dialogd": start_dialogd(model, redis.url, "dialogd", work, workers, None)
        }
        try:
            for name, code in (compare or {}).items():
                servers[name] = start_dialogd(
                    model, redis.url, name, work, workers, code
                )
            floor_url = f"http://127.0.0.1:{floor_port}"
            wait_ready(floor_url)
            targets = [("floor", floor_url, floor.pid, ["parse"])]
            for name, server in servers.items():
                assert server.proc is not None
                targets.append(
                    (name, server.url, server.proc.pid, ["parse", "continue"])
                )
            # NOTE: rounds repeat the whole matrix, so the floor and dialogd are
            # measured alternately and a burst of noise cannot favour either; the
            # dialogd runs change order from round to round.
            for round_ in range(rounds):
                ours = targets[1:] if round_ % 2 == 0 else targets[:0:-1]
                for convs in conversations or (10000, 1):
                    for c in connections:
                        for name, url, master, paths in [targets[0], *ours]:
                            for path in paths:
                                prefix = f"{name}-{path}-{c}-{convs}-{round_}"
                                before = redos(url) if name != "floor" else None
                                with CpuShares(master) as cpu:
                                    row = wrk(url, path, c, convs, seconds, prefix)
                                after = redos(url) if before is not None else None
                                row.update(
                                    **cpu.record(),
                                    server=name,
                                    path=path,
                                    connections=c,
                                    conversations=convs,
                                    round=round_,
                                    load=os.getloadavg()[0],
                                )
                                if before is not None and after is not None:
                                    row["redos"] = after - before
                                results.append(row)
                                print(json.dumps(row), flush=True)
        finally:
            for server in servers.values():
                server.stop()
            floor.terminate()
            floor.wait(30)
    return {
        "workers": workers,
        "seconds": seconds,
        "rounds": rounds,
        "runs": results,
        "cpus": os.cpu_count(),
    }


#: a row under this share of its own median across rounds was slowed from outside
DISTURBED = 0.75


def table(result: dict) -> str:
    """Medians over the rounds. "of floor" is the median of the per-round ratios
    over the undisturbed rounds (``used``): on a shared host a burst of outside load
    can halve one 4-second row, and a ratio to a halved floor means nothing. Noise
    only ever slows a row down, so a row far below its own median is disturbed;
    such a round counts for neither side. But a slow row with at least one
    connection per worker, whose busiest worker did much more than its share of the
    work (:func:`bench.cpu_shares.imbalanced`), was slowed by how the server dealt
    out the connections, not from outside: it counts. "busiest" is the largest
    share one worker had in any round."""
    groups: dict[tuple, list[dict]] = {}
    for r in result["runs"]:
        key = (r["conversations"], r["connections"], r["server"], r["path"])
        groups.setdefault(key, []).append(r)
    rps = {(*k, r.get("round", 0)): r["rps"] for k, rs in groups.items() for r in rs}
    median = {k: statistics.median(r["rps"] for r in rs) for k, rs in groups.items()}

    cpu = {
        (*k, r.get("round", 0)): r.get("worker_shares", [])
        for k, rs in groups.items()
        for r in rs
    }

    def clean(key: tuple, round_: int) -> bool:
        at = (*key, round_)
        ours = key[1] >= len(cpu[at]) and imbalanced(cpu[at])
        return rps[at] >= DISTURBED * median[key] or ours

    lines = [
        f"{'server':8} {'path':9} {'conns':>5} {'convs':>6} {'req/s':>8} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'cpu us':>6} {'redos':>5} "
        f"{'of floor':>8} {'used':>5} {'busiest':>7}"
    ]
    for key, rs in sorted(
        groups.items(), key=lambda kv: (-kv[0][0], kv[0][1], kv[0][2] != "floor")
    ):
        convs, conns, server, path = key
        floor_key = (convs, conns, "floor", "parse")
        rounds = [r.get("round", 0) for r in rs]
        used = [n for n in rounds if clean(key, n) and clean(floor_key, n)]
        shares = [rps[(*key, n)] / rps[(*floor_key, n)] for n in used]
        share = f"{statistics.median(shares):.0%}" if shares else "-"
        errors = sum(r["socket_errors"] + r["non_2xx"] for r in rs)
        most = max(max(cpu[(*key, n)], default=0.0) for n in rounds)
        lines.append(
            f"{server:8} {path:9} {conns:>5} {convs:>6} "
            f"{median[key]:>8.0f} "
            f"{statistics.median(r['p50_us'] for r in rs) / 1000:>7.2f} "
            f"{statistics.median(r['p99_us'] for r in rs) / 1000:>7.2f} "
            f"{errors:>6} {_per_request(rs):>6} {_redos(rs):>5} "
            f"{share:>8} {len(used):>2}/{len(rounds)} {most:>7.0%}"
        )
    return "\n".join(lines)


def _per_request(rows: list[dict]) -> str:
    """Median over the rounds of the workers' CPU time per answered request (µs)."""
    costs = [
        sum(r["worker_cpu_s"]) / r["requests"] * 1e6
        for r in rows
        if r.get("worker_cpu_s") and r.get("requests")
    ]
    return f"{statistics.median(costs):.0f}" if costs else "-"


def _redos(rows: list[dict]) -> str:
    """Turns redone after a conflict per answered turn, over all the rounds."""
    counted = [r for r in rows if "redos" in r and r.get("requests")]
    if not counted:
        return "-"
    return (
        f"{sum(r['redos'] for r in counted) / sum(r['requests'] for r in counted):.2f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--conversations",
        type=int,
        nargs="+",
        default=[10000, 1],
        help="conversations the turns go to (1: one hot conversation)",
    )
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="also run dialogd from the checkout in DIR, as NAME",
    )
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    compare = dict(item.split("=", 1) for item in args.compare)
    result = run(
        args.workers,
        args.seconds,
        args.connections,
        args.rounds,
        args.conversations,
        compare,
    )
    print(table(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
