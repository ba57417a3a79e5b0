"""The throughput table's ratio to the floor leaves out rounds slowed from outside,
but not those slowed by one worker doing the work of two."""

from __future__ import annotations

from bench.http_throughput import table


def _row(
    server: str,
    path: str,
    round_: int,
    rps: float,
    shares: tuple[float, ...] = (0.5, 0.5),
    connections: int = 8,
) -> dict:
    return {
        "server": server,
        "path": path,
        "connections": connections,
        "conversations": 10000,
        "round": round_,
        "rps": rps,
        "p50_us": 1000,
        "p99_us": 2000,
        "socket_errors": 0,
        "non_2xx": 0,
        "worker_shares": list(shares),
    }


def _share(text: str, server: str) -> list[str]:
    """The "of floor" and "used" columns of the server's first row."""
    line = next(x for x in text.splitlines() if x.startswith(server))
    return line.split()[-3:-1]


def test_rounds_with_a_collapsed_floor_do_not_count() -> None:
    # rounds 1 and 3: the host was busy in the floor's window
    floor = [3000, 1400, 3000, 1500, 3000]
    dialogd = [1650, 1800, 1700, 1800, 1750]
    runs = [_row("floor", "parse", i, v) for i, v in enumerate(floor)]
    runs += [_row("dialogd", "parse", i, v) for i, v in enumerate(dialogd)]
    # all five ratios have the median 1750/3000 = 58%; the clean three 1700/3000
    assert _share(table({"runs": runs}), "dialogd") == ["57%", "3/5"]
    runs[1]["rps"] = runs[3]["rps"] = 3000
    assert _share(table({"runs": runs}), "dialogd") == ["58%", "5/5"]


def test_a_disturbed_dialogd_round_does_not_count_either() -> None:
    runs = [_row("floor", "parse", i, 3000) for i in range(3)]
    runs += [_row("dialogd", "parse", i, v) for i, v in enumerate([1500, 600, 1560])]
    assert _share(table({"runs": runs}), "dialogd") == ["51%", "2/3"]


def test_a_round_slowed_by_one_busy_worker_counts() -> None:
    runs = [_row("floor", "parse", i, 3000) for i in range(3)]
    runs += [_row("dialogd", "parse", i, v) for i, v in enumerate([1500, 600, 1560])]
    runs[4]["worker_shares"] = [0.99, 0.01]
    text = table({"runs": runs})
    assert _share(text, "dialogd") == ["50%", "3/3"]
    assert text.splitlines()[2].split()[-1] == "99%"  # the busiest worker's share


def test_one_connection_is_one_worker_not_an_imbalance() -> None:
    runs = [_row("floor", "parse", i, 3000, connections=1) for i in range(3)]
    runs += [
        _row("dialogd", "parse", i, v, (1.0, 0.0), connections=1)
        for i, v in enumerate([1500, 600, 1560])
    ]
    assert _share(table({"runs": runs}), "dialogd") == ["51%", "2/3"]


def test_redos_per_turn_and_cpu_per_request() -> None:
    """The turns redone per answered turn over all rounds, and the median of the
    workers' CPU time per request; "-" for the floor, which counts no redos."""
    runs = [_row("floor", "parse", i, 3000) for i in range(2)]
    runs += [_row("dialogd", "parse", i, 1500) for i in range(2)]
    for run, requests, redos, cpu in zip(
        runs,
        [100, 100, 1000, 3000],
        [None, None, 500, 500],
        [0.05, 0.05, 1.0, 4.5],
        strict=True,
    ):
        run.update(requests=requests, worker_cpu_s=[cpu / 2, cpu / 2])
        if redos is not None:
            run["redos"] = redos
    lines = table({"runs": runs}).splitlines()
    floor, dialogd = lines[1].split(), lines[2].split()
    assert floor[8:10] == ["500", "-"]
    # CPU: 1,000 and 1,500 µs per request; redos: 1,000 in 4,000 turns
    assert dialogd[8:10] == ["1250", "0.25"]
