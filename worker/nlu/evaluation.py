"""Evaluating an NLU model on labelled data, and the reports a person reads.

`evaluate` parses every example and scores intents (accuracy, macro F1, per-intent
precision/recall/F1, the most confused pairs, and in-scope accuracy / out-of-scope
recall when the data has an out-of-scope intent) and entities (precision/recall/F1
by exact span and type, and by overlapping span and type, the matching Liu et al.
2019 used for HWU64). `write_reports` writes ``report.json``,
``predictions.jsonl`` and a self-contained ``report.html``.
"""

from __future__ import annotations

import html
import json
import time
from collections import Counter
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from worker.evaluation.html import confusion_table
from worker.evaluation.html import label_table
from worker.evaluation.html import page
from worker.evaluation.html import table
from worker.evaluation.metrics import LabelScore
from worker.evaluation.metrics import classification_metrics
from worker.evaluation.metrics import prf
from worker.evaluation.metrics import ratio
from worker.nlu.response_selector import DEFAULT_SELECTOR
from worker.nlu.training_data import RETRIEVAL_DELIMITER
from worker.nlu.training_data import NLUData
from worker.nlu.training_data import base_intent

#: Intent names that mean "out of scope" in data or as a fallback prediction.
OUT_OF_SCOPE_INTENTS = frozenset({"out_of_scope", "oos", "nlu_fallback"})
REPORT_FILE = "report.json"
PREDICTIONS_FILE = "predictions.jsonl"
HTML_FILE = "report.html"


def stratified_split(
    data: NLUData, fraction: float, seed: int = 0
) -> tuple[NLUData, NLUData]:
    """``(rest, held_out)``: ``fraction`` of each intent's examples held out.

    Deterministic for a seed; both parts keep the file order of ``data`` and its
    synonyms, regex features, lookup tables and responses.
    """
    rng = np.random.default_rng(seed)
    by_intent: dict[str | None, list[int]] = {}
    for i, example in enumerate(data.examples):
        by_intent.setdefault(example.intent, []).append(i)
    held: set[int] = set()
    for intent in sorted(by_intent, key=lambda x: "" if x is None else x):
        members = np.array(by_intent[intent])
        n = round(members.size * fraction)
        held.update(rng.permutation(members)[:n].tolist())
    parts = []
    for keep in (False, True):
        examples = tuple(
            ex for i, ex in enumerate(data.examples) if (i in held) == keep
        )
        parts.append(replace(data, examples=examples))
    return parts[0], parts[1]


def predict(model: Any, data: NLUData, batch_size: int = 256) -> list[dict[str, Any]]:
    """One prediction record per example, in file order (``predictions.jsonl``)."""
    records = []
    examples = data.examples
    for first in range(0, len(examples), batch_size):
        chunk = examples[first : first + batch_size]
        results = model.parse_batch([ex.text for ex in chunk])
        for example, result in zip(chunk, results, strict=True):
            intent = result.get("intent") or {}
            gold = example.intent and base_intent(example.intent)
            record: dict[str, Any] = {
                "text": example.text,
                "intent": gold,
                "predicted_intent": intent.get("name"),
                "confidence": float(intent.get("confidence") or 0.0),
                "entities": [_entity(e) for e in example.entities],
                "predicted_entities": [_entity(e) for e in result.get("entities", [])],
            }
            if example.intent is not None and RETRIEVAL_DELIMITER in example.intent:
                # NOTE: the response the selector chose, whatever the intent.
                record["response"] = example.intent
                record["predicted_response"] = _selected(
                    result, base_intent(example.intent)
                )
            records.append(record)
    return records


def _selected(result: dict[str, Any], intent: str) -> str | None:
    selector = result.get("response_selector") or {}
    chosen = selector.get(intent) or selector.get(DEFAULT_SELECTOR) or {}
    return chosen.get("response", {}).get("intent_response_key")


def _entity(entity: Any) -> dict[str, Any]:
    out = {
        "start": int(entity["start"]),
        "end": int(entity["end"]),
        "value": entity["value"],
        "entity": entity["entity"],
    }
    if "confidence" in entity:
        out["confidence"] = float(entity["confidence"])
    if "extractor" in entity:
        out["extractor"] = entity["extractor"]
    return out


def evaluate(
    model: Any,
    data: NLUData,
    out_of_scope: Iterable[str] = OUT_OF_SCOPE_INTENTS,
) -> dict[str, Any]:
    """Scores of ``model`` (anything with ``parse_batch``) on ``data``.

    The result has ``intent``, ``entities``, ``out_of_scope`` (None unless the data
    has an out-of-scope intent), ``timing`` and ``predictions`` (the records of
    `predict`). A predicted fallback intent counts as out of scope.
    """
    start = time.perf_counter()
    records = predict(model, data)
    seconds = time.perf_counter() - start
    report = score(records, out_of_scope)
    report["timing"] = {
        "parse_seconds": round(seconds, 4),
        "ms_per_example": round(1000 * seconds / max(len(records), 1), 4),
    }
    report["predictions"] = records
    return report


def score(
    records: Sequence[dict[str, Any]],
    out_of_scope: Iterable[str] = OUT_OF_SCOPE_INTENTS,
) -> dict[str, Any]:
    """The metrics of prediction records (see `evaluate`)."""
    oos_names = frozenset(out_of_scope)
    labelled = [r for r in records if r["intent"] is not None]
    gold_oos = sorted({r["intent"] for r in labelled} & oos_names)
    canonical = gold_oos[0] if gold_oos else None

    def normalise(name: str | None) -> str | None:
        if canonical is not None and name in oos_names:
            return canonical
        return name

    gold = [r["intent"] for r in labelled]
    pred = [normalise(r["predicted_intent"]) for r in labelled]
    report: dict[str, Any] = {
        "n_examples": len(records),
        "intent": intent_metrics(gold, pred),
        "entities": entity_metrics(records),
        "out_of_scope": None,
        "response_selection": None,
    }
    responses = [r for r in records if "response" in r]
    if responses:
        report["response_selection"] = {
            "n_examples": len(responses),
            "accuracy": _ratio(
                sum(r["response"] == r["predicted_response"] for r in responses),
                len(responses),
            ),
        }
    if canonical is not None:
        in_scope = [(g, p) for g, p in zip(gold, pred, strict=True) if g != canonical]
        oos = [p for g, p in zip(gold, pred, strict=True) if g == canonical]
        predicted_oos = sum(p == canonical for p in pred)
        report["out_of_scope"] = {
            "intent": canonical,
            "n_in_scope": len(in_scope),
            "n_out_of_scope": len(oos),
            "in_scope_accuracy": _ratio(
                sum(g == p for g, p in in_scope), len(in_scope)
            ),
            "out_of_scope_recall": _ratio(sum(p == canonical for p in oos), len(oos)),
            "out_of_scope_precision": _ratio(
                sum(p == canonical for p in oos), predicted_oos
            ),
        }
    return report


def _ratio(numerator: float, denominator: float) -> float:
    return round(ratio(numerator, denominator), 6)


#: What an example without a predicted intent counts as.
_NO_INTENT = "\x00none"


def intent_metrics(
    gold: Sequence[str], pred: Sequence[str | None], top_confusions: int = 20
) -> dict[str, Any]:
    """Accuracy, macro F1, per-intent precision/recall/F1 and confused pairs."""
    labels = sorted(set(gold))
    scores = classification_metrics(
        gold, [p if p is not None else _NO_INTENT for p in pred]
    )
    per_intent = {
        label: {
            "precision": round(s.precision, 6),
            "recall": round(s.recall, 6),
            "f1": round(s.f1, 6),
            "support": s.support,
        }
        for label in labels
        for s in (scores.per_label[label],)
    }
    confusions = Counter(
        (g, p) for g, p in zip(gold, pred, strict=True) if g != p
    ).most_common(top_confusions)
    macro = float(np.mean([m["f1"] for m in per_intent.values()])) if labels else 0.0
    return {
        "accuracy": round(scores.accuracy, 6),
        "macro_f1": round(macro, 6),
        "n": len(gold),
        "per_intent": per_intent,
        "confusions": [
            {"intent": g, "predicted": p, "count": n} for (g, p), n in confusions
        ],
    }


def _overlap_matches(gold: list[tuple], pred: list[tuple]) -> int:
    """One-to-one matches of same-type entities whose spans overlap (greedy,
    largest overlap first)."""
    candidates = []
    for i, (gs, ge, gt) in enumerate(gold):
        for j, (ps, pe, pt) in enumerate(pred):
            overlap = min(ge, pe) - max(gs, ps)
            if gt == pt and overlap > 0:
                candidates.append((-overlap, i, j))
    used_gold, used_pred = set(), set()
    for _, i, j in sorted(candidates):
        if i not in used_gold and j not in used_pred:
            used_gold.add(i)
            used_pred.add(j)
    return len(used_gold)


def _prf(tp: int, n_pred: int, n_gold: int) -> dict[str, Any]:
    precision, recall, f1 = (round(v, 6) for v in prf(tp, n_pred, n_gold))
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "tp": tp,
        "n_pred": n_pred,
        "n_gold": n_gold,
    }


def entity_metrics(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Micro precision/recall/F1 by exact span + type and by overlap + type,
    overall and per entity type."""
    totals: Counter[str] = Counter()
    per_type: dict[str, Counter] = {}
    for record in records:
        gold = [(e["start"], e["end"], e["entity"]) for e in record["entities"]]
        pred = [
            (e["start"], e["end"], e["entity"]) for e in record["predicted_entities"]
        ]
        for kind in {t for _, _, t in gold} | {t for _, _, t in pred}:
            g = [e for e in gold if e[2] == kind]
            p = [e for e in pred if e[2] == kind]
            counts = Counter(
                exact=len(set(g) & set(p)),
                overlap=_overlap_matches(g, p),
                n_gold=len(g),
                n_pred=len(p),
            )
            totals.update(counts)
            per_type.setdefault(kind, Counter()).update(counts)

    def block(c: Counter) -> dict[str, Any]:
        return {
            "exact": _prf(c["exact"], c["n_pred"], c["n_gold"]),
            "overlap": _prf(c["overlap"], c["n_pred"], c["n_gold"]),
        }

    return {
        **block(totals),
        "per_type": {kind: block(per_type[kind]) for kind in sorted(per_type)},
    }


# --- writers ----------------------------------------------------------------------


def write_reports(report: dict[str, Any], out: str | Path) -> dict[str, Path]:
    """Write ``report.json``, ``predictions.jsonl`` and ``report.html`` to ``out``."""
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": write_json_report(report, directory / REPORT_FILE),
        "predictions": write_predictions(
            report.get("predictions", []), directory / PREDICTIONS_FILE
        ),
        "html": write_html_report(report, directory / HTML_FILE),
    }
    return paths


def write_json_report(report: dict[str, Any], path: str | Path) -> Path:
    """The metrics (everything but the per-example predictions) as JSON."""
    body = {k: v for k, v in report.items() if k != "predictions"}
    Path(path).write_text(json.dumps(body, indent=1, ensure_ascii=False), "utf-8")
    return Path(path)


def write_predictions(records: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """One JSON line per example, in file order."""
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return Path(path)


def summary_lines(report: dict[str, Any]) -> list[str]:
    """A few lines for a terminal."""
    intent = report["intent"]
    lines = [
        f"examples: {report['n_examples']}",
        f"intent accuracy: {intent['accuracy']:.4f}  macro F1: "
        f"{intent['macro_f1']:.4f}",
    ]
    oos = report.get("out_of_scope")
    if oos:
        lines.append(
            f"in-scope accuracy: {oos['in_scope_accuracy']:.4f}  out-of-scope "
            f"recall: {oos['out_of_scope_recall']:.4f} ({oos['intent']})"
        )
    selection = report.get("response_selection")
    if selection:
        lines.append(
            f"response selection accuracy: {selection['accuracy']:.4f} "
            f"({selection['n_examples']} retrieval examples)"
        )
    entities = report["entities"]
    if entities["exact"]["n_gold"] or entities["exact"]["n_pred"]:
        lines.append(
            f"entity F1 exact: {entities['exact']['f1']:.4f}  overlap: "
            f"{entities['overlap']['f1']:.4f}  (P {entities['exact']['precision']:.3f}"
            f" R {entities['exact']['recall']:.3f})"
        )
    for item in intent["confusions"][:3]:
        lines.append(
            f"confused: {item['intent']} -> {item['predicted']} ({item['count']})"
        )
    return lines


def write_html_report(report: dict[str, Any], path: str | Path) -> Path:
    """A self-contained page: headline figures, a confusion matrix of the most
    confused intents, a confidence histogram (inline SVG) and the worst examples."""
    esc = html.escape
    intent = report["intent"]
    entities = report["entities"]
    records = report.get("predictions", [])
    figures = [
        ("examples", str(report["n_examples"])),
        ("intent accuracy", f"{intent['accuracy']:.2%}"),
        ("macro F1", f"{intent['macro_f1']:.4f}"),
    ]
    oos = report.get("out_of_scope")
    if oos:
        figures += [
            ("in-scope accuracy", f"{oos['in_scope_accuracy']:.2%}"),
            ("out-of-scope recall", f"{oos['out_of_scope_recall']:.2%}"),
        ]
    if entities["exact"]["n_gold"]:
        figures += [
            ("entity F1 (exact)", f"{entities['exact']['f1']:.4f}"),
            ("entity F1 (overlap)", f"{entities['overlap']['f1']:.4f}"),
        ]
    parts = [
        "".join(f"<span class='k'>{esc(k)}<b>{esc(v)}</b></span>" for k, v in figures),
        "<h2>Most confused intents</h2>",
        _confusion_table(intent["confusions"], records),
        "<h2>Confidence of the predicted intent</h2>",
        _histogram_svg(records),
        "<h2>Worst intent errors (most confident first)</h2>",
        _worst_table(records),
        "<h2>Entity errors</h2>",
        _entity_error_table(records),
        "<h2>Per intent</h2>",
        _per_intent_table(intent["per_intent"]),
    ]
    Path(path).write_text(page("NLU evaluation", parts), "utf-8")
    return Path(path)


def _confusion_table(
    confusions: list[dict[str, Any]], records: Sequence[dict[str, Any]], size: int = 10
) -> str:
    labels: list[str] = []
    for item in confusions:
        pair = [str(item["intent"]), str(item["predicted"])]
        new = [name for name in dict.fromkeys(pair) if name not in labels]
        if len(labels) + len(new) <= size:
            labels.extend(new)
    if not labels:
        return "<p>No intent errors.</p>"
    counts = Counter(
        (str(r["intent"]), str(r["predicted_intent"]))
        for r in records
        if str(r["intent"]) in labels and str(r["predicted_intent"]) in labels
    )
    return "<p>The intents of the most frequent confusions.</p>" + confusion_table(
        labels, [[counts[(g, p)] for p in labels] for g in labels]
    )


def _histogram_svg(records: Sequence[dict[str, Any]], bins: int = 20) -> str:
    """Two inline SVG histograms of the top confidence: right and wrong intents
    (each on its own scale, so a few errors stay visible next to many hits)."""
    labelled = [r for r in records if r["intent"] is not None]
    if not labelled:
        return "<p>No labelled examples.</p>"
    edges = np.linspace(0.0, 1.0, bins + 1)
    conf = np.clip([r["confidence"] for r in labelled], 0.0, 1.0)
    right = np.array([r["predicted_intent"] == r["intent"] for r in labelled])
    panels = [
        _bars(np.histogram(conf[mask], edges)[0], title, colour)
        for mask, title, colour in (
            (right, "intent right", "#6a6"),
            (~right, "intent wrong", "#c55"),
        )
    ]
    return "<div>" + "".join(panels) + "</div>"


def _bars(counts: np.ndarray, title: str, colour: str) -> str:
    width, height, pad = 420, 200, 28
    top = max(int(counts.max()), 1)
    bar = (width - 2 * pad) / counts.size
    shapes = []
    for i, n in enumerate(counts):
        h = (height - 2 * pad) * n / top
        shapes.append(
            f"<rect x='{pad + i * bar:.1f}' y='{height - pad - h:.1f}' "
            f"width='{bar - 1:.1f}' height='{h:.1f}' fill='{colour}'>"
            f"<title>{n} examples, confidence {i / counts.size:.2f}-"
            f"{(i + 1) / counts.size:.2f}</title></rect>"
        )
    axis = "".join(
        f"<text x='{pad + t * (width - 2 * pad):.1f}' y='{height - 10}' "
        f"font-size='11' text-anchor='middle'>{t:.2f}</text>"
        for t in (0.0, 0.25, 0.5, 0.75, 1.0)
    )
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' "
        f"height='{height}' style='margin-right:1em'>"
        f"<line x1='{pad}' y1='{height - pad}' x2='{width - pad}' "
        f"y2='{height - pad}' stroke='#333'/>{''.join(shapes)}{axis}"
        f"<text x='{pad}' y='14' font-size='12'>{html.escape(title)}: "
        f"{int(counts.sum())} examples (tallest bin {top})</text></svg>"
    )


def _worst_table(records: Sequence[dict[str, Any]], limit: int = 30) -> str:
    wrong = [
        r
        for r in records
        if r["intent"] is not None and r["predicted_intent"] != r["intent"]
    ]
    wrong.sort(key=lambda r: -r["confidence"])
    if not wrong:
        return "<p>None.</p>"
    rows = [
        [
            r["text"],
            str(r["intent"]),
            str(r["predicted_intent"]),
            f"{r['confidence']:.3f}",
        ]
        for r in wrong[:limit]
    ]
    head = f"<p>{len(wrong)} errors; the {min(limit, len(wrong))} most confident:</p>"
    return head + table(["text", "intent", "predicted", "confidence"], rows, left=3)


def _spans(text: str, entities: Sequence[dict[str, Any]]) -> str:
    return ", ".join(f"{text[e['start'] : e['end']]} ({e['entity']})" for e in entities)


def _entity_error_table(records: Sequence[dict[str, Any]], limit: int = 30) -> str:
    wrong = []
    for r in records:
        gold = {(e["start"], e["end"], e["entity"]) for e in r["entities"]}
        pred = {(e["start"], e["end"], e["entity"]) for e in r["predicted_entities"]}
        if gold != pred:
            wrong.append(r)
    if not wrong:
        return "<p>None.</p>"
    rows = [
        [
            r["text"],
            _spans(r["text"], r["entities"]),
            _spans(r["text"], r["predicted_entities"]),
        ]
        for r in wrong[:limit]
    ]
    head = (
        f"<p>{len(wrong)} examples with an entity error; the first "
        f"{min(limit, len(wrong))}:</p>"
    )
    return head + table(["text", "entities", "predicted"], rows, left=3)


def _per_intent_table(per_intent: dict[str, dict[str, Any]]) -> str:
    ordered = sorted(per_intent.items(), key=lambda item: item[1]["f1"])
    return "<p>Worst F1 first.</p>" + label_table(
        ((name, LabelScore(**m)) for name, m in ordered), "intent"
    )
