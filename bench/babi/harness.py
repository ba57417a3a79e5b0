"""Convert a bAbI task into a bot, train it, serve it, and play a split through it.

The server is a real ``python -m api.server`` (gunicorn) on a private embedded Redis;
the harness talks to it over HTTP only, as any client would.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import tempfile
import time
from collections import Counter
from dataclasses import asdict
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from api.testing import Server
from bench.babi import dstc2
from bench.babi import restaurant
from bench.babi.client import play_all
from bench.babi.data import Dialogue
from bench.babi.data import parse_dialogues
from bench.babi.data import read_dialogues
from bench.babi.data import task_file
from bench.babi.oov import oov_text
from trackerstore import EmbeddedRedis
from worker.domain import Domain
from worker.model import CoreModel
from worker.nlu import NLUPipeline
from worker.nlu import load_nlu_data
from worker.train import split_config
from worker.training import generate_dialogues
from worker.training import read_stories
from worker.yamlfile import read_yaml


@dataclass(frozen=True)
class Options:
    task: int
    data_dir: Path
    split: str
    out: Path
    oov_copy: bool = False
    limit: int | None = None
    train_limit: int | None = None
    threads: int = 2
    workers: int = 2
    augmentation: int = 0
    seed: int = 0
    #: the bot's own actions drive the conversation (default: the gold history)
    free_running: bool = False
    #: a YAML whose ``policies:`` / ``pipeline:`` replace the converter's
    config: Path | None = None


def bot_module(task: int) -> ModuleType:
    return dstc2 if task == 6 else restaurant


def train_models(
    bot_dir: Path, model_dir: Path, config: dict[str, Any], augmentation: int, seed: int
) -> dict[str, Any]:
    """NLU and Core models from the bot's files; the Core policies stop early on
    the dev stories. Returns timings and sizes."""
    info: dict[str, Any] = {}
    start = time.perf_counter()
    data = load_nlu_data(bot_dir / "data" / "nlu.md")
    nlu_config, policy_config = split_config(config)
    NLUPipeline(nlu_config).fit(data).save(model_dir / "nlu")
    info["nlu_examples"] = len(data.examples)
    info["nlu_seconds"] = round(time.perf_counter() - start, 2)

    domain = Domain.load(bot_dir / "domain.yml")
    stories = bot_dir / "data" / "stories.md"
    start = time.perf_counter()
    validation = generate_dialogues(
        read_stories(bot_dir / "validation" / "stories.md", domain),
        domain,
        augmentation_factor=0,
    )
    counts: dict[str, int] = {}
    core = CoreModel.train(
        domain,
        stories,
        policy_config,
        augmentation_factor=augmentation,
        seed=seed,
        progress=lambda stage, done, total: counts.__setitem__(stage, total),
        validation=validation,
    )
    ensemble = core.ensemble
    info["core_seconds"] = round(time.perf_counter() - start, 2)
    info["core_dialogues"] = counts["dialogues"]
    info["epochs"] = {
        name: getattr(policy, "epochs_trained_", None)
        for name, policy in zip(ensemble.names, ensemble.policies, strict=True)
        if hasattr(policy, "epochs_trained_")
    }
    core.save(model_dir / "core")
    return info


def _test_dialogues(options: Options) -> list[Dialogue]:
    text = task_file(options.data_dir, options.task, options.split).read_text()
    if options.oov_copy:
        text = oov_text(text)
    return parse_dialogues(text)[: options.limit]


def score(
    dialogues: list[Dialogue], predictions: list[list[str]], module: ModuleType
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(figures for result.json, one row per bot turn for turns.jsonl)."""
    rows: list[dict[str, Any]] = []
    wrong: Counter[str] = Counter()
    perfect = 0
    for dialogue, said in zip(dialogues, predictions, strict=True):
        ok = True
        for n, (turn, text) in enumerate(zip(dialogue.turns, said, strict=True)):
            rows.append(
                {
                    "dialogue": dialogue.index + 1,
                    "turn": n + 1,
                    "gold": turn.bot,
                    "predicted": text,
                }
            )
            if text != turn.bot:
                ok = False
                wrong[module.gold_action(turn.bot)] += 1
        perfect += ok
    correct = sum(r["gold"] == r["predicted"] for r in rows)
    figures = {
        "dialogues": len(dialogues),
        "turns": len(rows),
        "correct_turns": correct,
        "per_response_accuracy": correct / len(rows) if rows else 0.0,
        "correct_dialogues": perfect,
        "per_dialogue_accuracy": perfect / len(dialogues) if dialogues else 0.0,
        "wrong_turns_by_gold_action": dict(wrong.most_common()),
    }
    return figures, rows


def run(options: Options) -> dict[str, Any]:
    module = bot_module(options.task)
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    train_path = task_file(options.data_dir, options.task, "trn")
    train = read_dialogues(train_path)[: options.train_limit]
    dev = read_dialogues(task_file(options.data_dir, options.task, "dev"))
    test = _test_dialogues(options)
    files = module.convert(train, dev, seed=options.seed)
    if options.config is not None:
        override = read_yaml(options.config).data or {}
        files = dataclasses.replace(files, config={**files.config, **override})
    bot_dir = files.write(out / "bot")
    training = train_models(
        bot_dir, out / "model", files.config, options.augmentation, options.seed
    )
    training["dialogues"] = len(train)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(tmp) as redis:
        (out / "logs").mkdir(exist_ok=True)
        server = Server(
            out / "model",
            redis.url,
            "babi:",
            out / "logs",
            nlu=True,
            workers=options.workers,
        ).start(timeout=60)
        try:
            predictions = play_all(
                server.url,
                test,
                functools.partial(module.client_actions, knowledge=files.knowledge),
                prefix=f"{options.split}:",
                threads=options.threads,
                gold=None if options.free_running else files.gold,
            )
        finally:
            server.stop()
    play_seconds = time.perf_counter() - start
    figures, rows = score(test, predictions, module)
    result = {
        "task": options.task,
        "split": options.split,
        "oov_copy": options.oov_copy,
        **figures,
        "training": training,
        "play_seconds": round(play_seconds, 1),
        "options": {k: str(v) for k, v in asdict(options).items()},
    }
    with (out / "turns.jsonl").open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
