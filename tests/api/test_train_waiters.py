"""``POST /train`` and worker threads: a request may wait for its training only
while waiting is cheap. In-process (``falcon.testing``) on a real Redis, with the
trainer played by the test, so which request waits is certain."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import falcon.testing
import pytest

from api.app import create_app
from tests.data import RASA_EXAMPLES
from tests.data import TINY_NLU
from trackerstore import InMemoryStore
from trackerstore.registry import ModelRegistry
from worker.domain import Domain
from worker.model import CoreModel
from worker.nlu import Interpreter
from worker.trainer import run_one
from worker.turn import Engine

MOODBOT = RASA_EXAMPLES / "moodbot"
NLU = TINY_NLU


@pytest.fixture(scope="module")
def core() -> CoreModel:
    return CoreModel.train(
        Domain.load(MOODBOT / "domain.yml"),
        MOODBOT / "data" / "stories.md",
        {"policies": [{"name": "MemoizationPolicy"}]},
    )


@pytest.fixture
def registry(redis_url, key_prefix) -> ModelRegistry:
    return ModelRegistry(redis_url, prefix=key_prefix)


def client(core, registry) -> falcon.testing.TestClient:
    engine = Engine.for_model(core, Interpreter(), InMemoryStore())
    return falcon.testing.TestClient(create_app(engine, registry=registry))


def test_no_live_trainer_is_503_and_queues_nothing(core, registry):
    r = client(core, registry).simulate_post("/train", params={"name": "a"}, json=NLU)
    assert r.status_code == 503 and r.json["reason"] == "NoTrainer"
    assert registry._redis().llen(registry._key("queue")) == 0


def test_one_request_per_process_waits_the_others_are_accepted(core, registry):
    c = client(core, registry)
    registry.trainer_beat("test-trainer")  # alive, but takes no job yet
    pool = ThreadPoolExecutor(2)
    try:
        first = pool.submit(c.simulate_post, "/train", params={"name": "a"}, json=NLU)
        deadline = time.monotonic() + 30
        while registry._redis().llen(registry._key("queue")) < 1:  # it waits now
            assert time.monotonic() < deadline
            time.sleep(0.02)
        second = pool.submit(c.simulate_post, "/train", params={"name": "b"}, json=NLU)
        r = second.result(timeout=60)
        assert r.status_code == 202, r.text
        assert r.headers["Location"] == f"/train/{r.json['job']}"
        assert not first.done()
        registry.trainer_gone("test-trainer")  # the trainer died: stop waiting
        r = first.result(timeout=60)
        assert r.status_code == 202 and r.json["status"] == "queued", r.text
    finally:
        while run_one(registry, timeout=0.1):  # no request waits forever
            pass
        pool.shutdown()
