"""Learning curves: how accuracy on held-out stories grows with training stories.

For each run (its own seeded shuffle) and each held-out percentage, every policy
config is trained on the remaining complete stories and scored on the held-out
ones, as Rasa's ``compare`` mode did. With 0% held out there is nothing held out,
so that point scores the training stories themselves and is marked as such.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import asdict
from dataclasses import dataclass
from html import escape
from typing import Any

from worker.domain import Domain
from worker.errors import InvalidConfig
from worker.evaluation.stories import evaluate_dialogues
from worker.evaluation.stories import story_dialogues
from worker.model import CoreModel
from worker.training.generator import TrainingDialogue
from worker.training.generator import story_step
from worker.training.stories import StoryStep

#: Called as ``progress(message, done, total)`` after each trained model.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class CurvePoint:
    config: str
    percentage: float
    run: int
    train_stories: int
    test_stories: int
    action_accuracy: float
    story_accuracy: float
    #: "held-out", or "training" when nothing was held out
    evaluated_on: str


def train_core(
    domain: Domain,
    dialogues: Sequence[TrainingDialogue],
    config: dict[str, Any] | None,
    *,
    augmentation_factor: int = 20,
    seed: int = 42,
) -> CoreModel:
    """A model trained on complete dialogues, as if they were the story file."""
    return CoreModel.from_steps(
        domain,
        [story_step(d, domain) for d in dialogues],
        config,
        augmentation_factor=augmentation_factor,
        seed=seed,
        fingerprint="learning-curve",
    )


def learning_curve(
    domain: Domain,
    steps: Sequence[StoryStep],
    configs: Sequence[tuple[str, dict[str, Any] | None]],
    percentages: Sequence[float],
    runs: int = 3,
    *,
    seed: int = 42,
    augmentation_factor: int = 20,
    progress: Progress | None = None,
) -> list[CurvePoint]:
    """Every (run, percentage, config) point, in that order."""
    if runs < 1:
        raise InvalidConfig("--runs must be at least 1")
    bad = [p for p in percentages if not 0 <= p < 100]
    if bad or not percentages:
        raise InvalidConfig(f"percentages must be in [0, 100): got {list(bad)}")
    if not configs:
        raise InvalidConfig("a learning curve needs at least one policy config")
    stories = story_dialogues(steps, domain)
    points: list[CurvePoint] = []
    total = runs * len(percentages) * len(configs)
    for run in range(runs):
        order = list(range(len(stories)))
        random.Random(seed + run).shuffle(order)
        for percentage in percentages:
            n_test = round(len(stories) * percentage / 100)
            if percentage > 0:
                n_test = min(max(n_test, 1), len(stories) - 1)
            test = [stories[i] for i in sorted(order[:n_test])]
            train = [stories[i] for i in sorted(order[n_test:])]
            evaluated_on = "held-out" if test else "training"
            for name, config in configs:
                core = train_core(
                    domain,
                    train,
                    config,
                    augmentation_factor=augmentation_factor,
                    seed=seed + run,
                )
                result = evaluate_dialogues(core, test or train)
                points.append(
                    CurvePoint(
                        config=name,
                        percentage=float(percentage),
                        run=run,
                        train_stories=len(train),
                        test_stories=len(test or train),
                        action_accuracy=result.action_metrics.accuracy,
                        story_accuracy=result.story_accuracy,
                        evaluated_on=evaluated_on,
                    )
                )
                if progress is not None:
                    progress(
                        f"run {run + 1}, {percentage:g}% held out, {name}",
                        len(points),
                        total,
                    )
    return points


def curve_summary(points: Sequence[CurvePoint]) -> dict[str, Any]:
    """Means and ranges over runs, per config and percentage, plus every point."""
    groups: dict[tuple[str, float], list[CurvePoint]] = {}
    for p in points:
        groups.setdefault((p.config, p.percentage), []).append(p)
    summary: dict[str, list[dict[str, Any]]] = {}
    for (config, percentage), group in groups.items():
        accs = [p.action_accuracy for p in group]
        stories = [p.story_accuracy for p in group]
        summary.setdefault(config, []).append(
            {
                "percentage": percentage,
                "train_stories": round(statistics.mean(p.train_stories for p in group)),
                "test_stories": round(statistics.mean(p.test_stories for p in group)),
                "evaluated_on": group[0].evaluated_on,
                "action_accuracy": statistics.mean(accs),
                "action_accuracy_min": min(accs),
                "action_accuracy_max": max(accs),
                "story_accuracy": statistics.mean(stories),
                "runs": len(group),
            }
        )
    for rows in summary.values():
        rows.sort(key=lambda r: r["train_stories"])
    return {"summary": summary, "points": [asdict(p) for p in points]}


_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")


def _nice_step(span: float, ticks: int) -> float:
    """1, 2 or 5 times a power of ten, giving about ``ticks`` intervals."""
    raw = span / max(ticks, 1)
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _x_axis(
    values: Sequence[float], x0: float, x1: float
) -> tuple[Callable[[float], float], list[float], bool]:
    """(position of a value, tick values, is it a log scale): log when the
    training sizes span more than a factor of 20."""
    lo, hi = max(min(values, default=1), 1), max(max(values, default=1), 1)
    if hi / lo > 20:
        a, b = math.log10(lo) - 0.1, math.log10(hi) + 0.1
        ticks = [
            m * 10**k
            for k in range(math.floor(a), math.ceil(b) + 1)
            for m in (1, 2, 5)
            if a <= math.log10(m * 10**k) <= b
        ]
        return (
            lambda v: x0 + (x1 - x0) * (math.log10(max(v, lo)) - a) / (b - a),
            ticks,
            True,
        )
    step = max(_nice_step(hi, 5), 1.0)
    top = step * math.ceil(hi / step) * 1.04  # room for the last marker
    ticks = [step * i for i in range(int(top / step) + 1)]
    return (lambda v: x0 + (x1 - x0) * v / top), ticks, False


def curve_svg(summary: dict[str, Any], title: str = "Learning curve") -> str:
    """A hand-written SVG: held-out action accuracy against training stories,
    one line per config (mean of runs, bars from min to max). Open markers are
    0%-held-out points, scored on the training stories."""
    width, height = 640, 400
    left, right, top, bottom = 60, 170, 40, 50
    rows = [r for rs in summary["summary"].values() for r in rs]
    x, x_ticks, log_x = _x_axis([r["train_stories"] for r in rows], left, width - right)
    y_low = min([r["action_accuracy_min"] for r in rows] + [1.0])
    y_step = 0.05 if y_low >= 0.8 else 0.1 if y_low >= 0.4 else 0.2
    y_min = max(0.0, math.floor(y_low / y_step - 1e-9) * y_step)
    if y_min >= 1.0:
        y_min = 1.0 - y_step

    def y(v: float) -> float:
        return top + (height - top - bottom) * (1 - (v - y_min) / (1 - y_min))

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="22" font-size="14">{escape(title)}</text>',
    ]
    v = y_min
    while v <= 1.0 + 1e-9:
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
            'stroke="#eee"/>'
            f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">'
            f"{100 * v:.0f}%</text>"
        )
        v += y_step
    for t in x_ticks:
        out.append(
            f'<text x="{x(t):.1f}" y="{height - bottom + 16}" text-anchor="middle">'
            f"{t:g}</text>"
        )
    out += [
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{height - bottom}" '
        'stroke="#444"/>',
        f'<line x1="{left}" x2="{width - right}" y1="{height - bottom}" '
        f'y2="{height - bottom}" stroke="#444"/>',
        f'<text x="{(left + width - right) / 2}" y="{height - 12}" '
        'text-anchor="middle">training stories'
        f"{' (log scale)' if log_x else ''}</text>",
        f'<text transform="translate(16 {(top + height - bottom) / 2}) rotate(-90)" '
        'text-anchor="middle">action accuracy (held-out stories)</text>',
    ]
    configs = list(summary["summary"].items())
    for n, (config, rs) in enumerate(configs):
        colour = _COLOURS[n % len(_COLOURS)]
        # NOTE: configs that score alike would hide each other: shift a little.
        shift = 4.0 * (n - (len(configs) - 1) / 2)
        held = [r for r in rs if r["evaluated_on"] == "held-out"]
        if len(held) > 1:
            path = " ".join(
                f"{x(r['train_stories']) + shift:.1f},{y(r['action_accuracy']):.1f}"
                for r in held
            )
            out.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" '
                'stroke-width="2"/>'
            )
        for r in rs:
            cx, cy = x(r["train_stories"]) + shift, y(r["action_accuracy"])
            fill = colour if r["evaluated_on"] == "held-out" else "white"
            out.append(
                f'<line x1="{cx:.1f}" x2="{cx:.1f}" '
                f'y1="{y(r["action_accuracy_min"]):.1f}" '
                f'y2="{y(r["action_accuracy_max"]):.1f}" stroke="{colour}"/>'
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="{fill}" '
                f'stroke="{colour}" stroke-width="1.5"/>'
            )
        ly = top + 10 + 18 * n
        out.append(
            f'<line x1="{width - right + 12}" x2="{width - right + 32}" y1="{ly}" '
            f'y2="{ly}" stroke="{colour}" stroke-width="2"/>'
            f'<text x="{width - right + 38}" y="{ly + 4}">{escape(config)}</text>'
        )
    note_y = top + 18 * len(summary["summary"]) + 24
    out.append(
        f'<text x="{width - right + 12}" y="{note_y}" fill="#666">open marker: '
        "0% held out,</text>"
        f'<text x="{width - right + 12}" y="{note_y + 14}" fill="#666">'
        "scored on training stories</text></svg>\n"
    )
    return "".join(out)
