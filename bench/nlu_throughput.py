"""``POST /parse`` (NLU only) throughput and latency of several NLU models under wrk.

Each model is served by its own ``dialogd serve`` (the same gunicorn settings and
worker count, one private Redis, moodbot's core model beside it) and parses the
val texts of its set, each in turn, never one text again and again. Rounds
alternate the servers, and every row gives the median of its per-round ratios to
the ``--baseline`` model of its set in the same round (one baseline a set, e.g.
each set's plain pipeline), so a burst of outside load cannot favour either side.
Each row also gives the workers' CPU time per request (all their threads, from
/proc), which outside load inflates far less than req/s:

    python -m bench.nlu.run --set hwu64 --out runs/plain
    python -m bench.nlu.run --set hwu64 --encoder --out runs/encoder
    python -m bench.nlu_throughput --model plain=hwu64:runs/plain/hwu64/model \\
        --model encoder=hwu64:runs/encoder/hwu64/model --baseline plain
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from api.testing import Server
from api.testing import free_port
from bench.cpu_shares import CpuShares
from bench.http_throughput import DISTURBED
from bench.http_throughput import run_wrk
from bench.http_throughput import wait_ready
from bench.nlu.datasets import load_set
from bench.turn_latency import moodbot_model
from trackerstore import EmbeddedRedis

LUA = Path(__file__).with_name("wrk_nlu.lua")


def wrk(url: str, bodies: Path, connections: int, seconds: int) -> dict:
    return run_wrk(LUA, url, connections, seconds, DLG_BODIES=str(bodies))


def parse_model(text: str) -> tuple[str, str, Path]:
    """``LABEL=SET:PATH`` (an NLU model folder; SET names the val texts)."""
    label, _, rest = text.partition("=")
    name, _, path = rest.partition(":")
    if not (label and name and path):
        raise argparse.ArgumentTypeError(f"expected LABEL=SET:PATH, got {text!r}")
    return label, name, Path(path)


def run(
    models: list[tuple[str, str, Path]],
    workers: int,
    seconds: int,
    connections: list[int],
    rounds: int,
) -> dict:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    results = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedRedis(Path(tmp) / "redis", port=free_port()) as redis,
    ):
        work = Path(tmp)
        core = moodbot_model(work) / "core"
        servers = []
        try:
            for label, name, path in models:
                folder = work / "models" / label
                folder.mkdir(parents=True)
                (folder / "core").symlink_to(core.resolve())
                (folder / "nlu").symlink_to(path.resolve())
                bodies = work / f"{label}.bodies"
                _, val = load_set(name)
                bodies.write_text(
                    "".join(json.dumps({"q": ex.text}) + "\n" for ex in val.examples)
                )
                server = Server(
                    folder, redis.url, f"{label}:", work, nlu=True, workers=workers
                ).start(timeout=120)
                servers.append(server)
                wait_ready(server.url)
                wrk(server.url, bodies, 2, 1)  # warm up: first parses, lazy loads
            for round_ in range(rounds):
                for c in connections:
                    for (label, _, _), server in zip(models, servers, strict=True):
                        assert server.proc is not None
                        with CpuShares(server.proc.pid) as cpu:
                            row = wrk(server.url, work / f"{label}.bodies", c, seconds)
                        row.update(
                            **cpu.record(), model=label, connections=c, round=round_
                        )
                        results.append(row)
                        print(json.dumps(row), flush=True)
        finally:
            for server in servers:
                server.stop()
    return {
        "workers": workers,
        "seconds": seconds,
        "rounds": rounds,
        "models": [[label, name, str(path)] for label, name, path in models],
        "runs": results,
        "cpus": os.cpu_count(),
    }


def cpu_ms_per_request(row: dict) -> float:
    """The workers' CPU milliseconds per request of one wrk run."""
    return 1000 * sum(row["worker_cpu_s"]) / max(row["requests"], 1)


def table(result: dict, baselines: list[str]) -> str:
    """Medians over the rounds, and the median per-round ratio to the baseline of
    the model's set (of ``baselines``; the first for a set without one) over the
    rounds where neither row was slowed from outside (as in
    ``bench.http_throughput``); worker CPU ms per request, median of the rounds."""
    sets = {label: name for label, name, _ in result.get("models", [])}
    baseline_of = {sets.get(b): b for b in reversed(baselines)}
    groups: dict[tuple, list[dict]] = {}
    for r in result["runs"]:
        groups.setdefault((r["connections"], r["model"]), []).append(r)
    rps = {(*k, r["round"]): r["rps"] for k, rs in groups.items() for r in rs}
    median = {k: statistics.median(r["rps"] for r in rs) for k, rs in groups.items()}

    def clean(key: tuple, round_: int) -> bool:
        return rps[(*key, round_)] >= DISTURBED * median[key]

    lines = [
        f"{'model':16} {'conns':>5} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'errors':>6} {'of baseline':>12} {'used':>5} {'cpu ms':>7}"
    ]
    for key, rs in sorted(groups.items()):
        conns, label = key
        base = (conns, baseline_of.get(sets.get(label), baselines[0]))
        rounds = [r["round"] for r in rs]
        used = [n for n in rounds if clean(key, n) and clean(base, n)]
        shares = [rps[(*key, n)] / rps[(*base, n)] for n in used]
        share = f"{statistics.median(shares):.1%}" if shares else "-"
        errors = sum(r["socket_errors"] + r["non_2xx"] for r in rs)
        lines.append(
            f"{label:16} {conns:>5} {median[key]:>8.0f} "
            f"{statistics.median(r['p50_us'] for r in rs) / 1000:>7.2f} "
            f"{statistics.median(r['p99_us'] for r in rs) / 1000:>7.2f} "
            f"{errors:>6} {share:>12} {len(used):>2}/{len(rounds)} "
            f"{statistics.median(cpu_ms_per_request(r) for r in rs):>7.2f}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        type=parse_model,
        action="append",
        required=True,
        help="LABEL=SET:PATH, an NLU model and the set whose val texts it parses",
    )
    parser.add_argument(
        "--baseline",
        nargs="+",
        required=True,
        help="the LABEL ratios are to (one a set: each model's ratio is to its set's)",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, nargs="+", default=[8])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    for baseline in args.baseline:
        if baseline not in [label for label, _, _ in args.model]:
            parser.error(f"--baseline {baseline} is not a --model label")
    result = run(args.model, args.workers, args.seconds, args.connections, args.rounds)
    print(table(result, args.baseline))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
