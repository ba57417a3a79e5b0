"""NLU evaluation: metrics on hand-made predictions, the writers, the split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from worker.nlu import Example
from worker.nlu import NLUData
from worker.nlu.evaluation import entity_metrics
from worker.nlu.evaluation import score
from worker.nlu.evaluation import stratified_split
from worker.nlu.evaluation import write_reports


def _ent(start: int, end: int, kind: str) -> dict[str, Any]:
    return {"start": start, "end": end, "value": "x", "entity": kind}


def _record(
    intent: str,
    predicted: str,
    confidence: float = 0.9,
    entities: list[dict[str, Any]] | None = None,
    predicted_entities: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "text": f"{intent} text",
        "intent": intent,
        "predicted_intent": predicted,
        "confidence": confidence,
        "entities": entities or [],
        "predicted_entities": predicted_entities or [],
    }


def test_intent_metrics_and_confusions() -> None:
    records = [
        _record("a", "a"),
        _record("a", "b"),
        _record("b", "b"),
        _record("c", "c"),
    ]
    report = score(records)
    intent = report["intent"]
    assert intent["accuracy"] == 0.75
    assert intent["per_intent"]["a"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3, abs=1e-6),
        "support": 2,
    }
    assert intent["per_intent"]["b"]["precision"] == 0.5
    assert intent["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3, abs=1e-6)
    assert intent["confusions"] == [{"intent": "a", "predicted": "b", "count": 1}]
    assert report["out_of_scope"] is None


def test_out_of_scope_metrics_count_the_fallback_as_out_of_scope() -> None:
    records = [
        _record("a", "a"),
        _record("a", "nlu_fallback"),
        _record("out_of_scope", "out_of_scope"),
        _record("out_of_scope", "nlu_fallback"),
        _record("out_of_scope", "a"),
        _record("b", "b"),
    ]
    oos = score(records)["out_of_scope"]
    assert oos["intent"] == "out_of_scope"
    assert oos["n_in_scope"] == 3
    assert oos["in_scope_accuracy"] == pytest.approx(2 / 3, abs=1e-6)
    assert oos["out_of_scope_recall"] == pytest.approx(2 / 3, abs=1e-6)
    assert oos["out_of_scope_precision"] == pytest.approx(2 / 3, abs=1e-6)


def test_entity_metrics_exact_and_overlap() -> None:
    records = [
        _record(
            "a",
            "a",
            entities=[_ent(0, 5, "city"), _ent(10, 15, "date")],
            predicted_entities=[
                _ent(0, 5, "city"),  # exact
                _ent(10, 12, "date"),  # overlap only
                _ent(20, 22, "date"),  # spurious
            ],
        ),
        _record(
            "b",
            "b",
            entities=[_ent(0, 4, "person")],
            predicted_entities=[_ent(0, 4, "city")],  # wrong type
        ),
    ]
    metrics = entity_metrics(records)
    assert metrics["exact"]["tp"] == 1
    assert metrics["overlap"]["tp"] == 2
    assert metrics["exact"]["n_pred"] == 4 and metrics["exact"]["n_gold"] == 3
    assert metrics["overlap"]["precision"] == 0.5
    assert metrics["overlap"]["recall"] == pytest.approx(2 / 3, abs=1e-6)
    assert metrics["per_type"]["date"]["overlap"]["tp"] == 1
    assert metrics["per_type"]["person"]["exact"]["recall"] == 0.0


def test_overlap_matching_is_one_to_one() -> None:
    records = [
        _record(
            "a",
            "a",
            entities=[_ent(0, 10, "x")],
            predicted_entities=[_ent(0, 4, "x"), _ent(5, 10, "x")],
        )
    ]
    assert entity_metrics(records)["overlap"]["tp"] == 1


def test_writers(tmp_path: Path) -> None:
    records = [
        _record("a", "a", 0.95, [_ent(0, 1, "k")], [_ent(0, 1, "k")]),
        _record("a", "b", 0.8),
        _record("b", "b", 0.4),
    ]
    report = {**score(records), "predictions": records}
    paths = write_reports(report, tmp_path / "out")
    body = json.loads(paths["json"].read_text())
    assert "predictions" not in body
    assert body["intent"]["accuracy"] == pytest.approx(2 / 3, abs=1e-6)
    lines = paths["predictions"].read_text().splitlines()
    assert [json.loads(line) for line in lines] == records
    page = paths["html"].read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "<svg" in page and "Most confused intents" in page
    assert "a text" in page  # the worst example is listed


def test_stratified_split_is_deterministic_and_per_intent() -> None:
    examples = tuple(
        Example(f"{intent} {i}", intent) for intent in "abc" for i in range(20)
    )
    data = NLUData(examples)
    rest, held = stratified_split(data, 0.1, seed=0)
    again_rest, again_held = stratified_split(data, 0.1, seed=0)
    assert held == again_held and rest == again_rest
    assert len(held.examples) == 6 and len(rest.examples) == 54
    assert sorted(ex.intent for ex in held.examples) == list("aabbcc")
    assert not {ex.text for ex in held.examples} & {ex.text for ex in rest.examples}
    assert stratified_split(data, 0.1, seed=1)[1] != held
