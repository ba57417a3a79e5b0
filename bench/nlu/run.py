"""NLU benchmark: train on a set's train split, evaluate on its val split.

    python -m bench.nlu.run --set {clinc150,hwu64,snips,all} [--encoder] --out DIR

For each set it reports training time, single-threaded parse latency (p50/p99,
measured in a fresh process with ``OPENBLAS_NUM_THREADS=1`` that loads the saved
model), load time, model size on disk and in memory, and the accuracy figures
(`worker.nlu.evaluation`). Writes ``DIR/results.json``, ``DIR/<set>/report.*``
and prints a table.

Which pipeline: ``--config FILE`` if given; else ``bench/nlu/<set>.yml`` (or with
``--encoder``, ``bench/nlu/<set>-encoder.yml`` then ``bench/nlu/encoder.yml``);
else the default pipeline. Only the train/val splits are read (`datasets`).

``--threshold-budget B`` replaces the ``FallbackClassifier`` threshold by one chosen
on a held-back 20% of train (`threshold`): the largest that costs at most ``B`` of
in-scope accuracy there. Val is never used to choose it.

``--vector-cache DIR`` keeps the encoder's outputs per text in ``DIR``
(`vector_cache`): a sweep encodes each text once.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import data as bench_data
from bench.nlu.datasets import SETS
from bench.nlu.datasets import load_set
from bench.nlu.threshold import fallback_step
from bench.nlu.threshold import held_back_threshold
from bench.nlu.vector_cache import cached_vectors
from worker.nlu import DEFAULT_PIPELINE_CONFIG
from worker.nlu import NLUPipeline
from worker.nlu.evaluation import evaluate
from worker.nlu.evaluation import write_reports
from worker.train import read_config as read_any_config
from worker.train import split_config

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def config_path(name: str, encoder: bool) -> Path | None:
    """The config the benchmark uses for a set (None: the default pipeline)."""
    candidates = (
        [HERE / f"{name}-encoder.yml", HERE / "encoder.yml"]
        if encoder
        else [HERE / f"{name}.yml"]
    )
    return next((path for path in candidates if path.is_file()), None)


def read_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return DEFAULT_PIPELINE_CONFIG
    return split_config(read_any_config(path))[0] or DEFAULT_PIPELINE_CONFIG


def _shown(path: Path | None) -> str:
    if path is None:
        return "default"
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def disk_size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def measure_latency(model: Path, texts: list[str]) -> dict[str, float]:
    """Load + parse timings from a fresh, single-threaded process."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    output = subprocess.run(
        [sys.executable, "-m", "bench.nlu.run", "--latency", str(model)],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=env,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def latency_child(model: str) -> None:
    """``--latency MODEL``: texts as a JSON list on stdin, timings as JSON out."""
    texts = json.loads(sys.stdin.read())
    start = time.perf_counter()
    pipeline = NLUPipeline.load(model)
    load = time.perf_counter() - start
    start = time.perf_counter()
    pipeline.parse(texts[0])
    first = time.perf_counter() - start
    times, cpu = [], []
    for text in texts:
        start, start_cpu = time.perf_counter(), time.thread_time()
        pipeline.parse(text)
        cpu.append(time.thread_time() - start_cpu)
        times.append(time.perf_counter() - start)
    ms = np.array(times) * 1000
    cpu_ms = np.array(cpu) * 1000
    ten = [c for c, text in zip(cpu_ms, texts, strict=True) if len(text.split()) == 10]
    print(
        json.dumps(
            {
                "load_seconds": round(load, 4),
                "first_parse_ms": round(first * 1000, 3),
                "parse_p50_ms": round(float(np.percentile(ms, 50)), 3),
                "parse_p99_ms": round(float(np.percentile(ms, 99)), 3),
                # CPU of the parsing thread: what a parse costs on a busy machine
                "parse_cpu_p50_ms": round(float(np.percentile(cpu_ms, 50)), 3),
                "parse_cpu_p50_10_words_ms": (
                    round(float(np.percentile(ten, 50)), 3) if ten else None
                ),
                "n_parses": len(times),
            }
        )
    )


def run_set(name: str, args: argparse.Namespace) -> dict[str, Any]:
    path = Path(args.config) if args.config else config_path(name, args.encoder)
    config = read_config(path)
    train, val = load_set(name)
    print(
        f"[{name}] train {len(train.examples)} / val {len(val.examples)}; config "
        f"{_shown(path)}",
        file=sys.stderr,
    )
    chosen = None
    if args.threshold_budget is not None and fallback_step(config) is not None:
        chosen = held_back_threshold(config, train, args.threshold_budget)
        config = json.loads(json.dumps(config))
        fallback_step(config)["threshold"] = chosen["threshold"]  # type: ignore[index]
        print(f"[{name}] threshold chosen on train: {chosen}", file=sys.stderr)
    out = Path(args.out) / name
    start = time.perf_counter()
    pipeline = NLUPipeline(config).fit(train)
    train_seconds = time.perf_counter() - start
    model_dir = pipeline.save(out / "model")
    report = evaluate(pipeline, val)
    write_reports(report, out)
    texts = [ex.text for ex in val.examples][: args.latency_texts]
    latency = measure_latency(model_dir, texts)
    encoder_bytes = sum(
        getattr(getattr(c, "encoder", None), "nbytes", 0) for _, c in pipeline.steps
    )
    entities = report["entities"]
    oos = report["out_of_scope"]
    return {
        "set": name,
        "config": _shown(path),
        "n_train": len(train.examples),
        "n_val": len(val.examples),
        "train_seconds": round(train_seconds, 2),
        **latency,
        "disk_bytes": disk_size(model_dir),
        "memory_bytes": pipeline.nbytes() - encoder_bytes,
        "encoder_weight_bytes": encoder_bytes,
        "intent_accuracy": report["intent"]["accuracy"],
        "intent_macro_f1": report["intent"]["macro_f1"],
        "threshold_choice": chosen,
        "in_scope_accuracy": oos["in_scope_accuracy"] if oos else None,
        "out_of_scope_recall": oos["out_of_scope_recall"] if oos else None,
        "entity_f1_exact": entities["exact"]["f1"]
        if entities["exact"]["n_gold"]
        else None,
        "entity_f1_overlap": (
            entities["overlap"]["f1"] if entities["overlap"]["n_gold"] else None
        ),
    }


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'set':9} {'intent':>7} {'in-sc':>7} {'oos-r':>6} {'ent-ex':>7} "
        f"{'ent-ov':>7} {'train s':>8} {'p50 ms':>7} {'p99 ms':>7} {'load s':>7} "
        f"{'disk MB':>8} {'mem MB':>7}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['set']:9} {_fmt(r['intent_accuracy'], '.4f'):>7} "
            f"{_fmt(r['in_scope_accuracy'], '.4f'):>7} "
            f"{_fmt(r['out_of_scope_recall'], '.3f'):>6} "
            f"{_fmt(r['entity_f1_exact'], '.4f'):>7} "
            f"{_fmt(r['entity_f1_overlap'], '.4f'):>7} "
            f"{r['train_seconds']:8.1f} {r['parse_p50_ms']:7.3f} "
            f"{r['parse_p99_ms']:7.3f} {r['load_seconds']:7.3f} "
            f"{r['disk_bytes'] / 1e6:8.2f} {r['memory_bytes'] / 1e6:7.2f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.nlu.run")
    parser.add_argument("--set", choices=[*SETS, "all"], default="all")
    parser.add_argument("--encoder", action="store_true", help="encoder pipeline")
    parser.add_argument("--config", help="pipeline config (overrides bench/nlu)")
    parser.add_argument("--out", default="bench/results/nlu", help="output folder")
    parser.add_argument(
        "--latency-texts", type=int, default=1000, help="val texts timed (1000)"
    )
    parser.add_argument(
        "--threshold-budget",
        type=float,
        help="choose the fallback threshold on held-back train: the in-scope "
        "accuracy it may cost there (e.g. 0.005)",
    )
    parser.add_argument(
        "--vector-cache",
        help="folder keeping the encoder's vectors of each text across runs "
        "(bench/nlu/vector_cache.py)",
    )
    parser.add_argument("--latency", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.latency:
        latency_child(args.latency)
        return 0
    names = SETS if args.set == "all" else (args.set,)
    try:
        for name in names:
            bench_data.path(name)
    except bench_data.DataMissing as exc:
        parser.error(str(exc))
    rows = []
    with cached_vectors(Path(args.vector_cache) if args.vector_cache else None):
        for name in names:
            rows.append(run_set(name, args))
            print_table(rows[-1:])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {
        "encoder": args.encoder,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "cpus": os.cpu_count(),
        "results": rows,
    }
    (out / "results.json").write_text(json.dumps(results, indent=1), "utf-8")
    print()
    print_table(rows)
    print(f"\nwritten to {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
