"""CoreModel: train, save, load, and every way a model directory can be broken."""

import json
from pathlib import Path

import numpy as np
import pytest

from worker.domain import Domain
from worker.errors import ModelError
from worker.model import CoreModel

from .helpers import EXAMPLES
from .helpers import act
from .helpers import tracker
from .helpers import user


@pytest.fixture(scope="module")
def moodbot(tmp_path_factory) -> tuple[CoreModel, Path]:
    domain = Domain.load(EXAMPLES / "moodbot" / "domain.yml")
    calls = []
    model = CoreModel.train(
        domain,
        EXAMPLES / "moodbot" / "data",
        progress=lambda stage, done, total: calls.append(stage),
    )
    assert calls[:2] == ["stories", "dialogues"]
    assert calls[-1] == "policy_3_MappingPolicy"
    return model, model.save(tmp_path_factory.mktemp("model") / "core")


def conversations(domain):
    yield tracker(domain)
    yield tracker(domain, act("action_listen"), user("greet"))
    yield tracker(domain, act("action_listen"), user("greet", 0.1))
    yield tracker(
        domain,
        act("action_listen"),
        user("greet"),
        act("utter_greet"),
        act("action_listen"),
        user("mood_unhappy"),
    )


def test_round_trip_gives_identical_predictions(moodbot):
    model, path = moodbot
    assert sorted(p.name for p in path.iterdir()) == [
        "domain.yml",
        "metadata.json",
        "policies.npz",
    ]
    loaded = CoreModel.load(path)
    assert loaded.fingerprint == model.fingerprint
    assert loaded.domain.fingerprint == model.domain.fingerprint
    assert loaded.max_history == model.max_history == 5
    for t in conversations(model.domain):
        a, b = model.predict(t), loaded.predict(t)
        assert (a.action, a.policy) == (b.action, b.policy)
        np.testing.assert_array_equal(a.probabilities, b.probabilities)
    t = tracker(model.domain, act("action_listen"), user("greet"))
    assert model.predict(t).action == "utter_greet"
    low = tracker(model.domain, act("action_listen"), user("greet", 0.1))
    assert model.predict(low).action == "action_default_fallback"


def test_metadata_is_versioned_and_json(moodbot):
    _, path = moodbot
    meta = json.loads((path / "metadata.json").read_text())
    assert meta["format_version"] == 1
    assert meta["policies"][0]["name"] == "policy_0_NeuralPolicy"
    assert meta["policies"][2]["learned"]["lookup_"]


def test_training_is_deterministic(moodbot):
    model, _ = moodbot
    again = CoreModel.train(model.domain, EXAMPLES / "moodbot" / "data")
    assert again.fingerprint == model.fingerprint
    np.testing.assert_array_equal(
        again.ensemble.policies[0].to_arrays()["w0"],
        model.ensemble.policies[0].to_arrays()["w0"],
    )


def copy_model(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for file in src.iterdir():
        (dst / file.name).write_bytes(file.read_bytes())
    return dst


def test_missing_directory_and_files(moodbot, tmp_path):
    _, path = moodbot
    with pytest.raises(ModelError, match="not found"):
        CoreModel.load(tmp_path / "nope")
    for name in ("metadata.json", "policies.npz", "domain.yml"):
        broken = copy_model(path, tmp_path / name)
        (broken / name).unlink()
        with pytest.raises(ModelError):
            CoreModel.load(broken)


def test_wrong_version_and_corrupt_files(moodbot, tmp_path):
    _, path = moodbot
    old = copy_model(path, tmp_path / "old")
    meta = json.loads((old / "metadata.json").read_text())
    meta["format_version"] = 99
    (old / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="format version 99"):
        CoreModel.load(old)

    for name, data in [("metadata.json", b"{not json"), ("policies.npz", b"garbage")]:
        bad = copy_model(path, tmp_path / f"bad-{name}")
        (bad / name).write_bytes(data)
        with pytest.raises(ModelError, match="corrupt"):
            CoreModel.load(bad)

    edited = copy_model(path, tmp_path / "edited")
    text = (edited / "domain.yml").read_text().replace("utter_happy", "utter_glad")
    (edited / "domain.yml").write_text(text)
    with pytest.raises(ModelError, match="does not match"):
        CoreModel.load(edited)
