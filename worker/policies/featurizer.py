"""Training examples and binary feature matrices from state windows (ref. 5.3-5.4).

Training replays each dialogue through the server's own ``Tracker`` and takes
``tracker.states(max_history)`` right before each action, the same call a prediction
makes, so training and serving can never featurise differently.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from worker.domain import Domain
from worker.events import ActionExecuted
from worker.tracker import NeedsHistory
from worker.tracker import State
from worker.tracker import Tracker
from worker.training.generator import TrainingDialogue

StateWindow = tuple[State, ...]


def dialogue_examples(
    dialogue: TrainingDialogue, domain: Domain, max_history: int
) -> list[tuple[StateWindow, int]]:
    """(states before the action, action index) for every predictable action."""
    out = []
    events = dialogue.events
    tracker = Tracker("", domain, max_history)
    for i, event in enumerate(events):
        if isinstance(event, ActionExecuted) and i not in dialogue.unpredictable:
            window = tuple(tracker.states(max_history))
            out.append((window, domain.index_of_action(event.name)))
        try:
            tracker.update(event)
        except NeedsHistory:
            tracker = Tracker.from_events("", domain, events[: i + 1], max_history)
    return out


def story_dialogues(
    dialogues: Sequence[TrainingDialogue],
) -> list[TrainingDialogue]:
    """The dialogues a machine-learned policy trains on: stories, not rules."""
    return [d for d in dialogues if d.rule is None]


def window_key(window: Sequence[State | None], max_history: int) -> str:
    """Canonical JSON of a window left-padded with None to ``max_history``."""
    padded = [None] * (max_history - len(window)) + list(window[-max_history:])
    return json.dumps(padded, sort_keys=True, separators=(",", ":"))


def training_examples(
    dialogues: Sequence[TrainingDialogue],
    domain: Domain,
    max_history: int,
    *,
    remove_duplicates: bool = True,
) -> tuple[list[StateWindow], list[int]]:
    """State windows and action labels of all dialogues, in order.

    With ``remove_duplicates`` an identical (window, action) pair counts once, as in
    the original's MaxHistoryTrackerFeaturizer.
    """
    windows: list[StateWindow] = []
    labels: list[int] = []
    seen: set[tuple[str, int]] = set()
    for dialogue in story_dialogues(dialogues):
        for window, action in dialogue_examples(dialogue, domain, max_history):
            if remove_duplicates:
                key = (window_key(window, max_history), action)
                if key in seen:
                    continue
                seen.add(key)
            windows.append(window)
            labels.append(action)
    return windows, labels


def counted_examples(
    dialogues: Sequence[TrainingDialogue], domain: Domain, max_history: int
) -> tuple[list[StateWindow], list[int], list[int]]:
    """Distinct (window, action) examples, in first-seen order, with how often each
    occurs: the weights that keep the data's frequencies when duplicates go."""
    windows: list[StateWindow] = []
    labels: list[int] = []
    counts: list[int] = []
    index: dict[tuple[str, int], int] = {}
    for dialogue in story_dialogues(dialogues):
        for window, action in dialogue_examples(dialogue, domain, max_history):
            key = (window_key(window, max_history), action)
            at = index.get(key)
            if at is None:
                index[key] = len(windows)
                windows.append(window)
                labels.append(action)
                counts.append(1)
            else:
                counts[at] += 1
    return windows, labels, counts


def states_to_matrix(
    windows: Sequence[Sequence[State]], domain: Domain, max_history: int
) -> np.ndarray:
    """Binary features, shape (windows, max_history, features), padded with -1 rows.

    Features follow ``domain.input_features``; names the domain does not know (an
    intent missing from the domain, say) are ignored, as the original did.
    """
    index = domain.feature_index
    out = np.zeros((len(windows), max_history, len(index)), dtype=np.float32)
    for n, window in enumerate(windows):
        window = window[-max_history:]
        pad = max_history - len(window)
        out[n, :pad] = -1.0
        for row, state in enumerate(window, start=pad):
            for name, value in state.items():
                col = index.get(name)
                if col is not None:
                    out[n, row, col] = value
    return out


def window_vector(
    window: Sequence[State], domain: Domain, max_history: int
) -> np.ndarray:
    """``states_to_matrix`` of one window, flattened to (max_history * features,):
    the input of one prediction, without the batch's 3-d indexing."""
    if max_history < 1:
        return states_to_matrix([window], domain, max_history).reshape(-1)
    index = domain.feature_index
    width = len(index)
    out = np.zeros(max_history * width, np.float32)
    window = window[-max_history:]
    at = (max_history - len(window)) * width
    if at:
        out[:at] = -1.0
    for state in window:
        for name, value in state.items():
            col = index.get(name)
            if col is not None:
                out[at + col] = value
        at += width
    return out
