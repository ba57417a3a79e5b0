"""bench.data: the converters, the checks, the cache, and the download path through
a local HTTP server laid out as raw.githubusercontent.com (GitHub itself is never
reached from the tests)."""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from bench import data as bench_data
from bench.nlu.datasets import load_set
from tests.data import dataset


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(base URL, folder it serves): a stand-in for raw.githubusercontent.com."""
    root = tmp_path / "mirror"
    root.mkdir()
    handler = functools.partial(_Quiet, directory=str(root))
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}", root
        finally:
            server.shutdown()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


TINY = {
    "a.txt": b"1 hi\thello\n\n",
    "sub/b.txt": b"1 bye\tbye\n",
}


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> dict:
    """dialog_babi's entry of the manifest, pinned to two tiny files."""
    spec = {
        **bench_data.MANIFEST["dialog_babi"],
        "files": {name: _sha(data) for name, data in TINY.items()},
    }
    monkeypatch.setitem(bench_data.MANIFEST, "dialog_babi", spec)
    return spec


def _serve(root: Path, spec: dict, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        target = root / spec["repo"] / spec["commit"] / spec["remote_root"] / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def test_a_missing_set_says_how_to_fetch_it(tmp_path: Path) -> None:
    with pytest.raises(
        bench_data.DataMissing, match=r"python -m bench\.data fetch hwu64"
    ):
        bench_data.path("hwu64", tmp_path)
    with pytest.raises(ValueError, match="unknown dataset"):
        bench_data.path("imdb", tmp_path)


def test_the_cache_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DIALOGD_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert bench_data.data_dir() == tmp_path / "dialogd" / "data"
    monkeypatch.setenv("DIALOGD_DATA", str(tmp_path / "d"))
    assert bench_data.data_dir() == tmp_path / "d"


def test_download_checks_and_caches(tiny: dict, mirror, tmp_path: Path) -> None:
    base, served = mirror
    _serve(served, tiny, TINY)
    cache = tmp_path / "cache"
    assert (
        bench_data.main(
            ["fetch", "dialog_babi", "--mirror", base, "--data-dir", str(cache)]
        )
        == 0
    )
    folder = bench_data.path("dialog_babi", cache)
    assert folder == cache / "dialog_babi"
    assert (folder / "sub" / "b.txt").read_bytes() == TINY["sub/b.txt"]
    assert tiny["commit"] in (folder / "SOURCE.md").read_text()
    complete = json.loads((folder / bench_data.COMPLETE).read_text())
    assert complete["sha256"]["a.txt"] == _sha(TINY["a.txt"])
    assert sorted(p.name for p in cache.iterdir()) == ["dialog_babi"]


def test_a_changed_file_is_refused_and_the_cache_kept(
    tiny: dict, mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, served = mirror
    cache = tmp_path / "cache"
    _serve(served, tiny, TINY)
    bench_data.fetch(["dialog_babi"], cache, base=base, log=lambda _: None)
    _serve(served, tiny, {"sub/b.txt": b"1 bye\tsee you\n"})
    args = [
        "fetch",
        "dialog_babi",
        "--force",
        "--mirror",
        base,
        "--data-dir",
        str(cache),
    ]
    assert bench_data.main(args) == 1
    assert "sub/b.txt: sha256" in capsys.readouterr().err
    # The good copy is still there, and no half-written folder is left.
    assert (cache / "dialog_babi" / "sub" / "b.txt").read_bytes() == TINY["sub/b.txt"]
    assert sorted(p.name for p in cache.iterdir()) == ["dialog_babi"]


def test_a_missing_file_on_the_server_fails_the_fetch(
    tiny: dict, mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, served = mirror
    _serve(served, tiny, {"a.txt": TINY["a.txt"]})
    cache = tmp_path / "cache"
    assert (
        bench_data.main(
            ["fetch", "dialog_babi", "--mirror", base, "--data-dir", str(cache)]
        )
        == 1
    )
    assert "404" in capsys.readouterr().err
    assert not bench_data.available("dialog_babi", cache)


def test_from_a_local_copy_with_its_licence(tiny: dict, tmp_path: Path) -> None:
    copy = tmp_path / "copy" / "dialog_babi"
    for name, data in TINY.items():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_bytes(data)
    (copy / "LICENSE.txt").write_text("CC BY 3.0\n")
    cache = tmp_path / "cache"
    bench_data.fetch(["dialog_babi"], cache, from_dir=tmp_path / "copy", log=print)
    assert (cache / "dialog_babi" / "LICENSE.txt").read_text() == "CC BY 3.0\n"
    assert (cache / "dialog_babi" / "a.txt").read_bytes() == TINY["a.txt"]


def _examples(output: bytes) -> list[dict]:
    return json.loads(output)["rasa_nlu_data"]["common_examples"]


def test_clinc150_keeps_train_and_val_and_renames_oos() -> None:
    doc = {
        "train": [["wake me at 7", "alarm"]],
        "oos_train": [["how tall is a giraffe", "oos"]],
        "val": [["set an alarm", "alarm"]],
        "oos_val": [["sing", "oos"]],
        "test": [["never read", "alarm"]],
    }
    out = bench_data.convert_clinc150({"data_full.json": json.dumps(doc).encode()})
    assert sorted(out) == ["rasa/train.json", "rasa/val.json"]
    assert _examples(out["rasa/train.json"]) == [
        {"text": "wake me at 7", "intent": "alarm", "entities": []},
        {"text": "how tall is a giraffe", "intent": "out_of_scope", "entities": []},
    ]
    assert b"never read" not in out["rasa/val.json"]
    with pytest.raises(bench_data.DataCorrupt, match="not the expected JSON"):
        bench_data.checked_sha256(bench_data.MANIFEST["clinc150"], b"<html>")
    # The pinned sha256 covers only the kept keys: the test split may differ.
    spec = bench_data.MANIFEST["clinc150"]
    without_test = {k: v for k, v in doc.items() if k != "test"}
    assert bench_data.checked_sha256(spec, json.dumps(doc).encode()) == (
        bench_data.checked_sha256(spec, json.dumps(without_test, indent=4).encode())
    )


def test_hwu64_markup_becomes_offsets() -> None:
    assert bench_data.hwu64_example(
        "wake me up at [time : five am] [date :  this week ]", "alarm_set"
    ) == {
        "text": "wake me up at five am this week",
        "intent": "alarm_set",
        "entities": [
            {"start": 14, "end": 21, "value": "five am", "entity": "time"},
            {"start": 22, "end": 31, "value": "this week", "entity": "date"},
        ],
    }
    csv = (
        b"answerid;scenario;intent;answer_annotation;answer_from_anno;answer_from_user\n"
        b'1;alarm;set;"wake me at [time : six]";"wake me at six";"Wake me at six"\n'
    )
    out = bench_data.convert_hwu64({"trainset/alarm_set.csv": csv})
    (example,) = _examples(out["rasa/train.json"])
    assert example["text"] == "wake me at six" and example["intent"] == "alarm_set"


def test_snips_joins_surrogate_halves_trims_spans_and_holds_out_100() -> None:
    # An emoji stored as two UTF-8-encoded UTF-16 surrogates (CESU-8), as in
    # train_PlayMusic_full.json.
    emoji = "\U0001f355".encode("utf-16-le", "surrogatepass")
    halves = [
        emoji[0:2].decode("utf-16-le", "surrogatepass"),
        emoji[2:4].decode("utf-16-le", "surrogatepass"),
    ]
    cesu = "".join(halves).encode("utf-8", "surrogatepass")
    assert (
        bench_data.decode_snips(b'"M\xc3\xbasica ' + cesu + b'"')
        == '"Música \U0001f355"'
    )

    chunks = [{"text": "play "}, {"text": "in seven years ", "entity": "album"}]
    assert bench_data.snips_example(chunks, "PlayMusic")["entities"] == [
        {"start": 5, "end": 19, "value": "in seven years", "entity": "album"}
    ]

    items = [{"data": [{"text": f"play song {i}"}]} for i in range(130)]
    raw = {
        "PlayMusic/train_PlayMusic_full.json": json.dumps({"PlayMusic": items}).encode()
    }
    out = bench_data.convert_snips(raw)
    train, val = _examples(out["rasa/train.json"]), _examples(out["rasa/val.json"])
    assert (len(train), len(val)) == (30, 100)
    keys = sorted(
        range(130), key=lambda i: _sha(f"PlayMusic\t{i}\tplay song {i}".encode())
    )
    assert {ex["text"] for ex in val} == {f"play song {i}" for i in keys[:100]}


# -- the whole sets, from the cache (python -m bench.data fetch) --------------------


@pytest.mark.data("clinc150", "hwu64", "snips")
def test_the_benchmark_sets_load() -> None:
    sizes = {
        name: tuple(len(part.examples) for part in load_set(name))
        for name in ("clinc150", "hwu64", "snips")
    }
    assert sizes["clinc150"] == (15100, 3100)
    assert sizes["snips"] == (13084, 700)
    assert sum(sizes["hwu64"]) == 9960


@pytest.mark.data(*bench_data.SETS)
def test_the_cache_matches_the_pinned_files() -> None:
    for name in bench_data.SETS:
        folder = dataset(name)
        complete = json.loads((folder / bench_data.COMPLETE).read_text())
        for local, digest in complete["sha256"].items():
            assert _sha((folder / local).read_bytes()) == digest, local
        spec = bench_data.MANIFEST[name]
        for local, digest in {
            **spec["outputs"],
            **(spec["files"] if spec["keep_raw"] else {}),
        }.items():
            assert complete["sha256"][local] == digest, local


def _clinc150_full(folder: Path) -> bytes:
    """data_full.json's kept keys, rebuilt from the cached Rasa files."""
    doc = {}
    for split in ("train", "val"):
        examples = _examples((folder / "rasa" / f"{split}.json").read_bytes())
        doc[split] = [
            [e["text"], e["intent"]] for e in examples if e["intent"] != "out_of_scope"
        ]
        doc[f"oos_{split}"] = [
            [e["text"], "oos"] for e in examples if e["intent"] == "out_of_scope"
        ]
    return json.dumps(doc).encode()


@pytest.mark.data(*bench_data.SETS)
def test_every_set_downloads_through_a_mirror_of_the_real_files(
    mirror, tmp_path: Path
) -> None:
    """The real manifest's URLs and sha256 end to end, with the cached files served
    where GitHub would serve them (CLINC150's rebuilt without its test split)."""
    base, served = mirror
    for name in bench_data.SETS:
        spec = bench_data.MANIFEST[name]
        folder = dataset(name)
        if spec["keep_raw"]:
            files = {local: (folder / local).read_bytes() for local in spec["files"]}
        else:
            files = {"data_full.json": _clinc150_full(folder)}
        _serve(served, spec, files)
    cache = tmp_path / "cache"
    bench_data.fetch(bench_data.SETS, cache, base=base, log=lambda _: None)
    for name in bench_data.SETS:
        for local in bench_data.MANIFEST[name]["outputs"]:
            assert (cache / name / local).read_bytes() == (
                dataset(name) / local
            ).read_bytes()
