"""``python -m bench.babi --task N --data-dir DIR --split dev --out DIR``.

Converts dialog bAbI task N into a dialogd bot, trains it on the task's trn file
(a seeded tenth of it held back for early stopping; nothing of dev), serves it with
a real server on a private Redis, plays every dialogue of the split over HTTP and
writes ``result.json`` and ``turns.jsonl`` into ``--out``. ``--cv K`` plays K folds
of the trn file instead, each through a bot built from the other folds only.
``--oov-copy`` plays a copy of the split whose cuisines and cities are replaced by
values never seen in training.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench import data as bench_data
from bench.babi.data import SPLITS
from bench.babi.harness import Options
from bench.babi.harness import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.babi", description=__doc__)
    parser.add_argument("--task", type=int, required=True, choices=range(1, 7))
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="the dialog bAbI files (default: the bench.data cache's dialog_babi)",
    )
    parser.add_argument("--split", choices=SPLITS, default="dev")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--oov-copy",
        action="store_true",
        help="replace the split's cuisines and cities by unseen ones (tasks 1-5)",
    )
    parser.add_argument("--limit", type=int, help="play only the first N dialogues")
    parser.add_argument("--train-limit", type=int, help="train on the first N only")
    parser.add_argument("--threads", type=int, default=2, help="client threads")
    parser.add_argument("--workers", type=int, default=2, help="server workers")
    parser.add_argument(
        "--free-running",
        action="store_true",
        help="the bot's own actions drive each conversation (default: after each "
        "turn the client reports the logged action, so every turn is predicted "
        "from the true history, as bAbI's per-response accuracy is defined)",
    )
    parser.add_argument(
        "--config", type=Path, help="YAML whose policies/pipeline replace the bot's"
    )
    parser.add_argument(
        "--cv",
        type=int,
        metavar="K",
        help="K-fold cross-validation over the trn dialogues instead of --split",
    )
    parser.add_argument("--augmentation", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.oov_copy and args.task == 6:
        parser.error("--oov-copy is for tasks 1-5")
    if args.data_dir is None:
        try:
            args.data_dir = bench_data.path("dialog_babi")
        except bench_data.DataMissing as exc:
            parser.error(str(exc))
    result = run(
        Options(
            task=args.task,
            data_dir=args.data_dir,
            split=args.split,
            out=args.out,
            oov_copy=args.oov_copy,
            limit=args.limit,
            train_limit=args.train_limit,
            threads=args.threads,
            workers=args.workers,
            augmentation=args.augmentation,
            seed=args.seed,
            free_running=args.free_running,
            config=args.config,
            cv=args.cv,
        )
    )
    if args.cv is not None:
        print(
            f"task {result['task']}, {args.cv}-fold cross-validation over trn: "
            f"per-response {result['per_response_accuracy']:.2%} "
            f"(sd {result['per_response_accuracy_stdev']:.2%}, folds "
            + ", ".join(f"{v:.2%}" for v in result["per_response_accuracy_by_fold"])
            + f"), per-dialogue {result['per_dialogue_accuracy']:.2%}; "
            f"{result['correct_turns']}/{result['turns']} turns"
        )
        return 0
    print(
        f"task {result['task']} {result['split']}"
        f"{' (OOV copy)' if result['oov_copy'] else ''}: "
        f"per-response {result['per_response_accuracy']:.2%} "
        f"({result['correct_turns']}/{result['turns']}), per-dialogue "
        f"{result['per_dialogue_accuracy']:.2%} "
        f"({result['correct_dialogues']}/{result['dialogues']}); "
        f"policy trained in {result['training']['core_seconds']} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
