"""Does every worker take its share? (issue 18)

dialogd serving moodbot with 2 workers, `/parse` under wrk with 8 keep-alive
connections, in rounds; each round records every worker's share of the CPU time
(/proc) and the throughput, directly and behind the shipped load balancer
(deploy/nginx.conf as deploy/render_nginx.py renders it: upstream keep-alive,
``worker_processes auto``). With ``--baseline`` a second instance runs gunicorn's own
accept (``DIALOGD_BALANCE=off``, ``DIALOGD_KEEPALIVE_REQUESTS=0``) on the same Redis,
measured in the same rounds, interleaved, so noise from outside hits both.

    python -m bench.worker_balance [--rounds 10] [--seconds 5] [--baseline] [--out F]

The verdict per setup: no round imbalanced (the busiest worker at most 1.3 fair
shares: 65% of 2 workers; ``bench/cpu_shares.py``), and the slowest round at least
80% of the fastest. Both need a quiet machine: the load
average is recorded with each round.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from api.testing import Server
from api.testing import free_port
from bench.cpu_shares import CpuShares
from bench.cpu_shares import imbalanced
from bench.http_throughput import wait_ready
from bench.http_throughput import wrk
from bench.turn_latency import moodbot_model
from trackerstore import EmbeddedRedis

ROOT = Path(__file__).resolve().parents[1]
STOCK = {"DIALOGD_BALANCE": "off", "DIALOGD_KEEPALIVE_REQUESTS": "0"}
#: the slowest round must do at least this share of the fastest one's requests
STEADY = 0.8


def _nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)),
        None,
    )
    if found is None:
        raise SystemExit("nginx is not installed (apt-get install nginx)")
    return found


def _render(upstream: str, listen: str, run_dir: Path) -> str:
    spec = importlib.util.spec_from_file_location(
        "render_nginx", ROOT / "deploy" / "render_nginx.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text: str = module.render([upstream], listen=listen, run_dir=run_dir)
    return text


def _start(
    model: Path, work: Path, redis_url: str, workers: int, env: dict[str, str]
) -> Server:
    saved = dict(os.environ)
    os.environ.update(env)
    try:  # the server inherits the environment; ours is put back at once
        return Server(
            model, redis_url, "bench:", work, nlu=True, workers=workers
        ).start()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run(
    rounds: int, seconds: int, connections: int, workers: int, baseline: bool
) -> dict:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    nginx = _nginx_binary()
    variants = {"balanced": {}, **({"stock": STOCK} if baseline else {})}
    rows = []
    balancers: list[subprocess.Popen] = []
    servers: list[Server] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedRedis(Path(tmp) / "redis", port=free_port()) as redis,
    ):
        work = Path(tmp)
        model = moodbot_model(work)
        setups = []
        try:
            for name, env in variants.items():
                server = _start(model, work, redis.url, workers, env)
                servers.append(server)
                run_dir = work / f"nginx-{name}"
                run_dir.mkdir()
                listen = f"127.0.0.1:{free_port()}"
                conf = run_dir / "nginx.conf"
                conf.write_text(_render(f"127.0.0.1:{server.port}", listen, run_dir))
                command = [nginx, "-p", str(run_dir), "-e", str(run_dir / "error.log")]
                balancers.append(
                    subprocess.Popen(
                        [*command, "-c", str(conf), "-g", "daemon off;"],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
                wait_ready(f"http://{listen}")
                setups.append((name, "direct", server, server.url))
                setups.append((name, "nginx", server, f"http://{listen}"))
            for round_ in range(rounds):
                # NOTE: each round starts with another setup, so none is always
                # measured right after the same neighbour.
                shift = round_ % len(setups)
                for name, via, server, url in setups[shift:] + setups[:shift]:
                    assert server.proc is not None
                    with CpuShares(server.proc.pid) as cpu:
                        row = wrk(
                            url,
                            "parse",
                            connections,
                            10000,
                            seconds,
                            f"{name}-{via}-{round_}",
                        )
                    row.update(
                        variant=name,
                        via=via,
                        round=round_,
                        load=round(os.getloadavg()[0], 2),
                        **cpu.record(),
                    )
                    rows.append(row)
                    print(json.dumps(row), flush=True)
        finally:
            for balancer in balancers:
                balancer.terminate()
                balancer.wait(30)
            for server in servers:
                server.stop()
    return {
        "workers": workers,
        "connections": connections,
        "seconds": seconds,
        "rounds": rounds,
        "cpus": os.cpu_count(),
        "runs": rows,
    }


def summary(result: dict) -> str:
    """One line per setup: throughput, the busiest worker's share per round, the
    verdict."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in result["runs"]:
        groups.setdefault((row["variant"], row["via"]), []).append(row)
    lines = []
    for (variant, via), rows in groups.items():
        rows.sort(key=lambda r: r["round"])
        rps = [r["rps"] for r in rows]
        busiest = [r["worker_shares"][0] for r in rows]
        over = sum(imbalanced(r["worker_shares"]) for r in rows)
        steady = min(rps) / max(rps)
        verdict = "PASS" if not over and steady >= STEADY else "FAIL"
        errors = sum(r["socket_errors"] + r["non_2xx"] for r in rows)
        lines.append(
            f"{variant:8} {via:6} req/s min {min(rps):.0f} max {max(rps):.0f} "
            f"(worst/best {steady:.0%}); busiest worker "
            f"{' '.join(f'{s:.0%}' for s in busiest)}; imbalanced rounds "
            f"{over}/{len(rows)}; errors {errors}; {verdict}"
        )
    loads = [r["load"] for r in result["runs"]]
    lines.append(f"load average (1 min) during the run: {min(loads)}-{max(loads)}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also measure gunicorn's own accept (DIALOGD_BALANCE=off), interleaved",
    )
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    result = run(
        args.rounds, args.seconds, args.connections, args.workers, args.baseline
    )
    print(summary(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
