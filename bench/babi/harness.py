"""Convert a bAbI task into a bot, train it, serve it, and play a split through it.

The server is a real ``python -m api.server`` (gunicorn) on a private embedded Redis;
the harness talks to it over HTTP only, as any client would.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import random
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import asdict
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from typing import TypeVar

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
    #: k-fold cross-validation over the trn dialogues instead of playing ``split``
    cv: int | None = None


T = TypeVar("T")
#: The share of the training dialogues held back for early stopping (never dev).
HELD_BACK = 0.1


def hold_back(
    dialogues: list[T], fraction: float, seed: int
) -> tuple[list[T], list[T]]:
    """(dialogues to train on, dialogues held back for early stopping): a seeded
    random ``fraction``, so that no split being played decides when training stops."""
    order = random.Random(seed).sample(range(len(dialogues)), len(dialogues))
    held = set(order[: round(len(dialogues) * fraction)])
    return (
        [d for n, d in enumerate(dialogues) if n not in held],
        [d for n, d in enumerate(dialogues) if n in held],
    )


def folds(n: int, k: int, seed: int) -> list[list[int]]:
    """``k`` disjoint folds of ``range(n)`` after a seeded shuffle, sizes within 1."""
    if not 2 <= k <= n:
        raise ValueError(f"cross-validation needs 2 <= k <= {n} folds, not {k}")
    order = random.Random(seed).sample(range(n), n)
    return [sorted(order[i::k]) for i in range(k)]


def bot_module(task: int) -> ModuleType:
    return dstc2 if task == 6 else restaurant


def train_models(
    bot_dir: Path, model_dir: Path, config: dict[str, Any], augmentation: int, seed: int
) -> dict[str, Any]:
    """NLU and Core models from the bot's files; the Core policies stop early on
    the validation stories (held-back training dialogues). Returns timings and
    sizes."""
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
    total: Counter[str] = Counter()
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
            kind = module.gold_action(turn.bot)
            total[kind] += 1
            if text != turn.bot:
                ok = False
                wrong[kind] += 1
                if kind == "api_call" and text.startswith("api_call "):
                    wrong["api_call (other arguments)"] += 1
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
        "turns_by_gold_action": dict(total.most_common()),
    }
    return figures, rows


def _bot_and_model(
    module: ModuleType,
    train: list[Dialogue],
    options: Options,
    out: Path,
) -> tuple[Any, dict[str, Any]]:
    """Convert and train on ``train`` only: the NLU on all of it, the policies on
    all but a seeded part held back for their early stopping; (bot files, training
    figures)."""
    fit, held = hold_back(train, HELD_BACK, options.seed)
    files = module.convert(fit, held, seed=options.seed)
    # NOTE: the NLU has no early stopping: it learns from every training dialogue.
    files = dataclasses.replace(files, nlu=module.convert(train, seed=options.seed).nlu)
    if options.config is not None:
        override = read_yaml(options.config).data or {}
        files = dataclasses.replace(files, config={**files.config, **override})
    bot_dir = files.write(out / "bot")
    training = train_models(
        bot_dir, out / "model", files.config, options.augmentation, options.seed
    )
    training["dialogues"] = len(fit)
    training["held_back"] = len(held)
    return files, training


def _play(
    module: ModuleType,
    files: Any,
    played: list[Dialogue],
    options: Options,
    out: Path,
    prefix: str,
) -> list[list[str]]:
    """Serve ``out/model`` with a real server on a private Redis and play."""
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
            return play_all(
                server.url,
                played,
                functools.partial(module.client_actions, knowledge=files.knowledge),
                prefix=prefix,
                threads=options.threads,
                gold=None if options.free_running else files.gold,
            )
        finally:
            server.stop()


def _write(out: Path, result: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    with (out / "turns.jsonl").open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")


def _one(
    module: ModuleType,
    train: list[Dialogue],
    played: list[Dialogue],
    options: Options,
    out: Path,
    prefix: str,
) -> dict[str, Any]:
    """Build from ``train``, play ``played``, score; writes the results into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    files, training = _bot_and_model(module, train, options, out)
    start = time.perf_counter()
    predictions = _play(module, files, played, options, out, prefix)
    play_seconds = time.perf_counter() - start
    figures, rows = score(played, predictions, module)
    result = {
        "task": options.task,
        "split": options.split,
        "oov_copy": options.oov_copy,
        **figures,
        "training": training,
        "play_seconds": round(play_seconds, 1),
        "options": {k: str(v) for k, v in asdict(options).items()},
    }
    _write(out, result, rows)
    return result


def run(options: Options) -> dict[str, Any]:
    """Train on the trn file and play ``options.split`` (or cross-validate)."""
    module = bot_module(options.task)
    train_path = task_file(options.data_dir, options.task, "trn")
    train = read_dialogues(train_path)[: options.train_limit]
    if options.cv is not None:
        return cross_validate(module, train, options)
    return _one(
        module, train, _test_dialogues(options), options, options.out, options.split
    )


def cross_validate(
    module: ModuleType, train: list[Dialogue], options: Options
) -> dict[str, Any]:
    """k-fold cross-validation over the training dialogues: each fold's bot (its
    NLU data, templates, knowledge base, stories, early stopping) is built from the
    other folds only, then plays the fold. Per-fold results go to ``out/fold-N``;
    the summary (mean, spread) to ``out/result.json``."""
    assert options.cv is not None
    results = []
    for n, fold in enumerate(folds(len(train), options.cv, options.seed)):
        inside = set(fold)
        played = [d for i, d in enumerate(train) if i in inside]
        rest = [d for i, d in enumerate(train) if i not in inside]
        out = options.out / f"fold-{n + 1}"
        results.append(_one(module, rest, played, options, out, f"fold{n + 1}:"))
    summary = summarise(results)
    summary.update(
        task=options.task,
        split=f"trn, {options.cv}-fold cross-validation",
        oov_copy=options.oov_copy,
        options={k: str(v) for k, v in asdict(options).items()},
    )
    (options.out / "result.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean, standard deviation and range of the folds' accuracies; pooled counts."""
    out: dict[str, Any] = {"folds": len(results)}
    for key in ("per_response_accuracy", "per_dialogue_accuracy"):
        values = [r[key] for r in results]
        out[key] = statistics.fmean(values)
        out[f"{key}_stdev"] = statistics.stdev(values) if len(values) > 1 else 0.0
        out[f"{key}_range"] = [min(values), max(values)]
        out[f"{key}_by_fold"] = values
    for key in ("dialogues", "turns", "correct_turns", "correct_dialogues"):
        out[key] = sum(r[key] for r in results)
    for key in ("wrong_turns_by_gold_action", "turns_by_gold_action"):
        pooled: Counter[str] = Counter()
        for r in results:
            pooled.update(r[key])
        out[key] = dict(pooled.most_common())
    out["training"] = {
        "core_seconds": round(sum(r["training"]["core_seconds"] for r in results), 2)
    }
    return out
