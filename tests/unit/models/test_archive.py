"""Model archives: round trip, and every kind of malicious or broken archive refused
without a file written outside the folder it is unpacked into."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.data import RASA_EXAMPLES
from worker.archive import MAX_ARCHIVE_BYTES
from worker.archive import InvalidArchive
from worker.archive import pack
from worker.archive import unpack
from worker.domain import Domain
from worker.model import CoreModel
from worker.models import ModelSet
from worker.nlu import NLUPipeline
from worker.nlu import load_nlu_data

MOODBOT = RASA_EXAMPLES / "moodbot"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model")
    CoreModel.train(
        Domain.load(MOODBOT / "domain.yml"), MOODBOT / "data" / "stories.md"
    ).save(out / "core")
    NLUPipeline().fit(load_nlu_data(MOODBOT / "data" / "nlu.md")).save(out / "nlu")
    return out


@pytest.fixture(scope="module")
def archive(model_dir) -> bytes:
    return pack(model_dir, name="mood", fingerprint="fp1")


def tar_of(members: dict[str, bytes | tuple[str, str]]) -> bytes:
    """A tar.gz; a tuple value makes a link (kind, target)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            if isinstance(content, tuple):
                info.type = tarfile.SYMTYPE if content[0] == "sym" else tarfile.LNKTYPE
                info.linkname = content[1]
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def manifest(**overrides) -> bytes:
    return json.dumps(
        {"format": 1, "name": "m", "fingerprint": "f", "parts": ["nlu"], **overrides}
    ).encode()


def test_round_trip_serves_the_same_answers(archive, model_dir, tmp_path):
    base = ModelSet.from_dirs(model_dir / "core", model_dir / "nlu")
    loaded = ModelSet.from_archive(archive, base)
    assert (loaded.name, loaded.parts) == ("mood", ("core", "nlu"))
    for text in ["hello there", "I am sad", "/greet"]:
        assert loaded.interpreter.parse(text) == base.interpreter.parse(text)
    assert unpack(archive, tmp_path)["parts"] == ["core", "nlu"]


def test_an_nlu_only_archive_keeps_the_base_dialogue_model(model_dir, tmp_path):
    (tmp_path / "nlu").symlink_to(model_dir / "nlu")
    base = ModelSet.from_dirs(model_dir / "core", None)
    loaded = ModelSet.from_archive(pack(tmp_path, name="n", fingerprint="x"), base)
    assert loaded.core is base.core and loaded.has_nlu and loaded.parts == ("nlu",)


def _pickled_npz(real: bytes) -> bytes:
    """The real arrays, one of them replaced by a pickled object array."""
    with np.load(io.BytesIO(real)) as npz:
        arrays = {k: npz[k] for k in npz.files}
    first = sorted(arrays)[0]
    arrays[first] = np.array([{"evil": 1}], dtype=object)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _nlu_files(model_dir: Path) -> dict[str, bytes]:
    return {f"nlu/{p.name}": p.read_bytes() for p in (model_dir / "nlu").iterdir()}


@pytest.mark.parametrize(
    ("kind", "members", "reason"),
    [
        (
            "traversal",
            {"model.json": manifest(), "../../escape.json": b"{}"},
            "unexpected path",
        ),
        (
            "absolute",
            {"model.json": manifest(), "/tmp/escape.json": b"{}"},
            "unexpected path",
        ),
        (
            "nested",
            {"model.json": manifest(), "nlu/../../x.json": b"{}"},
            "unexpected path",
        ),
        (
            "symlink",
            {"model.json": manifest(), "nlu/arrays.npz": ("sym", "/etc/passwd")},
            "link",
        ),
        (
            "hardlink",
            {"model.json": manifest(), "nlu/arrays.npz": ("hard", "model.json")},
            "link",
        ),
        ("no manifest", {"nlu/metadata.json": b"{}"}, "no model.json"),
        (
            "wrong format",
            {"model.json": manifest(format=99), "nlu/a.json": b"{}"},
            "unsupported archive format",
        ),
        ("bad manifest", {"model.json": b"not json", "nlu/a.json": b"{}"}, "not JSON"),
        ("unknown part", {"model.json": manifest(parts=["plugins"])}, "parts"),
        (
            "python file",
            {"model.json": manifest(), "nlu/hook.py": b"import os"},
            "unexpected path",
        ),
    ],
)
def test_malicious_archives_are_refused(kind, members, reason, tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(InvalidArchive, match=reason):
        unpack(tar_of(members), dest)
    outside = {p for p in tmp_path.rglob("*") if not p.is_relative_to(dest)}
    assert outside == set()
    assert not Path("/tmp/escape.json").exists()


def test_pickled_arrays_are_refused(model_dir):
    files = _nlu_files(model_dir)
    files["nlu/arrays.npz"] = _pickled_npz(files["nlu/arrays.npz"])
    data = tar_of({"model.json": manifest(), **files})
    base = ModelSet.from_dirs(model_dir / "core", None)
    with pytest.raises(Exception, match=r"pickle|object"):
        ModelSet.from_archive(data, base)


def test_wrong_schema_is_refused(model_dir):
    files = _nlu_files(model_dir)
    meta = json.loads(files["nlu/metadata.json"])
    meta["format_version"] = 999
    files["nlu/metadata.json"] = json.dumps(meta).encode()
    base = ModelSet.from_dirs(model_dir / "core", None)
    with pytest.raises(Exception, match=r"version|format"):
        ModelSet.from_archive(tar_of({"model.json": manifest(), **files}), base)


def test_size_limits():
    with pytest.raises(InvalidArchive, match="over"):
        unpack(b"\0" * (MAX_ARCHIVE_BYTES + 1), "/nonexistent")
    with pytest.raises(InvalidArchive, match="not a readable"):
        unpack(b"garbage" * 100, "/nonexistent")


def test_a_decompression_bomb_stops_at_the_limit(tmp_path):
    data = tar_of({"model.json": manifest(), "nlu/big.npz": b"\0" * 1_000_000})
    assert len(data) < 5_000
    with pytest.raises(InvalidArchive, match="unpacks to over"):
        unpack(data, tmp_path, max_bytes=10_000)
    assert not (tmp_path / "nlu" / "big.npz").exists()


def test_temporary_folders_are_removed(archive, model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    base = ModelSet.from_dirs(model_dir / "core", None)
    ModelSet.from_archive(archive, base)
    with pytest.raises(InvalidArchive):
        ModelSet.from_archive(tar_of({"model.json": manifest(parts=["x"])}), base)
    assert list(tmp_path.iterdir()) == []


def test_the_fingerprint_is_the_contents_not_the_manifests(archive, model_dir):
    base = ModelSet.from_dirs(model_dir / "core", None)
    loaded = ModelSet.from_archive(archive, base)
    relabelled = pack(model_dir, name="other", fingerprint="anything I like")
    assert ModelSet.from_archive(relabelled, base).fingerprint == loaded.fingerprint
    assert loaded.fingerprint != "fp1"
    files = _nlu_files(model_dir)
    meta = json.loads(files["nlu/metadata.json"])
    files["nlu/metadata.json"] = json.dumps({**meta, "x": 1}).encode()
    changed = tar_of({"model.json": manifest(fingerprint="fp1"), **files})
    assert ModelSet.from_archive(changed, base).fingerprint != loaded.fingerprint


def _deflated_npz(name: str, shape: tuple[int, ...], declared: int | None = None):
    """An .npz whose one array is ``shape`` zeros, deflated (a few KB per GiB);
    ``declared`` makes its header claim another length than it holds."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header,
        {"descr": "<f4", "fortran_order": False, "shape": (declared or shape[0],)},
    )
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as npz,
        npz.open(f"{name}.npy", "w", force_zip64=True) as member,
    ):
        member.write(header.getvalue())
        zeros = bytes(1 << 20)
        for _ in range(shape[0] * 4 // len(zeros)):
            member.write(zeros)
    return buffer.getvalue()


def test_an_npz_bomb_is_refused_before_numpy_allocates_it(model_dir, tmp_path):
    """49 KB that inflate to 1 GiB in memory: refused by its declared size, the
    budget shared by every array of the model."""
    files = _nlu_files(model_dir)
    files["nlu/arrays.npz"] = _deflated_npz("x", (1 << 28,))  # 1 GiB of float32
    data = tar_of({"model.json": manifest(), **files})
    assert len(data) < 2_000_000
    with pytest.raises(InvalidArchive, match="inflate to over"):
        unpack(data, tmp_path / "a", max_bytes=64 << 20)


def test_an_array_header_that_lies_is_refused(model_dir, tmp_path):
    files = _nlu_files(model_dir)
    files["nlu/arrays.npz"] = _deflated_npz("x", (1 << 18,), declared=1 << 30)
    data = tar_of({"model.json": manifest(), **files})
    with pytest.raises(InvalidArchive, match="declares"):
        unpack(data, tmp_path / "a")


def test_a_gzip_bomb_is_stopped_while_inflating(tmp_path):
    """A tar whose member headers are small but whose stream goes on: counted as it
    is inflated, never trusted from the headers."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("model.json")
        info.size = 8 << 20
        tar.addfile(info, io.BytesIO(bytes(8 << 20)))
    data = gzip.compress(raw.getvalue(), compresslevel=9)
    assert len(data) < 100_000
    with pytest.raises(InvalidArchive, match="over"):
        unpack(data, tmp_path, max_bytes=1 << 20)
    assert not (tmp_path / "model.json").exists() or (
        (tmp_path / "model.json").stat().st_size <= 2 << 20
    )


def _reshaped(real: bytes) -> bytes:
    """The real arrays with the largest one cut in half: loads, cannot predict."""
    with np.load(io.BytesIO(real)) as npz:
        arrays = {k: npz[k] for k in npz.files}
    big = max(arrays, key=lambda k: arrays[k].size)
    arrays[big] = arrays[big][: max(1, arrays[big].shape[0] // 2)]
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@pytest.mark.parametrize("part", ["core", "nlu"])
def test_weights_of_the_wrong_shapes_are_refused_at_load(model_dir, part):
    """A model that loads but cannot answer is refused before it is registered."""
    files = {
        f"{p}/{f.name}": f.read_bytes()
        for p in ("core", "nlu")
        for f in (model_dir / p).iterdir()
    }
    npz = f"{part}/{'policies' if part == 'core' else 'arrays'}.npz"
    files[npz] = _reshaped(files[npz])
    data = tar_of({"model.json": manifest(parts=["core", "nlu"]), **files})
    base = ModelSet.from_dirs(model_dir / "core", None)
    with pytest.raises(InvalidArchive, match=r"does not run|corrupt|shape"):
        ModelSet.from_archive(data, base)


def test_yaml_in_a_model_has_no_aliases(model_dir, tmp_path):
    files = {f"core/{p.name}": p.read_bytes() for p in (model_dir / "core").iterdir()}
    files["core/domain.yml"] += b"\nx: &a [1, 2]\ny: *a\n"
    data = tar_of({"model.json": manifest(parts=["core"]), **files})
    with pytest.raises(InvalidArchive, match="aliases"):
        unpack(data, tmp_path)
