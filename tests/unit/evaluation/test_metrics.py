"""Precision, recall, F1, confusion and the text report, checked by hand."""

import pytest

from worker.evaluation import classification_metrics
from worker.evaluation import text_report


def test_per_label_scores_and_weighted_averages():
    gold = ["a", "a", "a", "b", "b", "c"]
    predicted = ["a", "a", "b", "b", "c", "c"]
    m = classification_metrics(gold, predicted)
    assert m.labels == ("a", "b", "c")
    assert (m.total, m.correct) == (6, 4)
    assert m.accuracy == pytest.approx(4 / 6)
    a, b, c = (m.per_label[x] for x in "abc")
    assert (a.precision, a.recall, a.support) == (1.0, pytest.approx(2 / 3), 3)
    assert a.f1 == pytest.approx(0.8)
    assert (b.precision, b.recall, b.f1) == (0.5, 0.5, 0.5)
    assert (c.precision, c.recall) == (0.5, 1.0)
    assert c.f1 == pytest.approx(2 / 3)
    # sklearn's average="weighted": weights are gold supports 3, 2, 1.
    assert m.weighted("precision") == pytest.approx((3 * 1 + 2 * 0.5 + 0.5) / 6)
    assert m.weighted("f1") == pytest.approx((3 * 0.8 + 2 * 0.5 + 2 / 3) / 6)
    assert m.confusion == ((2, 1, 0), (0, 1, 1), (0, 0, 1))


def test_a_label_only_predicted_has_no_support_and_zero_precision():
    m = classification_metrics(["a", "a"], ["a", "x"])
    assert m.per_label["x"].support == 0
    assert m.per_label["x"].precision == 0.0
    assert m.weighted("recall") == 0.5
    report = text_report(m)
    assert "x" not in report.split()  # only labels with gold support are listed
    assert report.split("\n")[0].split() == [
        "precision",
        "recall",
        "f1-score",
        "support",
    ]
    assert "weighted avg" in report and "accuracy" in report


def test_empty_and_mismatched_inputs():
    m = classification_metrics([], [])
    assert (m.total, m.accuracy, m.weighted("f1")) == (0, 0.0, 0.0)
    with pytest.raises(ValueError):
        classification_metrics(["a"], [])


def test_as_dict_is_json_shaped():
    d = classification_metrics(["a", "b"], ["a", "a"]).as_dict()
    assert set(d) == {
        "total",
        "correct",
        "accuracy",
        "precision",
        "recall",
        "f1",
        "per_label",
        "confusion",
    }
    assert d["confusion"] == {"labels": ["a", "b"], "matrix": [[1, 0], [1, 0]]}
