"""Writing an evaluation: ``report.json``, ``predictions.jsonl`` and ``report.html``.

The HTML page is self-contained (inline CSS, no scripts): the summary, per-action
scores, the confusion matrix and every failed story turn by turn, mistakes in red.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from worker.evaluation.metrics import Metrics
from worker.evaluation.stories import ActionResult
from worker.evaluation.stories import Evaluation
from worker.evaluation.stories import StoryResult
from worker.evaluation.stories import UserResult

REPORT_FILE = "report.json"
PREDICTIONS_FILE = "predictions.jsonl"
HTML_FILE = "report.html"
#: More failed stories than this are counted but not drawn (the page stays usable).
MAX_FAILED_SHOWN = 200

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:2em}
table{border-collapse:collapse;font-size:.85em}
td,th{border:1px solid #ddd;padding:.25em .5em;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}
.cm td{min-width:2em;text-align:center}
.cm th.c{writing-mode:vertical-rl;transform:rotate(180deg);text-align:left}
.story{border:1px solid #ddd;margin:1em 0;padding:.5em 1em}
.story h3{font-size:1em;margin:.2em 0 .5em}
.turn{font-family:ui-monospace,monospace;font-size:.85em;margin:.1em 0}
.turn{padding:.1em .3em}
.user{color:#1d4f91}.event{color:#777}
.bad{background:#fde2e2;color:#9b1c1c}.ok{color:#1f6f3a}
.note{color:#777;font-size:.85em}
"""


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
    body = "".join(
        f"<tr><th class=l>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows
    )
    return f"<table>{body}</table>"


def _label_table(metrics: Metrics) -> str:
    head = (
        "<tr><th class=l>label</th><th>precision</th><th>recall</th>"
        "<th>F1</th><th>support</th></tr>"
    )
    rows = []
    for label, s in metrics.per_label.items():
        cls = " class=bad" if s.f1 < 1.0 else ""
        rows.append(
            f"<tr{cls}><td class=l>{escape(label)}</td><td>{s.precision:.3f}</td>"
            f"<td>{s.recall:.3f}</td><td>{s.f1:.3f}</td><td>{s.support}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def _confusion_table(metrics: Metrics) -> str:
    """Rows are gold labels, columns predictions; shading grows with the row share."""
    labels = metrics.labels
    head = "<tr><th class=l>gold \\ predicted</th>" + "".join(
        f"<th class=c>{escape(label)}</th>" for label in labels
    )
    rows = [head + "</tr>"]
    for i, label in enumerate(labels):
        row = metrics.confusion[i]
        total = sum(row) or 1
        cells = []
        for j, count in enumerate(row):
            if not count:
                cells.append("<td></td>")
                continue
            alpha = 0.15 + 0.85 * count / total
            colour = "31,111,58" if i == j else "155,28,28"
            cells.append(
                f'<td style="background:rgba({colour},{alpha:.2f});'
                f'color:{"#fff" if alpha > 0.55 else "#222"}">{count}</td>'
            )
        rows.append(f"<tr><th class=l>{escape(label)}</th>{''.join(cells)}</tr>")
    return f'<table class="cm">{"".join(rows)}</table>'


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
        return (
            f'<div class="turn user bad">{text} &nbsp;&larr; NLU predicted '
            f"<b>{escape(str(step.predicted))}</b></div>"
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
    parts = [
        "<!DOCTYPE html><html><head><meta charset=utf-8>",
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        _summary_table(evaluation),
        "<h2>Actions</h2>",
        _label_table(evaluation.action_metrics),
        "<h2>Confusion matrix (actions)</h2>",
        _confusion_table(evaluation.action_metrics),
    ]
    if evaluation.end_to_end:
        parts += [
            "<h2>Intents (end to end)</h2>",
            _label_table(evaluation.intent_metrics),
            _confusion_table(evaluation.intent_metrics),
        ]
    parts += [
        f"<h2>Failed stories ({len(failed)})</h2>",
        "".join(_story(s) for s in shown) or "<p>None: every story is right.</p>",
        more,
        "</body></html>\n",
    ]
    return "".join(parts)
