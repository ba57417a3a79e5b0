"""The benchmark sets: train and val splits of CLINC150, HWU64 and SNIPS.

Only ``train.json`` and ``val.json`` of ``<set>/rasa/`` in the ``bench.data`` cache
are read (``python -m bench.data fetch`` puts them there). HWU64 ships no val split,
so a fixed one is carved from its train file (10% of each intent, seed 0) and the
rest is trained on; nothing else is ever read.
"""

from __future__ import annotations

from pathlib import Path

from bench import data as bench_data
from worker.nlu import NLUData
from worker.nlu import load_nlu_data
from worker.nlu.evaluation import stratified_split

SETS = ("clinc150", "hwu64", "snips")
HWU64_VAL_FRACTION = 0.1
HWU64_VAL_SEED = 0


def load_set(name: str, root: Path | None = None) -> tuple[NLUData, NLUData]:
    """``(train, val)`` of one benchmark set, from the cache (or ``root``)."""
    if name not in SETS:
        raise ValueError(f"unknown set {name!r}; choose from {SETS}")
    folder = bench_data.path(name, root) / "rasa"
    train = load_nlu_data(folder / "train.json")
    if name == "hwu64":
        return stratified_split(train, HWU64_VAL_FRACTION, HWU64_VAL_SEED)
    return train, load_nlu_data(folder / "val.json")
