"""The registry on a real Redis, the trainer's job loop, and the model switch."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import redis

from tests.data import RASA_EXAMPLES
from tests.data import TINY_NLU
from trackerstore.registry import STALE_AFTER
from trackerstore.registry import STARTUP
from trackerstore.registry import TRAINER_TTL
from trackerstore.registry import JobNotFound
from trackerstore.registry import ModelExists
from trackerstore.registry import ModelInUse
from trackerstore.registry import ModelNotFound
from trackerstore.registry import ModelRegistry
from worker.domain import Domain
from worker.errors import InvalidConfig
from worker.errors import TrainingDataError
from worker.model import CoreModel
from worker.models import ModelSet
from worker.models import RegistryModels
from worker.nlu import NLUPipeline
from worker.nlu import load_nlu_data
from worker.trainer import apply_overrides
from worker.trainer import check_request
from worker.trainer import run as run_trainer
from worker.trainer import run_one

MOODBOT = RASA_EXAMPLES / "moodbot"
NLU_JSON = TINY_NLU


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["redis", "folder"])
def registry(request, redis_url, key_prefix, clock, tmp_path) -> ModelRegistry:
    """Archives in Redis (the default) or in a shared folder."""
    folder = tmp_path / "models" if request.param == "folder" else None
    return ModelRegistry(redis_url, prefix=key_prefix, folder=folder, clock=clock)


def test_models_activation_and_deletion(registry):
    registry.put("a", b"A", {"fingerprint": "fa"})
    registry.put("b", b"B", {"fingerprint": "fb"})
    assert [m["name"] for m in registry.models()] == ["a", "b"]
    assert registry.archive("b") == b"B" and registry.meta("a")["fingerprint"] == "fa"
    assert registry.active() is None
    first = registry.activate("a")
    assert first == {"name": "a", "fingerprint": "fa", "serial": first["serial"]}
    assert registry.activate("a")["serial"] == first["serial"] + 1
    with pytest.raises(ModelInUse):
        registry.delete("a")
    registry.delete("b")
    with pytest.raises(ModelNotFound):
        registry.archive("b")
    with pytest.raises(ModelNotFound):
        registry.delete("b")
    with pytest.raises(ModelNotFound):
        registry.activate("nope")
    assert registry.active()["name"] == "a"


def test_a_job_from_queue_to_model(registry):
    job = registry.submit({"name": "demo", "nlu": NLU_JSON, "config": {}})
    assert registry.job(job)["status"] == "queued"
    assert run_one(registry, timeout=1)
    state = registry.job(job)
    assert state["status"] == "succeeded"
    assert state["result"]["figures"]["examples"] == 4
    assert registry.meta("demo")["fingerprint"] == state["result"]["fingerprint"]
    assert not run_one(registry, timeout=0.1)  # nothing left


def test_a_bad_request_fails_as_the_clients_fault(registry):
    job = registry.submit({"name": "bad", "nlu": {"rasa_nlu_data": {"wrong": 1}}})
    run_one(registry, timeout=1)
    state = registry.job(job)
    assert state["status"] == "failed" and state["code"] == 400
    with pytest.raises(ModelNotFound):
        registry.meta("bad")


def test_a_trainer_that_dies_leaves_a_failed_job_and_no_model(registry, clock):
    job = registry.submit({"name": "dies", "nlu": NLU_JSON})
    registry.claim(timeout=1)  # the trainer took it... and was killed
    assert registry.job(job)["status"] == "running"
    clock.now += STALE_AFTER + 1
    state = registry.job(job)
    assert state["status"] == "failed" and "heartbeat" in state["error"]
    assert registry.job(job)["status"] == "failed"  # persisted
    assert registry.models() == []
    with pytest.raises(JobNotFound):
        registry.job("no-such-job")


def test_overrides_reach_every_component_that_takes_them():
    config = apply_overrides(None, {"epochs": "7", "max_history": "3"})
    epochs = [e for e in config["pipeline"] + config["policies"] if "epochs" in e]
    assert epochs and all(e["epochs"] == 7 for e in epochs)
    assert all(
        e.get("max_history") == 3
        for e in config["policies"]
        if e["name"] in ("KerasPolicy", "MemoizationPolicy")
    )
    with pytest.raises(InvalidConfig, match=r"valid: .*epochs"):
        apply_overrides(None, {"epochz": "1"})


@pytest.mark.parametrize(
    "override",
    [
        {"epochs": "abc"},
        {"epochs": "1.5"},
        {"epochs": "true"},
        {"epochs": ["1", "2"]},  # a repeated query parameter
        {"learning_rate": "fast"},
        {"learning_rate": ".nan"},
        {"sublinear_tf": "1"},
        {"hidden_layers_sizes": "[a]"},
        {"pattern": "[1]"},
    ],
)
def test_overrides_must_fit_the_parameter_type(override):
    with pytest.raises(InvalidConfig, match=next(iter(override))):
        apply_overrides(None, override)


def test_overrides_of_the_right_type_pass():
    config = apply_overrides(
        None,
        {
            "learning_rate": "1",
            "hidden_layers_sizes": "[8, 4]",
            "max_training_samples": "null",
            "class_weight": "null",
        },
    )
    keras = next(p for p in config["policies"] if p["name"] == "KerasPolicy")
    assert keras["hidden_layers_sizes"] == [8, 4] and keras["learning_rate"] == 1


def test_requests_are_checked_before_queueing():
    with pytest.raises(TrainingDataError):
        check_request({"nlu": {"rasa_nlu_data": {"wrong": 1}}})
    with pytest.raises(TrainingDataError, match="both"):
        check_request({"domain": "intents: [a]"})
    with pytest.raises(TrainingDataError, match="nothing to train"):
        check_request({})
    check_request(
        {
            "nlu": NLU_JSON,
            "domain": (MOODBOT / "domain.yml").read_text(),
            "stories": (MOODBOT / "data" / "stories.md").read_text(),
        }
    )


#: 370 bytes that expand to 9**9 list items once serialised (a job record)
ALIAS_BOMB = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{b}: &{b} [{', '.join(['*' + a] * 9)}]\n"
    for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)


def test_client_yaml_has_no_aliases():
    """A domain, a config override: anchors and aliases are refused, not expanded."""
    domain = (MOODBOT / "domain.yml").read_text() + ALIAS_BOMB.replace("a:", "x:", 1)
    with pytest.raises(TrainingDataError, match="aliases"):
        check_request(
            {"domain": domain, "stories": (MOODBOT / "data/stories.md").read_text()}
        )
    with pytest.raises(InvalidConfig, match="aliases"):
        apply_overrides(None, {"epochs": "&a [1, *a]"})


def test_data_sent_to_train_names_no_server_file(tmp_path):
    """``elements`` as a string would read a file on the server: refused the same
    whether or not the file exists."""
    for elements in ("/etc/passwd", "../../../../etc/passwd", "no-such-file.txt"):
        nlu = {
            "rasa_nlu_data": {
                **NLU_JSON["rasa_nlu_data"],
                "lookup_tables": [{"name": "user", "elements": elements}],
            }
        }
        with pytest.raises(TrainingDataError) as excinfo:
            check_request({"name": "x", "nlu": nlu})
        assert "cannot name files" in excinfo.value.reason
        assert "No such file" not in str(excinfo.value)


def test_workers_follow_the_active_model(registry, tmp_path):
    fallback = ModelSet.from_dirs(*_moodbot_model(tmp_path))
    models = RegistryModels(fallback, registry, poll_interval=None)
    assert not models.refresh() and models.current() is fallback
    registry.submit({"name": "demo", "nlu": NLU_JSON})
    run_one(registry, timeout=1)
    registry.activate("demo")
    assert models.refresh()
    assert models.current().name == "demo"
    assert models.current().core is fallback.core  # an NLU-only model
    assert models.current().interpreter.parse("hey")["intent"]["name"] == "greet"
    assert not models.refresh()  # nothing new
    registry.put("broken", b"not an archive", {"fingerprint": "x"})
    registry.activate("broken")
    assert not models.refresh()  # reported, and the last good model stays
    assert models.current().name == "demo"
    assert models.named("demo").name == "demo"
    with pytest.raises(ModelNotFound):
        models.named("missing")


def _moodbot_model(tmp_path: Path) -> tuple[Path, Path]:
    CoreModel.train(
        Domain.load(MOODBOT / "domain.yml"), MOODBOT / "data" / "stories.md"
    ).save(tmp_path / "core")
    NLUPipeline().fit(load_nlu_data(MOODBOT / "data" / "nlu.md")).save(tmp_path / "nlu")
    assert json.loads((tmp_path / "core" / "metadata.json").read_text())
    return tmp_path / "core", tmp_path / "nlu"


def test_workers_agree_when_redis_loses_the_active_model(
    registry, redis_url, key_prefix, tmp_path
):
    """A worker that had switched kept its model when the active record vanished,
    while a worker started since served the startup one; and after the loss the
    serial starts again at 1, so the next activation looked like nothing new."""
    fallback = ModelSet.from_dirs(*_moodbot_model(tmp_path))
    old = RegistryModels(fallback, registry, poll_interval=None)
    registry.submit({"name": "demo", "nlu": NLU_JSON})
    run_one(registry, timeout=1)
    registry.activate("demo")
    assert old.refresh() and old.current().name == "demo"

    with redis.Redis.from_url(redis_url) as client:  # the data is lost
        for key in client.scan_iter(match=key_prefix + "*"):
            client.delete(key)
    new = RegistryModels(fallback, registry, poll_interval=None)
    for models in (old, new):
        models.refresh()
        assert models.current() is fallback

    registry.submit({"name": "other", "nlu": NLU_JSON})
    run_one(registry, timeout=1)
    assert registry.activate("other")["serial"] == 1
    # NOTE: not 'demo' again: with a model folder its archive outlived the index,
    # and a registered name is never written twice.
    registry.submit({"name": "third", "nlu": NLU_JSON})
    run_one(registry, timeout=1)
    for models in (old, new):
        models.refresh()
        assert models.current().name == "other"
    registry.activate("third")  # serial 2 again, another model
    for models in (old, new):
        assert models.refresh() and models.current().name == "third"


def test_registered_models_never_change(registry):
    registry.put("m", b"first", {"fingerprint": "a"})
    with pytest.raises(ModelExists):
        registry.put("m", b"second", {"fingerprint": "b"})
    assert registry.archive("m") == b"first"
    assert registry.meta("m")["fingerprint"] == "a"
    registry.register_startup("startup-fp", ["core"])
    with pytest.raises(ModelExists):
        registry.put(STARTUP, b"x", {"fingerprint": "x"})
    assert registry.activate(STARTUP)["fingerprint"] == "startup-fp"
    with pytest.raises(ModelInUse):
        registry.delete(STARTUP)
    registry.delete("m")  # deleting frees the name
    registry.put("m", b"third", {"fingerprint": "c"})
    assert registry.archive("m") == b"third"


def test_a_job_for_a_taken_name_fails_as_a_conflict(registry):
    registry.put("taken", b"x", {"fingerprint": "x"})
    job = registry.submit({"name": "taken", "nlu": NLU_JSON, "config": {}})
    run_one(registry, timeout=1)
    state = registry.job(job)
    assert state["status"] == "failed" and state["code"] == 409
    assert registry.archive("taken") == b"x"


def test_trainers_are_alive_while_they_beat(registry, clock):
    assert registry.trainers_alive() == 0
    registry.trainer_beat("t1")
    assert registry.trainers_alive() == 1
    clock.now += TRAINER_TTL + 1
    assert registry.trainers_alive() == 0  # killed: it never said goodbye


def test_a_trainer_beats_from_start_to_stop(registry):
    stop = threading.Event()
    thread = threading.Thread(target=run_trainer, args=(registry, stop))
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not registry.trainers_alive():
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join()
    assert registry.trainers_alive() == 0


def test_a_job_popped_by_a_trainer_that_died_at_once_is_failed(registry, clock):
    """Taken from the queue, never marked running: failed, not queued forever; and
    a trainer cannot start it any more."""
    job = registry.submit({"name": "lost", "nlu": NLU_JSON})
    registry._redis().lpop(registry._key("queue"))  # popped... and the trainer died
    clock.now += STALE_AFTER + 1
    state = registry.job(job)
    assert state["status"] == "failed" and "took the job" in state["error"]
    registry._redis().rpush(registry._key("queue"), job)
    assert registry.claim(timeout=0.1) is None
    assert registry.job(job)["status"] == "failed"
    waiting = registry.submit({"name": "waiting", "nlu": NLU_JSON})
    clock.now += STALE_AFTER + 1
    assert registry.job(waiting)["status"] == "queued"  # still in the queue
