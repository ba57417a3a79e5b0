"""Stories and rules (Markdown and YAML) and the training dialogues made from them."""

from worker.training.files import read_stories
from worker.training.generator import TrainingDialogue
from worker.training.generator import explicit_events
from worker.training.generator import generate_dialogues
from worker.training.generator import replay
from worker.training.generator import story_step
from worker.training.stories import STORY_START
from worker.training.stories import Checkpoint
from worker.training.stories import StoryStep
from worker.training.stories import parse_stories

__all__ = [
    "STORY_START",
    "Checkpoint",
    "StoryStep",
    "TrainingDialogue",
    "explicit_events",
    "generate_dialogues",
    "parse_stories",
    "read_stories",
    "replay",
    "story_step",
]
