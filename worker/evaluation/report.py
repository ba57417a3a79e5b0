"""Writing an evaluation: ``report.json``, ``predictions.jsonl`` and ``report.html``.

The HTML page is self-contained (inline CSS, no scripts): the summary, per-action
scores, the confusion matrix and every failed story turn by turn, mistakes in red.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from worker.evaluation.html import confusion_table
from worker.evaluation.html import label_table
from worker.evaluation.html import page
from worker.evaluation.html import table
from worker.evaluation.stories import ActionResult
from worker.evaluation.stories import Evaluation
from worker.evaluation.stories import StoryResult
from worker.evaluation.stories import UserResult

REPORT_FILE = "report.json"
PREDICTIONS_FILE = "predictions.jsonl"
HTML_FILE = "report.html"
#: More failed stories than this are counted but not drawn (the page stays usable).
MAX_FAILED_SHOWN = 200


def write_report(evaluation: Evaluation, out: str | Path, title: str = "") -> Path:
    """Write the three files into ``out`` (created if needed); returns ``out``."""
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / REPORT_FILE).write_text(
        json.dumps(evaluation.summary(), indent=2, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    with (directory / PREDICTIONS_FILE).open("w", encoding="utf-8") as fh:
        for action in evaluation.actions:
            fh.write(json.dumps(action.as_dict(), ensure_ascii=False) + "\n")
    (directory / HTML_FILE).write_text(
        html_report(evaluation, title or "Story evaluation"), encoding="utf-8"
    )
    return directory


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _summary_table(evaluation: Evaluation) -> str:
    m = evaluation.action_metrics
    rows = [
        (
            "stories correct",
            f"{sum(s.correct for s in evaluation.stories)} / "
            f"{len(evaluation.stories)} ({_pct(evaluation.story_accuracy)})",
        ),
        ("distinct stories (state paths)", str(evaluation.distinct)),
        ("actions correct", f"{m.correct} / {m.total} ({_pct(m.accuracy)})"),
        ("weighted precision", f"{m.weighted('precision'):.3f}"),
        ("weighted recall", f"{m.weighted('recall'):.3f}"),
        ("weighted F1", f"{m.weighted('f1'):.3f}"),
        ("in training data", _pct(evaluation.in_training_data_fraction)),
    ]
    if evaluation.end_to_end:
        i = evaluation.intent_metrics
        rows.append(
            ("intents correct", f"{i.correct} / {i.total} ({_pct(i.accuracy)})")
        )
    return table(["figure", "value"], rows)


def _turn(step: object) -> str:
    if isinstance(step, ActionResult):
        if step.correct:
            return f'<div class="turn ok">- {escape(step.gold)}</div>'
        policy = escape(step.policy or "forced")
        return (
            f'<div class="turn bad">- {escape(step.gold)} &nbsp;&larr; predicted '
            f"<b>{escape(step.predicted)}</b> ({policy}, "
            f"{step.confidence:.2f})</div>"
        )
    if isinstance(step, UserResult):
        ents = ", ".join(f"{k}={v}" for k, v in step.entities)
        text = f"* {escape(str(step.gold))}: {escape(step.text or '')}"
        if ents:
            text += f" <span class=note>[{escape(ents)}]</span>"
        if step.correct:
            return f'<div class="turn user">{text}</div>'
        predicted = escape(str(step.predicted))
        if step.gold == step.predicted:
            gold = ", ".join(f"{k}={v}" for k, v in step.gold_entities or ())
            predicted += f" with entities [{escape(ents)}], not [{escape(gold)}]"
        return (
            f'<div class="turn user bad">{text} &nbsp;&larr; NLU predicted '
            f"<b>{predicted}</b></div>"
        )
    return f'<div class="turn event">- {escape(getattr(step, "text", ""))}</div>'


def _story(story: StoryResult) -> str:
    turns = "".join(_turn(step) for step in story.steps)
    return f'<div class="story"><h3>{escape(story.name)}</h3>{turns}</div>'


def html_report(evaluation: Evaluation, title: str) -> str:
    failed = evaluation.failed_stories
    shown = failed[:MAX_FAILED_SHOWN]
    more = (
        f"<p class=note>{len(failed) - len(shown)} more failed stories are not "
        "shown; see predictions.jsonl.</p>"
        if len(failed) > len(shown)
        else ""
    )
    actions, intents = evaluation.action_metrics, evaluation.intent_metrics
    parts = [
        _summary_table(evaluation),
        "<h2>Actions</h2>",
        label_table(actions.per_label.items()),
        "<h2>Confusion matrix (actions)</h2>",
        confusion_table(actions.labels, actions.confusion),
    ]
    if evaluation.end_to_end:
        parts += [
            "<h2>Intents (end to end)</h2>",
            label_table(intents.per_label.items()),
            confusion_table(intents.labels, intents.confusion),
        ]
    parts += [
        f"<h2>Failed stories ({len(failed)})</h2>",
        "".join(_story(s) for s in shown) or "<p>None: every story is right.</p>",
        more,
    ]
    return page(title, parts)
