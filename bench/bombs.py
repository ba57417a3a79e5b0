"""What a hostile model archive costs the server that refuses it: peak RSS and peak
temporary disk of validating a gzip bomb and an npz bomb, as ``POST /model`` does
(``ModelSet.from_archive`` over the startup model), each in a fresh process.

    python -m bench.bombs [--max-model-size BYTES]

The archives: a tar.gz (~0.5 MB) of one 500 MiB member of zeros, the same with
250 MiB (under the default limit: the worst a gzip bomb can cost), and moodbot's
trained NLU model whose largest array in ``nlu/arrays.npz`` is replaced by a
deflated 1 GiB float32 array of zeros (the archive is ~1.3 MB).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np

MANIFEST = json.dumps(
    {"format": 1, "name": "bomb", "fingerprint": "f", "parts": ["nlu"]}
).encode()


def _tar(members: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), compresslevel=9)


def gzip_bomb(mib: int = 500) -> bytes:
    return _tar({"model.json": MANIFEST, "nlu/arrays.npz": bytes(mib << 20)})


def _peak_rss() -> int:
    """The process's peak RSS in bytes. NOTE: not ``ru_maxrss``, which a process
    inherits across exec from the parent it was forked from."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def npz_bomb(model: Path) -> bytes:
    """``model``'s NLU part, its largest array replaced by 1 GiB of deflated zeros."""
    with np.load(model / "nlu" / "arrays.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    largest = max(arrays, key=lambda k: arrays[k].nbytes)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
        for name, array in arrays.items():
            if name == largest:
                continue
            with out.open(f"{name}.npy", "w") as member:
                np.lib.format.write_array(member, array)
        with out.open(f"{largest}.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(
                member, {"descr": "<f4", "fortran_order": False, "shape": (1 << 28,)}
            )
            zeros = bytes(1 << 20)
            for _ in range(1024):
                member.write(zeros)
    members = {"model.json": MANIFEST, "nlu/arrays.npz": buffer.getvalue()}
    for path in (model / "nlu").iterdir():
        if path.name != "arrays.npz":
            members[f"nlu/{path.name}"] = path.read_bytes()
    return _tar(members)


def moodbot(folder: Path) -> Path:
    """moodbot trained (Memoization policy only) into ``folder``."""
    from worker.domain import Domain
    from worker.model import CoreModel
    from worker.nlu import NLUPipeline
    from worker.nlu import load_nlu_data

    bot = Path(__file__).resolve().parents[1] / "examples" / "moodbot"
    CoreModel.train(
        Domain.load(bot / "domain.yml"),
        bot / "data" / "stories.md",
        {"policies": [{"name": "MemoizationPolicy"}]},
    ).save(folder / "core")
    NLUPipeline().fit(load_nlu_data(bot / "data" / "nlu.md")).save(folder / "nlu")
    return folder


def _disk(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(os.path.join(root, name)).st_blocks * 512
    return total


def measure(path: str, model: str, max_bytes: int | None) -> None:
    """In this (fresh) process: validate the archive at ``path`` over the startup
    ``model``, as ``POST /model`` does, and print what it cost."""
    from worker.models import ModelSet

    data = Path(path).read_bytes()
    base = ModelSet.from_dirs(Path(model) / "core", Path(model) / "nlu")
    peak_disk = 0
    done = threading.Event()
    tmp = Path(tempfile.gettempdir())

    def watch() -> None:
        nonlocal peak_disk
        while not done.wait(0.002):
            peak_disk = max(peak_disk, _disk(tmp))

    watcher = threading.Thread(target=watch, daemon=True)
    before = _peak_rss()
    watcher.start()
    started = time.monotonic()
    kwargs = {} if max_bytes is None else {"max_bytes": max_bytes}
    try:
        ModelSet.from_archive(data, base, **kwargs)
        outcome = "ACCEPTED"
    except Exception as err:  # the refusal is the point
        outcome = f"refused: {type(err).__name__}: {str(err)[:90]}"
    seconds = time.monotonic() - started
    done.set()
    watcher.join()
    peak = _peak_rss()
    print(
        f"{Path(path).name}: {len(data) / 1024:.0f} KB; {outcome}; "
        f"peak RSS {peak / 2**20:.0f} MiB (+{(peak - before) / 2**20:.0f} MiB over "
        f"the process before it); peak temporary disk {peak_disk / 2**20:.1f} MiB; "
        f"{seconds:.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-model-size", type=int)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure, args.model, args.max_model_size)
        return
    with tempfile.TemporaryDirectory(prefix="bombs-") as folder:
        model = moodbot(Path(folder) / "model")
        bombs = {
            "gzip-bomb.tar.gz": gzip_bomb(),
            "gzip-bomb-under-the-limit.tar.gz": gzip_bomb(250),
            "npz-bomb.tar.gz": npz_bomb(model),
        }
        for name, data in bombs.items():
            path = Path(folder) / name
            path.write_bytes(data)
            scratch = Path(folder) / f"tmp-{name}"
            scratch.mkdir()
            command = [sys.executable, "-m", "bench.bombs", "--measure", str(path)]
            command += ["--model", str(model)]
            if args.max_model_size:
                command += ["--max-model-size", str(args.max_model_size)]
            env = {**os.environ, "TMPDIR": str(scratch)}
            subprocess.run(command, check=True, env=env)


if __name__ == "__main__":
    main()
