"""Fixtures for the NLU tests: a tiny random BERT in the encoder's folder layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from worker.nlu.encoder import write_safetensors

TINY_WORDS = [
    "hello",
    "there",
    "hey",
    "good",
    "morning",
    "bye",
    "see",
    "you",
    "later",
    "show",
    "me",
    "chinese",
    "restaurants",
    "in",
    "berlin",
    "i",
    "want",
    "food",
    "any",
    "italian",
    "place",
    "near",
    "paris",
    "find",
    "a",
    "mexican",
    "restaurant",
    "thai",
    "rome",
    "please",
    "somewhere",
    "with",
    "zip",
    "how",
    "do",
    "reset",
    "my",
    "password",
    "forgot",
    "change",
    "it",
    "what",
    "weather",
    "tomorrow",
    "will",
    "rain",
    "play",
    "some",
    "jazz",
    "music",
]
TINY_PIECES = ["##s", "##e", "##a", "##n", "##ing", ",", ".", "!", "'", "?", "-"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
LETTERS = list("abcdefghijklmnopqrstuvwxyz0123456789")


def build_tiny_bert(folder: Path, hidden: int = 16, layers: int = 2) -> Path:
    """A random 2-layer BERT (hidden 16, 2 heads) with a small WordPiece vocab."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = SPECIAL + sorted(set(TINY_WORDS)) + TINY_PIECES + LETTERS
    vocab += [f"##{c}" for c in LETTERS]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", "utf-8")
    config = {
        "hidden_size": hidden,
        "num_attention_heads": 2,
        "num_hidden_layers": layers,
        "intermediate_size": 4 * hidden,
        "max_position_embeddings": 64,
        "layer_norm_eps": 1e-12,
        "vocab_size": len(vocab),
    }
    (folder / "config.json").write_text(json.dumps(config), "utf-8")
    rng = np.random.default_rng(0)

    def w(*shape: int) -> np.ndarray:
        return rng.normal(0.0, 0.2, shape).astype(np.float32)

    tensors = {
        "embeddings.word_embeddings.weight": w(len(vocab), hidden),
        "embeddings.position_embeddings.weight": w(64, hidden),
        "embeddings.token_type_embeddings.weight": w(2, hidden),
        "embeddings.LayerNorm.weight": np.ones(hidden, np.float32),
        "embeddings.LayerNorm.bias": np.zeros(hidden, np.float32),
        "embeddings.position_ids": np.arange(64, dtype=np.int64)[None],
    }
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for name in ("query", "key", "value"):
            tensors[f"{p}attention.self.{name}.weight"] = w(hidden, hidden)
            tensors[f"{p}attention.self.{name}.bias"] = w(hidden)
        tensors[f"{p}attention.output.dense.weight"] = w(hidden, hidden)
        tensors[f"{p}attention.output.dense.bias"] = w(hidden)
        tensors[f"{p}intermediate.dense.weight"] = w(4 * hidden, hidden)
        tensors[f"{p}intermediate.dense.bias"] = w(4 * hidden)
        tensors[f"{p}output.dense.weight"] = w(hidden, 4 * hidden)
        tensors[f"{p}output.dense.bias"] = w(hidden)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            tensors[f"{p}{norm}.weight"] = np.ones(hidden, np.float32)
            tensors[f"{p}{norm}.bias"] = np.zeros(hidden, np.float32)
    write_safetensors(folder / "model.safetensors", tensors)
    return folder


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def nlu_md(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny NLU set in Markdown that exercises every component: intents,
    entities, a synonym, a regex and a lookup table."""
    path = tmp_path_factory.mktemp("nlu-md") / "nlu.md"
    path.write_text(_NLU_MD, encoding="utf-8")
    return path


_NLU_MD = """\
## intent:greet
- hey
- hello there
- good morning
## intent:search
- show me [chinese](cuisine) restaurants in [Berlin](city)
- i want [chines](cuisine:chinese) food
- any [italian](cuisine) place near [Paris](city)
- find a [mexican](cuisine) restaurant
- [thai](cuisine) food in [Rome](city) please
- somewhere with [chinese](cuisine) food in zip [12345](zip)
## intent:bye
- bye
- see you later
## regex:zip
- [0-9]{5}
## lookup:city
- Berlin
- Paris
- Rome
## synonym:chinese
- Chinese food
"""
