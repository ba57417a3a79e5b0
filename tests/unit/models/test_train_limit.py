"""A training job has a time limit: whatever a request asks for (a billion epochs),
the trainer is free again after ``DIALOGD_MAX_TRAIN_SECONDS``."""

from __future__ import annotations

import multiprocessing
import time

import pytest

from tests.data import TINY_NLU
from trackerstore.registry import ModelRegistry
from worker.errors import DialogdError
from worker.errors import TrainingTooLong
from worker.trainer import max_train_seconds
from worker.trainer import run_one
from worker.trainer import train_bounded

NLU = TINY_NLU
#: a classifier asked for a billion epochs: it would train for days
ENDLESS = {
    "pipeline": [
        {"name": "Tokenizer"},
        {"name": "SparseFeaturizer"},
        {"name": "SoftmaxIntentClassifier", "epochs": 10**9, "patience": 10**9},
    ]
}


def test_a_job_within_its_time_is_trained():
    archive, meta = train_bounded({"name": "m", "nlu": NLU, "config": {}}, 120)
    assert archive and meta["name"] == "m" and meta["fingerprint"]


def test_a_job_past_its_time_is_stopped():
    started = time.monotonic()
    with pytest.raises(TrainingTooLong, match="longer than 1 s"):
        train_bounded({"name": "m", "nlu": NLU, "config": ENDLESS}, 1)
    assert time.monotonic() - started < 30
    assert not multiprocessing.active_children()  # the child was ended


def test_a_training_error_comes_back_from_the_child():
    with pytest.raises(DialogdError, match="no examples"):
        train_bounded(
            {"name": "m", "nlu": {"rasa_nlu_data": {"common_examples": []}}}, 60
        )


def test_the_trainer_fails_the_job_and_takes_the_next(redis_url, key_prefix):
    registry = ModelRegistry(redis_url, prefix=key_prefix)
    slow = registry.submit({"name": "slow", "nlu": NLU, "config": ENDLESS})
    quick = registry.submit({"name": "quick", "nlu": NLU, "config": {}})
    assert run_one(registry, timeout=1, max_seconds=1)
    state = registry.job(slow)
    assert state["status"] == "failed" and state["code"] == 400
    assert "longer than 1 s" in state["error"]
    assert run_one(registry, timeout=1, max_seconds=120)
    assert registry.job(quick)["status"] == "succeeded"


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_the_limit_is_a_positive_number(value):
    with pytest.raises(ValueError, match="DIALOGD_MAX_TRAIN_SECONDS"):
        max_train_seconds({"DIALOGD_MAX_TRAIN_SECONDS": value})
    assert max_train_seconds({}) == 3600.0
