"""Story evaluation: replaying test stories through a model, metrics and reports."""

from worker.evaluation.curve import CurvePoint
from worker.evaluation.curve import curve_summary
from worker.evaluation.curve import curve_svg
from worker.evaluation.curve import learning_curve
from worker.evaluation.curve import train_core
from worker.evaluation.metrics import Metrics
from worker.evaluation.metrics import classification_metrics
from worker.evaluation.metrics import text_report
from worker.evaluation.report import html_report
from worker.evaluation.report import write_report
from worker.evaluation.stories import ActionResult
from worker.evaluation.stories import Evaluation
from worker.evaluation.stories import StoryResult
from worker.evaluation.stories import UserResult
from worker.evaluation.stories import evaluate_dialogues
from worker.evaluation.stories import evaluate_markdown
from worker.evaluation.stories import evaluate_stories
from worker.evaluation.stories import story_dialogues

__all__ = [
    "ActionResult",
    "CurvePoint",
    "Evaluation",
    "Metrics",
    "StoryResult",
    "UserResult",
    "classification_metrics",
    "curve_summary",
    "curve_svg",
    "evaluate_dialogues",
    "evaluate_markdown",
    "evaluate_stories",
    "html_report",
    "learning_curve",
    "story_dialogues",
    "text_report",
    "train_core",
    "write_report",
]
