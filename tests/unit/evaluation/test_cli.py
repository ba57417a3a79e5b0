"""``dialogd test core`` in-process: reports, end to end with NLU, learning curves."""

from __future__ import annotations

import json

import pytest

from api.cli import main
from tests.data import RASA_EXAMPLES

MOODBOT = RASA_EXAMPLES / "moodbot"
CONCERTBOT = RASA_EXAMPLES / "concertbot"


def train(bot, out, nlu=False):
    args = [
        "train",
        "--domain",
        str(bot / "domain.yml"),
        "--stories",
        str(bot / "data" / "stories.md"),
        "--out",
        str(out),
    ]
    if nlu:
        args += ["--nlu", str(bot / "data" / "nlu.md")]
    assert main(args) == 0
    return out


@pytest.mark.parametrize("bot", [MOODBOT, CONCERTBOT], ids=["moodbot", "concertbot"])
def test_test_core_on_own_stories_is_100_percent(bot, tmp_path, capsys):
    model = train(bot, tmp_path / "model")
    out = tmp_path / "report"
    code = main(
        [
            "test",
            "core",
            "--model",
            str(model / "core"),
            "--stories",
            str(bot / "data" / "stories.md"),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["actions"]["accuracy"] == 1.0
    assert report["stories"]["accuracy"] == 1.0
    lines = (out / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == report["actions"]["total"]
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert "100.00%" in capsys.readouterr().out


def test_test_core_counts_stories_that_share_a_state_path(tmp_path, capsys):
    model = train(MOODBOT, tmp_path / "model")
    stories = tmp_path / "twins.md"
    twin = "* greet\n - utter_greet\n* mood_great\n - utter_happy\n"
    stories.write_text(f"## first\n{twin}\n## second\n{twin}")
    out = tmp_path / "report"
    args = ["test", "core", "--model", str(model / "core"), "--stories", str(stories)]
    assert main([*args, "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["stories"]["total"] == 2
    assert report["stories"]["distinct"] == 1
    assert report["actions"]["total"] == 8
    assert "stories: 2/2 correct (100.00%; 1 distinct)" in capsys.readouterr().out


def test_end_to_end_with_the_nlu_model(tmp_path):
    model = train(MOODBOT, tmp_path / "model", nlu=True)
    stories = tmp_path / "e2e.md"
    stories.write_text(
        "## happy\n* greet: hello there\n - utter_greet\n"
        "* mood_great: amazing\n - utter_happy\n\n"
        "## nonsense\n* greet: /mood_unhappy\n - utter_greet\n"
    )
    code = main(
        [
            "test",
            "core",
            "--model",
            str(model / "core"),
            "--nlu",
            str(model / "nlu"),
            "--e2e",
            "--stories",
            str(stories),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["is_end_to_end_evaluation"] is True
    assert report["intents"]["total"] == 3
    assert report["intents"]["correct"] == 2
    assert report["stories"]["failed"] == ["nonsense"]
    html = (tmp_path / "out" / "report.html").read_text()
    assert "NLU predicted <b>mood_unhappy</b>" in html


def test_learning_curve_command(tmp_path, capsys):
    configs = []
    for name, policy in (("memo", "MemoizationPolicy"), ("keras", "KerasPolicy")):
        path = tmp_path / f"{name}.yml"
        path.write_text(f"policies:\n  - name: {policy}\n")
        configs.append(str(path))
    out = tmp_path / "curve"
    code = main(
        [
            "test",
            "core",
            "--percentages",
            "0",
            "50",
            "--runs",
            "1",
            "--config",
            *configs,
            "--domain",
            str(MOODBOT / "domain.yml"),
            "--stories",
            str(MOODBOT / "data" / "stories.md"),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    data = json.loads((out / "learning_curve.json").read_text())
    assert set(data["summary"]) == {"memo", "keras"}
    assert len(data["points"]) == 4
    assert (out / "learning_curve.svg").read_text().startswith("<svg")
    assert "memo: 2 training stories" in capsys.readouterr().out


def test_usage_and_runtime_errors(tmp_path, capsys):
    base = ["test", "core", "--stories", str(MOODBOT / "data" / "stories.md")]
    with pytest.raises(SystemExit) as exit_info:
        main([*base, "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit):
        main([*base, "--out", str(tmp_path), "--percentages", "50"])
    assert main([*base, "--out", str(tmp_path), "--model", str(tmp_path / "x")]) == 1
    assert "error: model directory" in capsys.readouterr().err
