"""A Rasa project as ``rasa init`` writes it, unchanged: ``dialogd train`` with no
flags, ``dialogd test`` passes its test stories, ``dialogd serve`` with no ``-d``
serves the newest model and reads the project's endpoints.yml."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from api.cli import main as dialogd
from api.testing import free_port
from tests.data import ROOT

RASA_INIT = ROOT / "tests" / "fixtures" / "rasa_init"


@contextlib.contextmanager
def _serving(folder: Path, *args: str) -> Iterator[str]:
    """``dialogd serve`` in ``folder`` (real gunicorn), until it answers /status."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "api",
            "serve",
            "-p",
            str(port),
            "--host",
            "127.0.0.1",
            *args,
        ],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if requests.get(f"{url}/status", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "bot"
    shutil.copytree(RASA_INIT, folder)
    monkeypatch.chdir(folder)
    return folder


def test_rasa_init_project_trains_and_passes_its_tests(project, capsys):
    assert dialogd(["train"]) == 0
    (model,) = (project / "models").iterdir()
    assert (model / "core").is_dir() and (model / "nlu").is_dir()
    assert f"saved at '{Path('models') / model.name}'" in capsys.readouterr().out

    assert dialogd(["test"]) == 0
    out = capsys.readouterr().out
    assert "7 of 7 test stories passed, 0 failed" in out
    report = json.loads((project / "results" / "report.json").read_text())
    assert report["is_end_to_end_evaluation"]
    assert report["stories"] == {
        "total": 7,
        "distinct": 6,
        "correct": 7,
        "accuracy": 1.0,
        "failed": [],
    }


def test_a_failing_test_story_fails_the_run(project, capsys):
    assert dialogd(["train", "--fixed-model-name", "mood"]) == 0
    assert (project / "models" / "mood" / "core").is_dir()
    stories = project / "tests" / "test_stories.yml"
    text = stories.read_text()
    # the user is happy, so the bot does not send the picture
    stories.write_text(
        text.replace("  - action: utter_happy\n", "  - action: utter_cheer_up\n", 1)
    )
    capsys.readouterr()
    assert dialogd(["test"]) == 1
    out = capsys.readouterr().out
    assert "FAILED: happy path 1" in out
    assert "action utter_cheer_up: predicted utter_happy" in out
    assert "6 of 7 test stories passed, 1 failed" in out


def test_serve_without_model_flag_serves_the_newest_model(project, redis_url):
    assert dialogd(["train", "--fixed-model-name", "old"]) == 0
    time.sleep(0.05)  # NOTE: the newest is the one with the latest files
    (project / "data" / "rules.yml").write_text(
        (project / "data" / "rules.yml")
        .read_text()
        .replace("action: utter_goodbye", "action: utter_iamabot")
    )
    assert dialogd(["train", "--fixed-model-name", "new"]) == 0
    (project / "endpoints.yml").write_text(
        "action_endpoint:\n  url: http://localhost:5055/webhook\n"
        f"tracker_store:\n  type: redis\n  url: {redis_url}\n"
        "  key_prefix: 'rasaproject:'\n  record_exp: 60\nlock_store:\n  type: redis\n"
    )
    log = project / "server.log"
    with _serving(project, "--workers", "1", "-o", str(log)) as url:
        reply = requests.post(
            f"{url}/conversations/u1/parse", json={"query": "bye"}, timeout=10
        ).json()
        # the new model's rule, and its NLU
        assert reply["next_action"] == "utter_iamabot"
        keys = redis.Redis.from_url(redis_url).keys("rasaproject:*")
        assert keys, "the tracker store of endpoints.yml was not used"
    text = log.read_text()
    assert "accepted but not used: lock_store" in text
    assert "tracker_store.record_exp" in text
    assert "serving models/new/core" in text


def test_unknown_endpoints_section_is_an_error(project, capsys):
    (project / "endpoints.yml").write_text("trackerstore:\n  type: redis\n")
    assert dialogd(["serve", "-d", str(project)]) == 1
    err = capsys.readouterr().err
    assert "unknown endpoints ['trackerstore']" in err


def test_serve_without_a_model_says_to_train(project, capsys):
    assert dialogd(["serve"]) == 1
    assert "no model at models: train one with 'dialogd train'" in (
        capsys.readouterr().err
    )


def test_restaurantbot_example_with_a_form_passes_its_tests(
    tmp_path, monkeypatch, capsys
):
    folder = tmp_path / "restaurantbot"
    shutil.copytree(ROOT / "examples" / "restaurantbot", folder)
    monkeypatch.chdir(folder)
    assert dialogd(["data", "validate"]) == 0
    assert "0 errors" in capsys.readouterr().out
    assert dialogd(["train", "--augmentation", "0"]) == 0
    assert dialogd(["test"]) == 0
    assert "2 of 2 test stories passed" in capsys.readouterr().out

    # entities count: a story annotating the wrong entity fails
    stories = folder / "tests" / "test_stories.yml"
    stories.write_text(stories.read_text().replace("[4](number)", "[4](cuisine)"))
    assert dialogd(["test"]) == 1
    out = capsys.readouterr().out
    assert "FAILED: book a table with a form" in out
    assert "'for 4': entities number=4, expected cuisine=4" in out


def test_faq_bot_with_a_retrieval_intent_answers_through_the_rest_channel(
    tmp_path, monkeypatch, capsys, redis_url
):
    """Rasa 3's retrieval intents: ResponseSelector in the config, responses in
    data/responses.yml, one rule for ``utter_faq``; served by real gunicorn."""
    folder = tmp_path / "faqbot"
    shutil.copytree(ROOT / "tests" / "fixtures" / "faqbot", folder)
    monkeypatch.chdir(folder)
    assert dialogd(["train"]) == 0
    assert dialogd(["test"]) == 0
    assert "1 of 1 test stories passed" in capsys.readouterr().out
    (folder / "endpoints.yml").write_text(
        f"tracker_store:\n  type: redis\n  url: {redis_url}\n  key_prefix: 'faqbot:'\n"
    )
    with _serving(folder, "--workers", "2") as url:

        def say(text: str) -> list[str]:
            reply = requests.post(
                f"{url}/webhooks/rest/webhook",
                json={"sender": "visitor", "message": text},
                timeout=10,
            )
            assert reply.status_code == 200, reply.text
            return [m["text"] for m in reply.json()]

        assert say("hello there") == [
            "Hello! Ask me about our opening hours, parking or how to pay."
        ]
        assert say("where can I leave my car") == [
            "There is free parking behind the building."
        ]
        assert say("do you take cash") == ["We take cards and cash."]
        assert say("what time do you close") == [
            "We are open from 9 to 17, Monday to Saturday."
        ]
        events = requests.get(
            f"{url}/conversations/visitor/tracker", timeout=10
        ).json()["events"]
        said = [e["metadata"]["utter_action"] for e in events if e["event"] == "bot"]
        assert said[1:] == [
            "utter_faq/parking",
            "utter_faq/payment",
            "utter_faq/opening_hours",
        ]
        # Rasa 2+'s NLU-only route
        parsed = requests.post(
            f"{url}/model/parse", json={"text": "is parking free"}, timeout=10
        ).json()
        assert parsed["intent"]["name"] == "faq"
        assert parsed["intent"]["full_retrieval_intent_name"] == "faq/parking"
        selected = parsed["response_selector"]["default"]["response"]
        assert selected["responses"] == [
            {"text": "There is free parking behind the building."}
        ]
