"""The public datasets of the benchmarks, fetched once into a local cache.

    python -m bench.data fetch [SET ...] [--from DIR] [--data-dir DIR] [--force]
    python -m bench.data status [--data-dir DIR]

``fetch`` downloads CLINC150, HWU64, SNIPS and dialog bAbI from their public GitHub
repositories at the commits pinned in ``bench/datasets.json``, checks the sha256 of
every file, converts the NLU sets to Rasa NLU JSON (``<set>/rasa/train.json`` and
``val.json``, checked against their sha256 too) and writes them into the cache:
``--data-dir``, else ``$DIALOGD_DATA``, else ``~/.cache/dialogd/data``. ``--from
DIR`` reads a local copy laid out as ``DIR/<set>/...`` (the layout of the project's
data folder) instead of the network, with the same checks.

Only training and validation data are fetched: the sets' test splits are never
downloaded (CLINC150's, which shares a file with its train split, is dropped before
anything is written), so no benchmark can tune on them by accident.

Every benchmark finds its data with ``path(name)``, which says how to fetch it when
it is missing.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import re
import shutil
import sys
import urllib.request
from collections.abc import Callable
from collections.abc import Iterable
from pathlib import Path
from typing import Any

MANIFEST: dict[str, dict[str, Any]] = json.loads(
    Path(__file__).with_name("datasets.json").read_text(encoding="utf-8")
)
SETS = tuple(MANIFEST)
RAW_URL = "https://raw.githubusercontent.com"
#: written last into a set's folder: a folder without it is not a finished fetch
COMPLETE = "COMPLETE.json"
#: the largest upstream file is under 5 MB; a response above this is not the file
MAX_DOWNLOAD = 64 * 1024 * 1024
TIMEOUT = 60.0

#: (set name, path inside the set's folder) -> the file's bytes
Source = Callable[[str, str], bytes]


class DataMissing(LookupError):
    """A dataset is not in the cache: the message says how to fetch it."""


class DataCorrupt(ValueError):
    """A file does not have the sha256 the manifest pins."""


def data_dir() -> Path:
    """The cache: ``$DIALOGD_DATA``, else ``$XDG_CACHE_HOME/dialogd/data``."""
    if os.environ.get("DIALOGD_DATA"):
        return Path(os.environ["DIALOGD_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "dialogd" / "data"


def available(name: str, root: Path | None = None) -> bool:
    _check_name(name)
    return ((root or data_dir()) / name / COMPLETE).is_file()


def path(name: str, root: Path | None = None) -> Path:
    """The folder of a fetched dataset, or :class:`DataMissing`."""
    root = root or data_dir()
    if not available(name, root):
        raise DataMissing(
            f"dataset {name!r} is not in {root}: run `python -m bench.data fetch "
            f"{name}` (or `--from DIR` with a local copy; `--data-dir` or "
            "DIALOGD_DATA choose the cache)"
        )
    return root / name


def _check_name(name: str) -> None:
    if name not in MANIFEST:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(SETS)}")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def checked_sha256(spec: dict[str, Any], data: bytes) -> str:
    """The sha256 the manifest pins a raw file by. With ``json_keys`` it is that of
    those keys only (compact JSON): CLINC150's upstream file also holds its test
    split, which the local copies leave out."""
    if "json_keys" not in spec:
        return sha256(data)
    try:
        doc = json.loads(data)
        kept = {key: doc[key] for key in spec["json_keys"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise DataCorrupt(f"not the expected JSON: {exc!r}") from exc
    return sha256(json.dumps(kept, ensure_ascii=False, separators=(",", ":")).encode())


# -- converters: raw files -> the files the benchmarks read ---------------------


def _rasa(examples: list[dict[str, Any]]) -> bytes:
    doc = {"rasa_nlu_data": {"common_examples": examples}}
    return (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode()


def _example(text: str, intent: str, entities: Iterable[dict] = ()) -> dict[str, Any]:
    return {"text": text, "intent": intent, "entities": list(entities)}


def convert_clinc150(raw: dict[str, bytes]) -> dict[str, bytes]:
    """The Full variant; ``oos`` becomes the intent ``out_of_scope``."""
    doc = json.loads(raw["data_full.json"])

    def examples(*keys: str) -> list[dict[str, Any]]:
        return [
            _example(text, "out_of_scope" if label == "oos" else label)
            for key in keys
            for text, label in doc[key]
        ]

    return {
        "rasa/train.json": _rasa(examples("train", "oos_train")),
        "rasa/val.json": _rasa(examples("val", "oos_val")),
    }


_MARKUP = re.compile(r"\[\s*([^\[\]:]+?)\s*:\s*([^\[\]]*?)\s*\]")


def hwu64_example(annotation: str, intent: str) -> dict[str, Any]:
    """``[type : value]`` markup -> text and character-offset entities."""
    text, entities, pos = "", [], 0
    for match in _MARKUP.finditer(annotation):
        text += annotation[pos : match.start()]
        value = match.group(2)
        entities.append(
            {
                "start": len(text),
                "end": len(text) + len(value),
                "value": value,
                "entity": match.group(1),
            }
        )
        text += value
        pos = match.end()
    return _example(text + annotation[pos:], intent, entities)


def convert_hwu64(raw: dict[str, bytes]) -> dict[str, bytes]:
    """All of fold 1's trainset (no val file: the bench carves one out)."""
    examples = []
    for name in sorted(raw):
        rows = csv.DictReader(io.StringIO(raw[name].decode("utf-8")), delimiter=";")
        for row in rows:
            intent = f"{row['scenario']}_{row['intent']}"
            examples.append(hwu64_example(row["answer_annotation"], intent))
    return {"rasa/train.json": _rasa(examples)}


def decode_snips(data: bytes) -> str:
    """UTF-8, where one file stores an emoji as an encoded surrogate pair (CESU-8):
    decode the halves, then join them through UTF-16."""
    text = data.decode("utf-8", "surrogatepass")
    return text.encode("utf-16", "surrogatepass").decode("utf-16")


def snips_example(chunks: list[dict[str, str]], intent: str) -> dict[str, Any]:
    """The chunks' texts joined; a chunk with ``entity`` is a span, trimmed of the
    whitespace around it."""
    text, entities = "", []
    for chunk in chunks:
        start = len(text)
        text += chunk["text"]
        if "entity" in chunk:
            value = chunk["text"]
            begin = start + len(value) - len(value.lstrip())
            end = start + len(value.rstrip())
            entities.append(
                {
                    "start": begin,
                    "end": end,
                    "value": text[begin:end],
                    "entity": chunk["entity"],
                }
            )
    return _example(text, intent, entities)


def convert_snips(raw: dict[str, bytes]) -> dict[str, bytes]:
    """Per intent, the 100 examples with the smallest ``sha256("<Intent>\\t<index>\\t
    <text>")`` are the val split (a fixed carve-out of the size Goo et al. used)."""
    train: list[dict[str, Any]] = []
    val: list[dict[str, Any]] = []
    for name in sorted(raw):
        intent = name.split("/")[0]
        items = json.loads(decode_snips(raw[name]))[intent]
        examples = [snips_example(item["data"], intent) for item in items]
        keys = [
            sha256(f"{intent}\t{i}\t{ex['text']}".encode())
            for i, ex in enumerate(examples)
        ]
        held = set(sorted(range(len(examples)), key=keys.__getitem__)[:100])
        for i, example in enumerate(examples):
            (val if i in held else train).append(example)
    return {"rasa/train.json": _rasa(train), "rasa/val.json": _rasa(val)}


CONVERTERS: dict[str, Callable[[dict[str, bytes]], dict[str, bytes]]] = {
    "clinc150": convert_clinc150,
    "hwu64": convert_hwu64,
    "snips": convert_snips,
    "dialog_babi": lambda raw: {},  # the bench reads the original files
}


# -- sources: the network, or a local copy --------------------------------------


def url(name: str, local: str, base: str = RAW_URL) -> str:
    spec = MANIFEST[name]
    return f"{base}/{spec['repo']}/{spec['commit']}/{spec['remote_root']}/{local}"


def download(base: str = RAW_URL) -> Source:
    """Files from GitHub at the pinned commits (``base``: a mirror of its layout)."""

    def get(name: str, local: str) -> bytes:
        address = url(name, local, base)
        request = urllib.request.Request(address, headers={"User-Agent": "dialogd"})
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            data = response.read(MAX_DOWNLOAD + 1)
        if len(data) > MAX_DOWNLOAD:
            raise DataCorrupt(f"{address}: larger than {MAX_DOWNLOAD} bytes")
        return data

    return get


def local_copy(folder: Path) -> Source:
    """Files from ``folder/<set>/<path>``."""

    def get(name: str, local: str) -> bytes:
        return (folder / name / local).read_bytes()

    return get


# -- fetching --------------------------------------------------------------------


def _source_note(name: str) -> str:
    spec = MANIFEST[name]
    return (
        f"# {spec['title']}\n\n"
        f"- Source: https://github.com/{spec['repo']} at commit `{spec['commit']}`, "
        f"folder `{spec['remote_root']}/`\n"
        f"- Licence (as stated by the source): {spec['licence']}\n"
        f"- Cite: {spec['cite']}\n"
        "- Fetched and converted by `python -m bench.data fetch` (dialogd); the "
        "sha256 of every file is pinned in `bench/datasets.json`.\n"
    )


def fetch_one(name: str, root: Path, source: Source, licence_from: Path | None) -> Path:
    """Get, check, convert and check one set; the folder appears only when whole."""
    _check_name(name)
    spec = MANIFEST[name]
    raw: dict[str, bytes] = {}
    for local, expected in spec["files"].items():
        data = source(name, local)
        try:
            got = checked_sha256(spec, data)
        except DataCorrupt as exc:
            raise DataCorrupt(f"{name}/{local}: {exc}") from exc
        if got != expected:
            raise DataCorrupt(
                f"{name}/{local}: sha256 {got}, expected {expected} (pinned in "
                "bench/datasets.json): not the file of the pinned commit"
            )
        raw[local] = data
    outputs = CONVERTERS[name](raw)
    for local, expected in spec["outputs"].items():
        got = sha256(outputs.get(local, b""))
        if got != expected:
            raise DataCorrupt(
                f"{name}/{local}: converted to sha256 {got}, not {expected}"
            )
    files = {**(raw if spec["keep_raw"] else {}), **outputs}
    files["SOURCE.md"] = _source_note(name).encode()
    if licence_from is not None:
        for licence in sorted(licence_from.glob("LICENSE*")):
            files[licence.name] = licence.read_bytes()

    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".{name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    for local, data in files.items():
        target = staging / local
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    complete = {
        "source": f"{spec['repo']}@{spec['commit']}",
        "sha256": {local: sha256(data) for local, data in sorted(files.items())},
    }
    (staging / COMPLETE).write_text(json.dumps(complete, indent=1) + "\n")
    final = root / name
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)
    return final


def fetch(
    names: Iterable[str],
    root: Path,
    *,
    from_dir: Path | None = None,
    base: str = RAW_URL,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> list[Path]:
    source = local_copy(from_dir) if from_dir is not None else download(base)
    done = []
    for name in names:
        if available(name, root) and not force:
            log(f"{name}: already in {root / name}")
        else:
            origin = from_dir / name if from_dir else url(name, "", base)
            log(f"{name}: fetching from {origin}")
            licences = from_dir / name if from_dir is not None else None
            fetch_one(name, root, source, licences)
            log(f"{name}: checked and written to {root / name}")
        done.append(root / name)
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.data",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    get = commands.add_parser("fetch", help="download (or copy), check and convert")
    get.add_argument("sets", nargs="*", metavar="SET", help=f"default: {SETS}")
    get.add_argument("--from", dest="from_dir", type=Path, help="a local copy")
    get.add_argument("--force", action="store_true", help="fetch again")
    get.add_argument(
        "--mirror", default=RAW_URL, help="a server laid out as raw.githubusercontent"
    )
    status = commands.add_parser("status", help="which sets are in the cache")
    for command in (get, status):
        command.add_argument("--data-dir", type=Path, help=f"default: {data_dir()}")
    args = parser.parse_args(argv)
    root = args.data_dir or data_dir()
    if args.command == "status":
        for name in SETS:
            print(f"{name}: {root / name if available(name, root) else 'missing'}")
        return 0
    unknown = [name for name in args.sets if name not in MANIFEST]
    if unknown:
        parser.error(f"unknown set(s) {', '.join(unknown)}; choose from {SETS}")
    if args.from_dir is not None and not args.from_dir.is_dir():
        parser.error(f"--from {args.from_dir}: no such folder")
    try:
        fetch(
            args.sets or SETS,
            root,
            from_dir=args.from_dir,
            base=args.mirror,
            force=args.force,
        )
    except (DataCorrupt, OSError) as exc:
        print(f"bench.data: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
