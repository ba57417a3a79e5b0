"""Finding the story and rule files of a bot: one file, or a data folder."""

from __future__ import annotations

import logging
from pathlib import Path

from worker.domain import Domain
from worker.errors import TrainingDataError
from worker.training.stories import NLU_HEADER
from worker.training.stories import StoryStep
from worker.training.stories import parse_stories
from worker.training.yaml_stories import has_story_sections
from worker.training.yaml_stories import parse_yaml_stories

logger = logging.getLogger(__name__)

_YAML = (".yml", ".yaml")


def read_stories(path: str | Path, domain: Domain) -> list[StoryStep]:
    """The story and rule steps of a file, or of every story file below a folder
    (sorted): Markdown stories, and YAML files with ``stories:`` or ``rules:``.

    In a folder, Markdown files with NLU sections (``## intent:...``) and YAML
    files without stories or rules are skipped: a data folder mixes them.
    """
    root = Path(path)
    if root.is_dir():
        files = sorted(
            p for p in root.rglob("*") if p.is_file() and p.suffix in (".md", *_YAML)
        )
    elif root.is_file():
        files = [root]
    else:
        raise TrainingDataError("story file or folder not found", str(root))
    steps: list[StoryStep] = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise TrainingDataError("file is not UTF-8", str(file)) from err
        is_yaml = file.suffix in _YAML
        if len(files) > 1 and (
            not has_story_sections(text) if is_yaml else NLU_HEADER.search(text)
        ):
            logger.info("%s holds no stories: skipped", file)
            continue
        read = parse_yaml_stories if is_yaml else parse_stories
        steps.extend(read(text, domain, str(file)))
    return steps
