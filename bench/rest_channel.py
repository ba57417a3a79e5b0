"""Messages per second on the REST channel (the server runs the bot), beside the
parse turn of the same run and server settings.

Three rows, measured in alternating rounds (so noise hits them alike), with wrk
over 1,000 conversations:

- ``parse``: moodbot's ``/conversations/{id}/parse`` (the client runs actions);
- ``rest``: moodbot on ``/webhooks/rest/webhook``: NLU, prediction and the
  domain's responses, every step logged, all in the server;
- ``rest+action``: a bot whose every message runs one custom action on a
  rasa_sdk action server on this machine (tests/fixtures/loopbot).

    python -m bench.rest_channel [--workers 2] [--connections 8] [--seconds 8]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from pathlib import Path

from api.cli import main as dialogd
from api.testing import Server
from api.testing import free_port
from bench.http_throughput import run_wrk
from bench.turn_latency import ROOT
from bench.turn_latency import moodbot_model
from tests.actions.servers import ActionServer
from trackerstore import EmbeddedRedis

LUA = Path(__file__).with_name("wrk_rest.lua")
#: loopbot's custom action on rasa_sdk's own action server
ACTIONS = "tests.fixtures.loopbot.counting"
LOOPBOT = ROOT / "tests" / "fixtures" / "loopbot"


def wrk(url: str, path: str, text: str, connections: int, seconds: int, prefix: str):
    return run_wrk(
        LUA, url, connections, seconds, DLG_PATH=path, DLG_TEXT=text, DLG_PREFIX=prefix
    )


def loopbot_model(work: Path) -> Path:
    out = work / "loopbot"
    args = ["train", "--domain", str(LOOPBOT / "domain.yml")]
    args += ["--data", str(LOOPBOT / "data"), "--config", str(LOOPBOT / "config.yml")]
    assert dialogd([*args, "--out", str(out)]) == 0
    return out


def run(workers: int, connections: int, seconds: int, rounds: int) -> dict:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    rows = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedRedis(Path(tmp) / "redis", port=free_port()) as redis,
        ActionServer(
            "rasa_sdk", ACTIONS, env={"LOOPBOT_CALLS": str(Path(tmp) / "calls")}
        ) as actions,
    ):
        work = Path(tmp)
        endpoints = work / "endpoints.yml"
        endpoints.write_text(f"action_endpoint:\n  url: {actions.url}\n")
        mood = Server(
            moodbot_model(work), redis.url, "mood:", work, nlu=True, workers=workers
        )
        loop = Server(
            loopbot_model(work),
            redis.url,
            "loop:",
            work,
            workers=workers,
            extra=["--endpoints", str(endpoints)],
        )
        cases = [
            ("parse", mood.url, "parse", "I am feeling great"),
            ("rest", mood.url, "rest", "I am feeling great"),
            ("rest+action", loop.url, "rest", "/count"),
        ]
        with mood, loop:
            for round_ in range(rounds):
                for name, url, path, text in cases:
                    row = wrk(url, path, text, connections, seconds, f"{name}{round_}")
                    row.update(case=name, round=round_, connections=connections)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    return {"workers": workers, "seconds": seconds, "rounds": rounds, "rows": rows}


def table(result: dict) -> str:
    lines = [
        "| case | req/s (median of rounds) | of parse | p50 ms | p99 ms | non-2xx |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    by_case: dict[str, list[dict]] = {}
    for row in result["rows"]:
        by_case.setdefault(row["case"], []).append(row)
    base = statistics.median(r["rps"] for r in by_case["parse"])
    for case, rows in by_case.items():
        rps = statistics.median(r["rps"] for r in rows)
        p50 = statistics.median(r["p50_us"] for r in rows) / 1000
        p99 = statistics.median(r["p99_us"] for r in rows) / 1000
        errors = sum(r["non_2xx"] + r["socket_errors"] for r in rows)
        share = f"{rps / base:.0%}"
        lines.append(
            f"| {case} | {rps:,.0f} | {share} | {p50:.1f} | {p99:.1f} | {errors} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    result = run(args.workers, args.connections, args.seconds, args.rounds)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
