"""The ``dialogd`` command: ``train`` and ``serve``.

``main`` is the one place that turns errors into messages and exit codes (argparse
exits with 2 on usage errors; a failed command returns 1), so tests call
``main([...])`` in-process.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from api import server
from worker.domain import Domain
from worker.errors import DialogdError
from worker.errors import InvalidConfig
from worker.model import CoreModel
from worker.nlu import NLUPipeline
from worker.nlu import load_nlu_data
from worker.version import __version__
from worker.yamlfile import read_yaml


def _read_config(path: str | None) -> dict[str, Any]:
    """One YAML for both models: ``pipeline:`` (NLU) and ``policies:`` (Core)."""
    if path is None:
        return {}
    data = read_yaml(path).data or {}
    if not isinstance(data, dict):
        raise InvalidConfig(f"{path}: the config must be a mapping")
    return data


class _Progress:
    """One line per step, rewritten in place on a terminal."""

    def __init__(self, stream: Any = None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.start = time.monotonic()

    def __call__(
        self, stage: str, done: int | None = None, total: int | None = None
    ) -> None:
        counts = f" {done}/{total}" if done is not None and total else ""
        line = f"[{time.monotonic() - self.start:6.1f}s] {stage}{counts}"
        if self.tty:
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def done(self, message: str) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(message + "\n")


def cmd_train(args: argparse.Namespace) -> int:
    config = _read_config(args.config)
    domain = Domain.load(args.domain)
    out = Path(args.out)
    progress = _Progress()
    if args.nlu:
        data = load_nlu_data(args.nlu)
        progress(f"training NLU on {len(data.examples)} examples")
        nlu_config = {k: v for k, v in config.items() if k in ("language", "pipeline")}
        NLUPipeline(nlu_config or None).fit(data).save(out / "nlu")
        progress.done(f"NLU model written to {out / 'nlu'}")
    policy_config = {k: v for k, v in config.items() if k in ("policies", "policy")}
    core = CoreModel.train(
        domain,
        args.stories,
        policy_config or None,
        augmentation_factor=args.augmentation,
        progress=progress,
    )
    core.save(out / "core")
    progress.done(f"Core model written to {out / 'core'} ({core.fingerprint})")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    return server.serve(server.options_from_args(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dialogd", description="Train and serve dialogue models over HTTP."
    )
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a Core model (and an NLU model)")
    train.add_argument("--domain", required=True, help="domain.yml")
    train.add_argument("--stories", required=True, help="stories file or folder")
    train.add_argument("--nlu", help="NLU training data (Rasa JSON or Markdown)")
    train.add_argument("--config", help="YAML with 'pipeline:' and/or 'policies:'")
    train.add_argument("--out", required=True, help="model directory to write")
    train.add_argument(
        "--augmentation",
        type=int,
        default=20,
        help="story augmentation factor (default 20)",
    )
    train.set_defaults(func=cmd_train)

    serve = sub.add_parser("serve", help="serve a model with gunicorn")
    server.add_serve_arguments(serve)
    serve.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except DialogdError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("aborted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
