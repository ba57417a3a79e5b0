"""The benchmark sets: train and val splits of CLINC150, HWU64 and SNIPS.

Only ``train.json`` and ``val.json`` of ``shared/data/<set>/rasa/`` are read. HWU64
ships no val split, so a fixed one is carved from its train file (10% of each
intent, seed 0) and the rest is trained on; nothing else is ever read.
"""

from __future__ import annotations

import os
from pathlib import Path

from worker.nlu import NLUData
from worker.nlu import load_nlu_data
from worker.nlu.evaluation import stratified_split

SETS = ("clinc150", "hwu64", "snips")
DATA_ROOT = Path(os.environ.get("DIALOGD_DATA", "/work/shared/data"))
HWU64_VAL_FRACTION = 0.1
HWU64_VAL_SEED = 0


def load_set(name: str, root: Path = DATA_ROOT) -> tuple[NLUData, NLUData]:
    """``(train, val)`` of one benchmark set."""
    if name not in SETS:
        raise ValueError(f"unknown set {name!r}; choose from {SETS}")
    folder = root / name / "rasa"
    train = load_nlu_data(folder / "train.json")
    if name == "hwu64":
        return stratified_split(train, HWU64_VAL_FRACTION, HWU64_VAL_SEED)
    return train, load_nlu_data(folder / "val.json")
