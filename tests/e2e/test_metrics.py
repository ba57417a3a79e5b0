"""``GET /metrics`` of a real gunicorn server: every worker's counts, dead workers'
live gauges dropped, admin-only with authentication."""

from __future__ import annotations

import os
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import jwt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.testing import Client
from api.testing import Server

PARSE = "/conversations/{cid}/parse"


def scrape(url: str, headers: dict[str, str] | None = None) -> dict[tuple, float]:
    """``{(sample name, sorted labels): value}`` of one scrape."""
    request = urllib.request.Request(url + "/metrics", headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[tuple, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def parses(samples: dict[tuple, float]) -> float:
    return value(
        samples, "dialogd_http_requests_total", route=PARSE, method="POST", status="200"
    )


def live_workers(samples: dict[tuple, float]) -> float:
    """Worker processes serving some model (``dialogd_model_active`` summed)."""
    return sum(v for (n, _), v in samples.items() if n == "dialogd_model_active")


def workers_of(server: Server) -> list[int]:
    assert server.proc is not None
    pid = server.proc.pid
    return [
        int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    ]


def load(url: str, turns: int, threads: int = 4) -> None:
    """``turns`` parse requests from ``threads`` clients at once, so that every
    worker gets some."""

    def client(k: int) -> None:
        c = Client(url)
        for i in range(k, turns, threads):
            c.parse(f"load-{i % 7}", "/greet")
        c.close()

    pool = [threading.Thread(target=client, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def wait_for(predicate, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


def test_metrics_count_every_worker_and_survive_a_killed_one(
    fixture_model, redis_url, tmp_path, monkeypatch
):
    folder = tmp_path / "prom"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    folder.mkdir()
    (folder / "counter_1.db").write_bytes(b"stale")  # an earlier run's file
    with Server(fixture_model, redis_url, "metrics:", tmp_path, workers=3) as server:
        assert not (folder / "counter_1.db").exists()
        workers = wait_for(
            lambda: len(workers_of(server)) == 3 and workers_of(server), "3 workers"
        )
        total = 0
        # NOTE: a worker counts as serving a model from its first request on; load
        # until all three have answered (the kernel spreads connections unevenly).
        for _ in range(20):
            load(server.url, 60)
            total += 60
            samples = scrape(server.url)
            active = live_workers(samples)
            if active == 3:
                break
        assert active == 3, "not every worker answered a request"
        assert parses(samples) == total  # whichever worker answered the scrape
        # every redo of a turn that lost its compare-and-append predicts again
        conflicts = value(samples, "dialogd_turn_conflicts_total")
        policy = value(samples, "dialogd_turn_phase_seconds_count", phase="policy")
        assert policy == total + conflicts
        assert value(samples, "dialogd_turn_phase_seconds_count", phase="store_write")
        assert any(n == "dialogd_turn_phase_seconds_bucket" for n, _ in samples), (
            "phase histograms"
        )

        victim = workers[0]
        assert list(folder.glob(f"gauge_livesum_{victim}.db"))
        os.kill(victim, signal.SIGKILL)
        # gunicorn's child_exit drops the dead worker's live gauge file
        wait_for(
            lambda: not list(folder.glob(f"gauge_livesum_{victim}.db")),
            "the dead worker's gauge file to go",
        )
        after = scrape(server.url)
        # its counts stay: a counter never goes down
        assert parses(after) == total
        assert live_workers(after) <= 2


def test_metrics_route_and_errors_by_template(fixture_model, redis_url, tmp_path):
    with Server(fixture_model, redis_url, "metrics2:", tmp_path, workers=1) as server:
        client = Client(server.url)
        with pytest.raises(Exception, match="HTTP 400"):
            client.get("/conversations/a/tracker?include_events=NOPE")
        with pytest.raises(Exception, match="HTTP 404"):
            client.get("/no/such/path/a1b2c3")
        samples = scrape(server.url)
        assert value(
            samples,
            "dialogd_http_requests_total",
            route="/conversations/{cid}/tracker",
            method="GET",
            status="400",
        )
        # the path a client chose never becomes a label
        assert value(
            samples,
            "dialogd_http_requests_total",
            route="unmatched",
            method="GET",
            status="404",
        )
        assert not any("a1b2c3" in str(labels) for _, labels in samples)
        assert value(samples, "dialogd_errors_total", reason="InvalidParameter") == 1
        assert value(samples, "dialogd_errors_total", reason="NotFound") == 1


def test_no_metrics_flag(fixture_model, redis_url, tmp_path):
    with Server(
        fixture_model,
        redis_url,
        "metrics3:",
        tmp_path,
        workers=1,
        extra=["--no-metrics"],
    ) as server:
        with pytest.raises(urllib.error.HTTPError) as err:
            scrape(server.url)
        assert err.value.code == 404


def test_metrics_are_admin_only_with_auth(fixture_model, redis_url, tmp_path):
    secret = "s3cret-jwt-key-of-32-bytes-or-more!!"
    with Server(
        fixture_model,
        redis_url,
        "metrics4:",
        tmp_path,
        workers=1,
        extra=["--auth-token", "tok", "--jwt-secret", secret],
    ) as server:
        with pytest.raises(urllib.error.HTTPError) as err:
            scrape(server.url)
        assert err.value.code == 401
        user = jwt.encode({"user": {"role": "user", "username": "ada"}}, secret)
        with pytest.raises(urllib.error.HTTPError) as err:
            scrape(server.url, {"Authorization": f"Bearer {user}"})
        assert err.value.code == 403
        admin = jwt.encode({"user": {"role": "admin"}}, secret)
        assert scrape(server.url, {"Authorization": f"Bearer {admin}"})
        assert scrape(server.url, {"Authorization": "Bearer tok"})
