"""``dialogd train nlu`` and ``dialogd test nlu`` on moodbot's own NLU data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.cli import main
from tests.data import RASA_EXAMPLES
from worker.nlu import NLUPipeline
from worker.nlu import load_nlu_data

ROOT = Path(__file__).resolve().parents[3]
MOODBOT_FILES = [
    RASA_EXAMPLES / "moodbot" / "data" / "nlu.md",
    ROOT / "examples" / "moodbot" / "data" / "nlu.md",
]


@pytest.mark.parametrize("nlu", MOODBOT_FILES, ids=["rasa", "example"])
def test_train_nlu_then_test_nlu(
    nlu: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "nlu-model"
    config = ROOT / "examples" / "moodbot" / "config.yml"
    assert (
        main(
            [
                "train",
                "nlu",
                "--nlu",
                str(nlu),
                "--config",
                str(config),
                "--out",
                str(model),
            ]
        )
        == 0
    )
    assert NLUPipeline.load(model).parse("hello there")["intent"]["name"] == "greet"

    reports = tmp_path / "reports"
    assert (
        main(
            [
                "test",
                "nlu",
                "--model",
                str(model),
                "--nlu",
                str(nlu),
                "--out",
                str(reports),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "intent accuracy:" in out
    report = json.loads((reports / "report.json").read_text())
    assert report["intent"]["accuracy"] > 0.95
    assert set(report["intent"]["per_intent"]) == set(load_nlu_data(nlu).intents)
    lines = (reports / "predictions.jsonl").read_text().splitlines()
    examples = load_nlu_data(nlu).examples
    assert [json.loads(line)["text"] for line in lines] == [ex.text for ex in examples]
    assert set(json.loads(lines[0])) == {
        "text",
        "intent",
        "predicted_intent",
        "confidence",
        "entities",
        "predicted_entities",
    }
    assert (reports / "report.html").read_text().startswith("<!DOCTYPE html>")


def test_train_nlu_without_config_uses_the_default_pipeline(tmp_path: Path) -> None:
    assert (
        main(
            [
                "train",
                "nlu",
                "--nlu",
                str(MOODBOT_FILES[0]),
                "--out",
                str(tmp_path / "m"),
            ]
        )
        == 0
    )
    assert NLUPipeline.load(tmp_path / "m").config == NLUPipeline().config


def test_train_still_needs_domain_and_stories() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--out", "x"])
    assert exit_info.value.code == 2


def test_test_nlu_reports_a_missing_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "test",
            "nlu",
            "--model",
            str(tmp_path / "none"),
            "--nlu",
            str(MOODBOT_FILES[0]),
            "--out",
            str(tmp_path / "r"),
        ]
    )
    assert code == 1
    assert "does not exist" in capsys.readouterr().err
