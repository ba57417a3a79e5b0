"""The NLU throughput table: ratios to the baseline model per round, and the
workers' CPU time per request."""

from __future__ import annotations

from bench.nlu_throughput import table


def _row(model: str, round_: int, rps: float, cpu_s: tuple[float, float]) -> dict:
    return {
        "model": model,
        "connections": 8,
        "round": round_,
        "rps": rps,
        "requests": int(rps * 8),
        "p50_us": 1000,
        "p99_us": 2000,
        "socket_errors": 0,
        "non_2xx": 0,
        "worker_cpu_s": list(cpu_s),
    }


def _columns(text: str, model: str) -> list[str]:
    """The "of baseline", "used" and "cpu ms" columns of a model's row."""
    return next(x for x in text.splitlines() if x.startswith(model)).split()[-3:]


def test_ratio_and_cpu_per_request() -> None:
    runs = [_row("plain", i, 800, (2.4, 2.4)) for i in range(3)]
    # round 1 was slowed from outside: its ratio is left out
    runs += [
        _row("encoder", 0, 200, (2.0, 2.0)),
        _row("encoder", 1, 60, (0.6, 0.6)),
        _row("encoder", 2, 240, (2.4, 2.4)),
    ]
    text = table({"runs": runs}, ["plain"])
    # plain: 4.8 s of worker CPU for 6,400 requests; encoder: 4 s / 1,600 and so on
    assert _columns(text, "plain") == ["100.0%", "3/3", "0.75"]
    assert _columns(text, "encoder") == ["27.5%", "2/3", "2.50"]


def test_each_model_is_compared_to_its_own_sets_baseline() -> None:
    runs = [_row("a-plain", i, 800, (2.0, 2.0)) for i in range(3)]
    runs += [_row("a-enc", i, 200, (2.0, 2.0)) for i in range(3)]
    runs += [_row("b-plain", i, 400, (2.0, 2.0)) for i in range(3)]
    runs += [_row("b-enc", i, 120, (2.0, 2.0)) for i in range(3)]
    models = [[m, m[0], "path"] for m in ("a-plain", "a-enc", "b-plain", "b-enc")]
    text = table({"runs": runs, "models": models}, ["a-plain", "b-plain"])
    assert _columns(text, "a-enc")[0] == "25.0%"
    assert _columns(text, "b-enc")[0] == "30.0%"
    assert _columns(text, "b-plain")[0] == "100.0%"
