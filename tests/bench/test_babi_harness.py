"""The bAbI harness end to end on a handful of dialogues: convert, train, serve a
real server on a private Redis, play over HTTP, write result.json and turns.jsonl.
The full runs are benchmarks (``python -m bench.babi``), not tests."""

from __future__ import annotations

import json

import pytest

from bench.babi.__main__ import main
from bench.babi.harness import Options
from bench.babi.harness import folds
from bench.babi.harness import hold_back
from bench.babi.harness import run
from tests.data import BABI_SLICE


def test_folds_and_the_held_back_part_split_without_overlap():
    parts = folds(23, 5, seed=3)
    assert sorted(i for p in parts for i in p) == list(range(23))
    assert {len(p) for p in parts} == {4, 5}
    assert parts == folds(23, 5, seed=3) and parts != folds(23, 5, seed=4)
    with pytest.raises(ValueError):
        folds(3, 5, seed=0)
    items = list(range(50))
    fit, held = hold_back(items, 0.1, seed=0)
    assert len(held) == 5 and sorted(fit + held) == items


@pytest.mark.e2e
def test_cross_validation_builds_each_fold_from_the_other_folds(tmp_path):
    result = run(
        Options(
            task=5,
            data_dir=BABI_SLICE,
            split="dev",
            out=tmp_path,
            train_limit=30,
            threads=1,
            workers=1,
            cv=2,
        )
    )
    assert result["folds"] == 2 and result["dialogues"] == 30
    assert len(result["per_response_accuracy_by_fold"]) == 2
    assert (
        json.loads((tmp_path / "result.json").read_text())["turns"] == (result["turns"])
    )
    played_by_fold = []
    for n in (1, 2):
        fold = tmp_path / f"fold-{n}"
        rows = (fold / "turns.jsonl").read_text().splitlines()
        played = {json.loads(line)["dialogue"] for line in rows}
        stories = (fold / "bot" / "data" / "stories.md").read_text()
        validation = (fold / "bot" / "validation" / "stories.md").read_text()
        for d in played:
            assert f"## dialogue {d}\n" not in stories + validation
        played_by_fold.append(played)
    assert not played_by_fold[0] & played_by_fold[1]
    assert len(played_by_fold[0] | played_by_fold[1]) == 30


@pytest.mark.e2e
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
        # A seeded tenth of the training dialogues is held back for early stopping.
        assert result["training"]["dialogues"] == 90
        assert result["training"]["held_back"] == 10
    rows = [
        json.loads(line)
        for line in (tmp_path / "oov-True" / "turns.jsonl").read_text().splitlines()
    ]
    assert len(rows) == results[1]["turns"]
    assert set(rows[0]) == {"dialogue", "turn", "gold", "predicted"}
    assert [(r["dialogue"], r["turn"]) for r in rows[:2]] == [(1, 1), (1, 2)]
    # The OOV copy really has unseen values, and the bot still gets them right.
    assert any("seoul" in r["gold"] or "tokyo" in r["gold"] for r in rows)


@pytest.mark.e2e
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
