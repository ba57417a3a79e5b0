"""The HTML of every evaluation report (stories and NLU): one self-contained page
(inline CSS, no scripts) built from the same tables."""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence
from html import escape

from worker.evaluation.metrics import LabelScore

CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:80em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:2em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0 1.5em}
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
.k{display:inline-block;margin-right:2em}.k b{font-size:1.4em;display:block}
"""


def page(title: str, body: Iterable[str]) -> str:
    """A whole page: ``title`` as its title and heading, then ``body`` (HTML)."""
    return (
        "<!DOCTYPE html><html><head><meta charset=utf-8>"
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1>" + "".join(body) + "</body></html>\n"
    )


def table(
    head: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    left: int = 1,
    bad: Iterable[bool] | None = None,
) -> str:
    """A table of text cells (escaped here); the first ``left`` columns are
    left-aligned, and a row whose ``bad`` is true is marked red."""
    flags = iter(bad) if bad is not None else None

    def cell(tag: str, i: int, text: str) -> str:
        align = " class=l" if i < left else ""
        return f"<{tag}{align}>{escape(text)}</{tag}>"

    out = ["<table><tr>", *(cell("th", i, h) for i, h in enumerate(head)), "</tr>"]
    for row in rows:
        marked = flags is not None and next(flags)
        out.append("<tr class=bad>" if marked else "<tr>")
        out += [cell("td", i, text) for i, text in enumerate(row)]
        out.append("</tr>")
    return "".join(out) + "</table>"


def label_table(scores: Iterable[tuple[str, LabelScore]], name: str = "label") -> str:
    """Precision, recall, F1 and support per label; a label below F1 1 in red."""
    items = list(scores)
    return table(
        [name, "precision", "recall", "F1", "support"],
        [
            [
                label,
                f"{s.precision:.3f}",
                f"{s.recall:.3f}",
                f"{s.f1:.3f}",
                str(s.support),
            ]
            for label, s in items
        ],
        bad=[s.f1 < 1.0 for _, s in items],
    )


def confusion_table(labels: Sequence[str], matrix: Sequence[Sequence[int]]) -> str:
    """Rows are gold labels, columns predictions; shading grows with the row share."""
    head = "<tr><th class=l>gold \\ predicted</th>" + "".join(
        f"<th class=c>{escape(label)}</th>" for label in labels
    )
    rows = [head + "</tr>"]
    for i, label in enumerate(labels):
        row = matrix[i]
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
