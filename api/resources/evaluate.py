"""``POST /evaluate``: score the served model on Markdown stories (Rasa Core 0.14)."""

from __future__ import annotations

from typing import Any

import falcon

from api.body import read_text
from worker.evaluation import Evaluation
from worker.evaluation import evaluate_markdown
from worker.turn import Engine


def evaluation_json(evaluation: Evaluation) -> dict[str, Any]:
    """The keys of rasa_core 0.12-0.14's answer, plus ``stories`` (how many were
    scored, how many of them distinct)."""
    metrics = evaluation.combined_metrics
    return {
        "report": evaluation.text_report(),
        "precision": metrics.weighted("precision"),
        "f1": metrics.weighted("f1"),
        "accuracy": metrics.accuracy,
        "actions": [
            {
                "action": a.gold,
                "predicted": a.predicted,
                "policy": a.policy,
                "confidence": a.confidence,
            }
            for a in evaluation.actions
        ],
        "in_training_data_fraction": evaluation.in_training_data_fraction,
        "is_end_to_end_evaluation": evaluation.end_to_end,
        "stories": {"total": len(evaluation.stories), "distinct": evaluation.distinct},
    }


class Evaluate:
    """Raw story Markdown in the body (any content type); ``?e2e=true`` runs the
    user text of ``* intent: text`` lines through the served NLU model."""

    def __init__(self, engine: Engine, max_body: int):
        self.engine = engine
        self.max_body = max_body

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        e2e = req.get_param_as_bool("e2e", default=False)
        text = read_text(req, self.max_body)
        turn = self.engine.turn()
        evaluation = evaluate_markdown(
            turn.core,
            text,
            interpreter=turn.interpreter,
            e2e=e2e,
        )
        resp.media = evaluation_json(evaluation)
