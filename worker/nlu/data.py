"""Loading NLU training data: files and folders in Rasa YAML, JSON or Markdown.

The JSON and Markdown readers follow rasa_nlu 0.13-0.15 (their docs' "Training Data
Format"), the YAML reader Rasa 2.x/3.x; all are stricter: anything they cannot read is
a `TrainingDataError` naming the file and line, never a silently dropped example.
"""

from __future__ import annotations

from pathlib import Path

from worker.errors import TrainingDataError
from worker.nlu._markdown import read_markdown
from worker.nlu._rasa_json import read_rasa_json
from worker.nlu._rasa_yaml import has_nlu_section
from worker.nlu._rasa_yaml import read_rasa_yaml
from worker.nlu.training_data import Entity
from worker.nlu.training_data import Example
from worker.nlu.training_data import NLUData
from worker.nlu.training_data import merge_data

__all__ = ["Entity", "Example", "NLUData", "load_nlu_data"]


def load_nlu_data(path: str | Path, *, lookup_files: bool = False) -> NLUData:
    """Read one NLU file, or every NLU file below a folder, into one `NLUData`.

    In a folder, files are read in sorted path order and only those that look like
    NLU data (Rasa's own format guess) are read, so a `stories.md` next to `nlu.md`
    or a `rules.yml` without an ``nlu:`` key is skipped; a file named explicitly
    must be NLU data. A lookup table may name a file (inside the data file's folder)
    only with ``lookup_files``: for files named on the command line, never for data
    a client sent.
    """
    root = Path(path)
    if root.is_dir():
        parts = [
            _read_file(p, lookup_files)
            for p in sorted(root.rglob("*"))
            if _looks_like_nlu(p)
        ]
        return merge_data(parts)
    if not root.is_file():
        raise TrainingDataError("no such NLU data file or folder", str(root))
    return _read_file(root, lookup_files)


_YAML = (".yml", ".yaml")
_SUFFIXES = (".md", ".json", *_YAML)
_MD_MARKERS = ("## intent:", "## synonym:", "## regex:", "## lookup:")


def _looks_like_nlu(path: Path) -> bool:
    if not path.is_file() or path.suffix.lower() not in _SUFFIXES:
        return False
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix.lower() in _YAML:
        return has_nlu_section(text)
    if path.suffix.lower() == ".json":
        return '"rasa_nlu_data"' in text
    return any(marker in text for marker in _MD_MARKERS)


def _read_file(path: Path, lookup_files: bool) -> NLUData:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise TrainingDataError(f"cannot read file: {err}", str(path)) from err
    if path.suffix.lower() == ".json":
        return read_rasa_json(text, path, lookup_files=lookup_files)
    if path.suffix.lower() == ".md":
        return read_markdown(text, path, lookup_files=lookup_files)
    if path.suffix.lower() in _YAML:
        return read_rasa_yaml(text, path)
    raise TrainingDataError(
        "unknown NLU data format (expected .yml, .json or .md)", str(path)
    )
