"""The ``dialogd`` command: ``train [nlu]``, ``serve``, ``shell``, ``trainer``,
``test core|nlu``, ``events tail``.


``main`` is the one place that turns errors into messages and exit codes (argparse
exits with 2 on usage errors; a failed command returns 1), so tests call
``main([...])`` in-process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from api import server
from api.events_cli import add_events_parser
from api.shell import Shell
from trackerstore.errors import StoreError
from worker.convert import nlu_to_markdown
from worker.convert import nlu_to_yaml
from worker.convert import stories_to_markdown
from worker.convert import stories_to_yaml
from worker.domain import Domain
from worker.errors import DialogdError
from worker.evaluation import curve_summary
from worker.evaluation import curve_svg
from worker.evaluation import evaluate_stories
from worker.evaluation import learning_curve
from worker.evaluation import write_report
from worker.evaluation.stories import ActionResult
from worker.evaluation.stories import OtherEvent
from worker.evaluation.stories import UserResult
from worker.model import CoreModel
from worker.nlu import Interpreter
from worker.nlu import NLUPipeline
from worker.nlu import load_nlu_data
from worker.nlu.evaluation import evaluate as evaluate_nlu
from worker.nlu.evaluation import summary_lines as nlu_summary_lines
from worker.nlu.evaluation import write_reports as write_nlu_reports
from worker.train import MODELS_DIR
from worker.train import find_project
from worker.train import new_model_dir
from worker.train import newest_model
from worker.train import read_config
from worker.train import split_config
from worker.train import train_models
from worker.train import train_nlu
from worker.training import read_stories
from worker.validate import ERROR
from worker.validate import MAX_HISTORY
from worker.validate import validate
from worker.version import __version__


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


def _train_inputs(args: argparse.Namespace) -> tuple[Any, ...]:
    """Domain, stories, NLU data, config and output of ``dialogd train``: the flags,
    and in a Rasa project folder what is missing is found as ``rasa train`` finds
    it (``domain.yml`` or ``domain/``, ``config.yml``, ``data/``, ``models/``)."""
    project = find_project(".")
    data = args.data or (str(project.data) if project.data else None)
    domain = args.domain or (str(project.domain) if project.domain else None)
    if domain is None:
        args.parser.error("no domain.yml here: give --domain (or run in a project)")
    stories = args.stories or data
    if stories is None:
        args.parser.error("no data/ folder here: give --stories (or --data)")
    # NOTE: before project folders, --domain/--stories without --nlu trained Core
    # only; that stays so.
    nlu = args.nlu or (data if not (args.domain or args.stories) or args.data else None)
    config = args.config or (str(project.config) if project.config else None)
    if args.out and not args.fixed_model_name:
        out = Path(args.out)
    else:
        out = new_model_dir(args.out or MODELS_DIR, args.fixed_model_name)
    return domain, stories, nlu, config, out


def cmd_train(args: argparse.Namespace) -> int:
    domain, stories, nlu, config, out = _train_inputs(args)
    progress = _Progress()
    trained = train_models(
        out,
        read_config(config),
        nlu=nlu,
        domain=domain,
        stories=stories,
        augmentation_factor=args.augmentation,
        progress=progress,
        lookup_files=True,
    )
    if trained.nlu is not None:
        progress.done(f"NLU model written to {out / 'nlu'}")
    assert trained.core is not None
    progress.done(f"Core model written to {out / 'core'} ({trained.core.fingerprint})")
    print(f"Your model is trained and saved at '{out}'.")
    return 0


#: What ``dialogd init`` writes: a small Rasa 3 project (the one ``rasa init`` writes).
TEMPLATE = Path(__file__).parent / "project_template"
TEMPLATE_FILES = (
    "config.yml",
    "domain.yml",
    "endpoints.yml",
    "data/nlu.yml",
    "data/rules.yml",
    "data/stories.yml",
    "tests/test_stories.yml",
)


def cmd_init(args: argparse.Namespace) -> int:
    """Write a project that trains and passes its own tests; never overwrite."""
    root = Path(args.init_dir or args.path or ".")
    existing = [name for name in TEMPLATE_FILES if (root / name).exists()]
    if existing:
        print(
            f"error: {root} already holds {', '.join(existing)}: "
            "dialogd init never overwrites a file",
            file=sys.stderr,
        )
        return 1
    for name in TEMPLATE_FILES:
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text((TEMPLATE / name).read_text(encoding="utf-8"), "utf-8")
    where = "" if str(root) == "." else f"cd {root} && "
    print(f"Created a project in {root}. Next: {where}dialogd train && dialogd test")
    return 0


def _project_paths(args: argparse.Namespace) -> tuple[str, str]:
    project = find_project(".")
    domain = args.domain or (str(project.domain) if project.domain else None)
    data = args.data or (str(project.data) if project.data else None)
    if domain is None or data is None:
        args.parser.error("give --domain and --data (or run in a project folder)")
    return str(domain), str(data)


def cmd_data_validate(args: argparse.Namespace) -> int:
    """``rasa data validate``: errors make the exit code 1 (warnings too with
    ``--fail-on-warnings``)."""
    domain, data = _project_paths(args)
    issues = validate(domain, data, max_history=args.max_history)
    for issue in issues:
        print(f"{issue.level}: {issue.message}")
    errors = sum(i.level == ERROR for i in issues)
    warnings = len(issues) - errors
    print(f"{errors} errors, {warnings} warnings")
    return 1 if errors or (warnings and args.fail_on_warnings) else 0


def cmd_data_convert(args: argparse.Namespace) -> int:
    """``rasa data convert nlu|core``: Markdown and YAML, either way."""
    source = Path(args.data)
    if args.target == "nlu":
        nlu = load_nlu_data(source, lookup_files=True)
        text = nlu_to_yaml(nlu) if args.format == "yaml" else nlu_to_markdown(nlu)
    else:
        domain, _ = _project_paths(args) if not args.domain else (args.domain, "")
        steps = read_stories(source, Domain.load(domain))
        text = (
            stories_to_yaml(steps)
            if args.format == "yaml"
            else stories_to_markdown(steps)
        )
    out = Path(args.out)
    suffix = ".yml" if args.format == "yaml" else ".md"
    if out.is_dir() or not out.suffix:
        out = out / f"{source.stem}_converted{suffix}"
    if out.exists():
        print(f"error: {out} exists: not overwritten", file=sys.stderr)
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"converted {source} to {out}")
    return 0


def add_data_parsers(sub: Any) -> None:
    data = sub.add_parser("data", help="check or convert training data")
    data_sub = data.add_subparsers(dest="action", required=True)
    check = data_sub.add_parser(
        "validate", help="is the domain consistent with the data? (rasa data validate)"
    )
    check.add_argument("-d", "--domain", help="domain (default: ./domain.yml)")
    check.add_argument("--data", help="data folder or file (default: ./data)")
    check.add_argument(
        "--max-history",
        type=int,
        default=MAX_HISTORY,
        help=f"turns the story structure check looks at (default {MAX_HISTORY})",
    )
    check.add_argument(
        "--fail-on-warnings", action="store_true", help="warnings fail the check too"
    )
    check.set_defaults(func=cmd_data_validate, parser=check)
    convert = data_sub.add_parser(
        "convert", help="convert NLU data or stories between Markdown and YAML"
    )
    convert.add_argument("target", choices=("nlu", "core"))
    convert.add_argument("--data", required=True, help="file or folder to convert")
    convert.add_argument(
        "--out", required=True, help="file to write, or a folder for <name>_converted"
    )
    convert.add_argument(
        "-f", "--format", choices=("yaml", "md"), default="yaml", help="(default yaml)"
    )
    convert.add_argument("-d", "--domain", help="core: the domain (default: here)")
    convert.set_defaults(func=cmd_data_convert, parser=convert)


def cmd_serve(args: argparse.Namespace) -> int:
    return server.serve(server.options_from_args(args))


def cmd_shell(args: argparse.Namespace) -> int:
    return Shell(args.url, args.sender, args.token).run()


def cmd_train_nlu(args: argparse.Namespace) -> int:
    progress = _Progress()
    start = time.monotonic()
    out = Path(args.out)
    train_nlu(out, read_config(args.config), args.nlu, progress, lookup_files=True)
    progress.done(f"NLU model written to {out} ({time.monotonic() - start:.1f}s)")
    return 0


def cmd_test_nlu(args: argparse.Namespace) -> int:
    """Evaluate an NLU model: report.json, predictions.jsonl and report.html."""
    pipeline = NLUPipeline.load(args.model)
    report = evaluate_nlu(pipeline, load_nlu_data(args.nlu, lookup_files=True))
    paths = write_nlu_reports(report, args.out)
    for line in nlu_summary_lines(report):
        print(line)
    print(f"reports written to {paths['json'].parent}")
    return 0


def build_train_nlu_parser() -> argparse.ArgumentParser:
    """``dialogd train nlu``, apart so that ``dialogd train`` keeps its options."""
    parser = argparse.ArgumentParser(
        prog="dialogd train nlu", description="Train an NLU model only."
    )
    parser.add_argument(
        "--nlu", required=True, help="NLU training data (Rasa JSON or Markdown)"
    )
    parser.add_argument("--config", help="YAML with 'pipeline:' (and 'language:')")
    parser.add_argument("--out", required=True, help="NLU model directory to write")
    parser.set_defaults(func=cmd_train_nlu)
    return parser


def cmd_trainer(args: argparse.Namespace) -> int:
    return server.run_trainer(
        args.redis_url, args.key_prefix, args.log_file, args.model_dir
    )


def _policy_config(path: str) -> dict[str, Any] | None:
    return split_config(read_config(path))[1]


def _learning_curve(args: argparse.Namespace) -> int:
    domain = Domain.load(args.domain)
    names = [Path(c).stem for c in args.config or []]
    if len(set(names)) < len(names):
        names = list(args.config)
    configs = [
        (name, _policy_config(c)) for name, c in zip(names, args.config, strict=True)
    ] or [("default", None)]
    progress = _Progress()
    points = learning_curve(
        domain,
        read_stories(args.stories, domain),
        configs,
        args.percentages,
        args.runs,
        augmentation_factor=args.augmentation,
        progress=progress,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = curve_summary(points)
    (out / "learning_curve.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "learning_curve.svg").write_text(
        curve_svg(summary, f"Learning curve: {Path(*Path(args.stories).parts[-3:])}")
    )
    for name, rows in summary["summary"].items():
        for r in rows:
            print(
                f"{name}: {r['train_stories']} training stories, "
                f"{r['action_accuracy']:.3f} action accuracy on "
                f"{r['evaluated_on']} stories"
            )
    progress.done(f"learning curve written to {out}")
    return 0


def cmd_test_core(args: argparse.Namespace) -> int:
    """Evaluate a model on stories, or draw learning curves (``--percentages``)."""
    if args.percentages:
        if not args.domain:
            args.parser.error("--percentages needs --domain (and --config files)")
        return _learning_curve(args)
    if not args.model:
        args.parser.error("--model is required (or --percentages for curves)")
    core = CoreModel.load(args.model)
    nlu = NLUPipeline.load(args.nlu) if args.nlu else None
    evaluation = evaluate_stories(
        core, args.stories, interpreter=Interpreter(nlu), e2e=args.e2e
    )
    write_report(evaluation, args.out, f"Story evaluation: {args.stories}")
    m = evaluation.action_metrics
    print(
        f"actions: {m.correct}/{m.total} correct ({m.accuracy:.2%}); stories: "
        f"{len(evaluation.stories) - len(evaluation.failed_stories)}/"
        f"{len(evaluation.stories)} correct ({evaluation.story_accuracy:.2%}; "
        f"{evaluation.distinct} distinct)"
    )
    print(f"report written to {args.out}")
    return 0


def cmd_test_project(args: argparse.Namespace) -> int:
    """``dialogd test``: replay the project's test stories end to end through the
    trained model (NLU parses each text, Core predicts each action), as
    ``rasa test`` does; non-zero when a story fails."""
    model = newest_model(args.model)
    core = CoreModel.load(model / "core")
    nlu = NLUPipeline.load(model / "nlu") if (model / "nlu").is_dir() else None
    evaluation = evaluate_stories(
        core, args.stories, interpreter=Interpreter(nlu), e2e=True
    )
    write_report(evaluation, args.out, f"Test stories: {args.stories}")
    for story in evaluation.stories:
        steps = [s for s in story.steps if not isinstance(s, OtherEvent)]
        ok = sum(s.correct for s in steps)
        verdict = "passed" if story.correct else "FAILED"
        print(f"{verdict}: {story.name} ({ok}/{len(steps)} steps correct)")
        for step in steps:
            if not step.correct:
                print(f"    {_wrong_step(step)}")
    failed = len(evaluation.failed_stories)
    total = len(evaluation.stories)
    print(
        f"{total - failed} of {total} test stories passed, {failed} failed "
        f"(model {model}); reports in {args.out}"
    )
    return 1 if failed else 0


def _wrong_step(step: ActionResult | UserResult) -> str:
    if isinstance(step, ActionResult):
        return f"action {step.gold}: predicted {step.predicted} ({step.policy})"
    if step.gold == step.predicted:
        found = ", ".join(f"{k}={v}" for k, v in step.entities) or "none"
        gold = ", ".join(f"{k}={v}" for k, v in step.gold_entities or ()) or "none"
        return f"{step.text!r}: entities {found}, expected {gold}"
    return f"{step.text!r}: intent {step.gold}, predicted {step.predicted}"


def build_test_project_parser() -> argparse.ArgumentParser:
    """``dialogd test`` with no subcommand, apart as ``dialogd train nlu`` is."""
    parser = argparse.ArgumentParser(
        prog="dialogd test",
        description="Run the project's test stories through its newest model "
        "('dialogd test core|nlu' evaluate one model).",
    )
    parser.add_argument(
        "-m",
        "--model",
        default=MODELS_DIR,
        help="a model directory, or a folder of them (default: the newest in models/)",
    )
    parser.add_argument(
        "-s", "--stories", default="tests", help="test stories (default: tests)"
    )
    parser.add_argument(
        "--out", default="results", help="folder for the reports (default: results)"
    )
    parser.set_defaults(func=cmd_test_project)
    return parser


def add_test_core_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="Core model directory to evaluate")
    parser.add_argument("--stories", required=True, help="stories file or folder")
    parser.add_argument("--out", required=True, help="folder for the reports")
    parser.add_argument(
        "--e2e", action="store_true", help="end-to-end stories: run text through NLU"
    )
    parser.add_argument("--nlu", help="NLU model directory (with --e2e)")
    parser.add_argument(
        "--percentages",
        type=float,
        nargs="+",
        help="learning curve: train with these percentages of stories held out",
    )
    parser.add_argument("--runs", type=int, default=3, help="curve runs (default 3)")
    parser.add_argument("--config", nargs="+", help="curve: policy config files")
    parser.add_argument("--domain", help="curve: domain.yml")
    parser.add_argument(
        "--augmentation",
        type=int,
        default=20,
        help="curve: story augmentation factor (default 20)",
    )
    parser.set_defaults(func=cmd_test_core, parser=parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dialogd", description="Train and serve dialogue models over HTTP."
    )
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser(
        "train",
        help="train a Core model (and an NLU model); 'train nlu': NLU only",
    )
    train.add_argument(
        "-d", "--domain", help="domain file or folder (default: ./domain.yml)"
    )
    train.add_argument(
        "--data",
        help="data folder or file: stories, rules and NLU (default: ./data)",
    )
    train.add_argument("--stories", help="stories file or folder (default: --data)")
    train.add_argument("--nlu", help="NLU training data (JSON, Markdown or YAML)")
    train.add_argument(
        "-c",
        "--config",
        help="YAML with 'pipeline:' and/or 'policies:' (default: ./config.yml)",
    )
    train.add_argument(
        "--out",
        help="model directory to write (default: models/<timestamp>); with "
        "--fixed-model-name, the folder of models",
    )
    train.add_argument(
        "--fixed-model-name", help="name the model models/NAME, not by the time"
    )
    train.add_argument(
        "--augmentation",
        type=int,
        default=20,
        help="story augmentation factor (default 20)",
    )
    train.set_defaults(func=cmd_train, parser=train)

    init = sub.add_parser("init", help="write a small Rasa 3 project to start from")
    init.add_argument("path", nargs="?", help="the project folder (default: here)")
    init.add_argument(
        "--no-prompt",
        action="store_true",
        help="accepted as rasa init has it; dialogd init never asks",
    )
    init.add_argument("--init-dir", help="the project folder (rasa init's flag)")
    init.set_defaults(func=cmd_init)

    add_data_parsers(sub)

    serve = sub.add_parser("serve", help="serve a model with gunicorn")
    server.add_serve_arguments(serve)
    serve.set_defaults(func=cmd_serve)

    shell = sub.add_parser(
        "shell", help="talk to a served bot from the terminal (its REST channel)"
    )
    shell.add_argument(
        "--url",
        default="http://localhost:5005",
        help="the bot's server (default: http://localhost:5005)",
    )
    shell.add_argument(
        "--sender", help="the conversation id (default: a new random one)"
    )
    shell.add_argument(
        "--token",
        default=os.environ.get("DIALOGD_AUTH_TOKEN") or None,
        help="an auth token or JWT (default: $DIALOGD_AUTH_TOKEN)",
    )
    shell.set_defaults(func=cmd_shell)

    trainer = sub.add_parser("trainer", help="take training jobs from Redis")
    trainer.add_argument("--redis-url", required=True, help="the servers' Redis")
    trainer.add_argument("--key-prefix", default="", help="the servers' key prefix")
    trainer.add_argument("-o", "--log-file", help="log file (default: stderr)")
    trainer.add_argument("--model-dir", help="the servers' shared model folder")
    trainer.set_defaults(func=cmd_trainer)

    add_events_parser(sub)

    test = sub.add_parser(
        "test",
        help="run the project's test stories; 'test core|nlu': evaluate one model",
    )
    test_sub = test.add_subparsers(dest="target")
    add_test_core_arguments(
        test_sub.add_parser("core", help="evaluate a Core model on test stories")
    )
    test_nlu = test_sub.add_parser(
        "nlu", help="evaluate an NLU model on labelled NLU data"
    )
    test_nlu.add_argument("--model", required=True, help="NLU model directory")
    test_nlu.add_argument("--nlu", required=True, help="labelled NLU data")
    test_nlu.add_argument("--out", required=True, help="folder for the reports")
    test_nlu.set_defaults(func=cmd_test_nlu)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:2] == ["train", "nlu"]:
        args = build_train_nlu_parser().parse_args(argv[2:])
    elif argv[:1] == ["test"] and argv[1:2] not in (["core"], ["nlu"]):
        args = build_test_project_parser().parse_args(argv[1:])
    else:
        args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (DialogdError, StoreError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("aborted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
