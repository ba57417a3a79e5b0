"""Reading the original dialog bAbI files (Bordes et al. 2017), tasks 1-6.

One line per turn, ``ID user<TAB>bot``; lines without a tab are knowledge-base
results (``name R_prop value``, or ``api_call no result`` in task 6); a blank line
or an ID back at 1 starts a new dialogue.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

SILENCE = "<SILENCE>"
TASK_FILES = {
    1: "dialog-babi-task1-API-calls",
    2: "dialog-babi-task2-API-refine",
    3: "dialog-babi-task3-options",
    4: "dialog-babi-task4-phone-address",
    5: "dialog-babi-task5-full-dialogs",
    6: "dialog-babi-task6-dstc2",
}
SPLITS = ("trn", "dev", "tst", "tst-OOV")


@dataclass(frozen=True, slots=True)
class Turn:
    user: str
    bot: str


@dataclass(frozen=True, slots=True)
class Result:
    """One knowledge-base line: ``name prop value`` (``prop`` like ``R_rating``)."""

    name: str
    prop: str
    value: str


@dataclass
class Dialogue:
    """Turns and result lines in file order; ``results_after[i]`` are the result
    lines that follow turn ``i`` (``-1``: before the first turn)."""

    index: int
    turns: list[Turn] = field(default_factory=list)
    results_after: dict[int, list[Result]] = field(default_factory=dict)
    #: ``api_call no result`` lines (task 6), by the turn they follow
    empty_after: set[int] = field(default_factory=set)

    def results(self, turn: int) -> list[Result]:
        return self.results_after.get(turn, [])


def task_file(data_dir: str | Path, task: int, split: str) -> Path:
    if task not in TASK_FILES:
        raise ValueError(f"no dialog bAbI task {task}; tasks are 1-6")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; splits: {', '.join(SPLITS)}")
    return Path(data_dir) / f"{TASK_FILES[task]}-{split}.txt"


def parse_dialogues(text: str) -> list[Dialogue]:
    dialogues: list[Dialogue] = []
    current: Dialogue | None = None
    for raw in text.splitlines():
        line = raw.rstrip("\n")
        if not line.strip():
            current = None
            continue
        number, _, rest = line.partition(" ")
        if current is None or number == "1":
            current = Dialogue(len(dialogues))
            dialogues.append(current)
        after = len(current.turns) - 1
        if "\t" in rest:
            user, bot = rest.split("\t", 1)
            current.turns.append(Turn(user.strip(), bot.strip()))
        elif rest.strip() == "api_call no result":
            current.empty_after.add(after)
        else:
            parts = rest.split()
            if len(parts) != 3:
                raise ValueError(f"cannot read result line {line!r}")
            current.results_after.setdefault(after, []).append(Result(*parts))
    return dialogues


def read_dialogues(path: str | Path) -> list[Dialogue]:
    return parse_dialogues(Path(path).read_text(encoding="utf-8"))
