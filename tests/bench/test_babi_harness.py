"""The bAbI harness end to end on a handful of dialogues: convert, train, serve a
real server on a private Redis, play over HTTP, write result.json and turns.jsonl.
The full runs are benchmarks (``python -m bench.babi``), not tests."""

from __future__ import annotations

import json

import pytest

from bench.babi.__main__ import main
from bench.babi.harness import Options
from bench.babi.harness import run
from tests.data import BABI_SLICE

pytestmark = pytest.mark.e2e


def test_task5_and_its_oov_copy(tmp_path):
    results = []
    for oov in (False, True):
        results.append(
            run(
                Options(
                    task=5,
                    data_dir=BABI_SLICE,
                    split="dev",
                    out=tmp_path / f"oov-{oov}",
                    oov_copy=oov,
                    limit=4,
                    train_limit=100,
                    threads=1,
                    workers=1,
                )
            )
        )
    for result in results:
        assert result["dialogues"] == 4
        assert result["per_response_accuracy"] == 1.0
        assert result["per_dialogue_accuracy"] == 1.0
        assert result["training"]["dialogues"] == 100
    rows = [
        json.loads(line)
        for line in (tmp_path / "oov-True" / "turns.jsonl").read_text().splitlines()
    ]
    assert len(rows) == results[1]["turns"]
    assert set(rows[0]) == {"dialogue", "turn", "gold", "predicted"}
    assert [(r["dialogue"], r["turn"]) for r in rows[:2]] == [(1, 1), (1, 2)]
    # The OOV copy really has unseen values, and the bot still gets them right.
    assert any("seoul" in r["gold"] or "tokyo" in r["gold"] for r in rows)


def test_task6_command_line(tmp_path, capsys):
    code = main(
        [
            "--task",
            "6",
            "--data-dir",
            str(BABI_SLICE),
            "--split",
            "dev",
            "--out",
            str(tmp_path),
            "--limit",
            "3",
            "--train-limit",
            "120",
            "--threads",
            "1",
            "--workers",
            "1",
            "--free-running",
        ]
    )
    assert code == 0
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["task"] == 6 and result["dialogues"] == 3
    # Even free-running, the greeting and the goodbye are right.
    assert result["per_response_accuracy"] > 0.2
    assert "per-response" in capsys.readouterr().out
    assert (tmp_path / "bot" / "domain.yml").exists()
