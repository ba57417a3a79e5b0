"""Classification metrics over gold/predicted label lists, without sklearn.

Precision, recall and F1 per label, their support-weighted averages (what Rasa's
``/evaluate`` reported), the confusion matrix and sklearn's text report layout.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class LabelScore:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True, slots=True)
class Metrics:
    """Scores of one label set; ``labels`` are every gold or predicted label, sorted."""

    total: int
    correct: int
    labels: tuple[str, ...]
    per_label: dict[str, LabelScore]
    confusion: tuple[tuple[int, ...], ...]

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def weighted(self, field: str) -> float:
        """``field`` averaged over labels, weighted by gold support (sklearn's
        ``average="weighted"``)."""
        support = sum(s.support for s in self.per_label.values())
        if not support:
            return 0.0
        return sum(
            getattr(s, field) * s.support for s in self.per_label.values()
        ) / float(support)

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "correct": self.correct,
            "accuracy": self.accuracy,
            "precision": self.weighted("precision"),
            "recall": self.weighted("recall"),
            "f1": self.weighted("f1"),
            "per_label": {
                label: {
                    "precision": s.precision,
                    "recall": s.recall,
                    "f1": s.f1,
                    "support": s.support,
                }
                for label, s in self.per_label.items()
            },
            "confusion": {
                "labels": list(self.labels),
                "matrix": [list(row) for row in self.confusion],
            },
        }


def ratio(num: float, den: float) -> float:
    """``num / den``, 0 when there is nothing to divide by."""
    return num / den if den else 0.0


def prf(hits: int, n_predicted: int, n_gold: int) -> tuple[float, float, float]:
    """Precision, recall and F1 of ``hits`` among ``n_predicted`` predictions of
    ``n_gold`` gold items (each 0 where undefined, as in sklearn)."""
    return (
        ratio(hits, n_predicted),
        ratio(hits, n_gold),
        ratio(2 * hits, n_predicted + n_gold),
    )


def classification_metrics(gold: Sequence[str], predicted: Sequence[str]) -> Metrics:
    """Per-label scores; a label never predicted has precision 0, as in sklearn."""
    if len(gold) != len(predicted):
        raise ValueError("gold and predicted labels differ in length")
    labels = tuple(sorted(set(gold) | set(predicted)))
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for g, p in zip(gold, predicted, strict=True):
        matrix[index[g]][index[p]] += 1
    gold_counts = Counter(gold)
    predicted_counts = Counter(predicted)
    per_label = {}
    for label in labels:
        hits = matrix[index[label]][index[label]]
        per_label[label] = LabelScore(
            *prf(hits, predicted_counts[label], gold_counts[label]), gold_counts[label]
        )
    return Metrics(
        total=len(gold),
        correct=sum(g == p for g, p in zip(gold, predicted, strict=True)),
        labels=labels,
        per_label=per_label,
        confusion=tuple(tuple(row) for row in matrix),
    )


def text_report(metrics: Metrics, digits: int = 2) -> str:
    """sklearn's ``classification_report`` layout (labels with gold support only)."""
    rows = [(label, s) for label, s in metrics.per_label.items() if s.support]
    width = max([len(label) for label, _ in rows] + [len("weighted avg")])
    head = (
        f"{'':>{width}} {'precision':>9} {'recall':>9} {'f1-score':>9} {'support':>9}"
    )
    lines = [head, ""]
    for label, s in rows:
        lines.append(
            f"{label:>{width}} {s.precision:>9.{digits}f} {s.recall:>9.{digits}f} "
            f"{s.f1:>9.{digits}f} {s.support:>9}"
        )
    support = sum(s.support for _, s in rows)
    lines += [
        "",
        f"{'accuracy':>{width}} {'':>9} {'':>9} {metrics.accuracy:>9.{digits}f} "
        f"{metrics.total:>9}",
        f"{'weighted avg':>{width}} {metrics.weighted('precision'):>9.{digits}f} "
        f"{metrics.weighted('recall'):>9.{digits}f} "
        f"{metrics.weighted('f1'):>9.{digits}f} {support:>9}",
    ]
    return "\n".join(lines) + "\n"
