"""Model archives: a trained model (``core/`` and/or ``nlu/``) as one tar.gz.

A model is data. Reading an archive never runs code and never writes outside the
folder it is unpacked into: members are read one by one and written by our own
code under validated names (``tarfile.extract`` is never used), links and special
files are refused.

A model is also a cost: 49 KB of deflated zeros inflate to 1 GiB. What an archive
costs is measured while it is read, never taken from what it declares: the gzip
stream is read through a running count of inflated bytes, members are copied to
disk in chunks, and each ``.npz`` (itself a zip) is checked member by member, its
declared and inflated sizes and each array's header, before numpy allocates it.
All of it is bounded by ``max_bytes`` (the server's ``--max-model-size``).

The archive's fingerprint is computed here from its content (a SHA-256 over every
member but the manifest), not taken from the manifest's claim.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
import time
import zipfile
import zlib
from pathlib import Path
from typing import IO
from typing import Any

import numpy as np

from worker.errors import ModelError
from worker.errors import TrainingDataError
from worker.version import __version__
from worker.yamlfile import load_client_yaml

ARCHIVE_FORMAT = 1
MANIFEST = "model.json"
PARTS = ("core", "nlu")
MAX_ARCHIVE_BYTES = 256 * 1024 * 1024
#: default bound on a model's unpacked files, and apart on its arrays in memory
MAX_MODEL_BYTES = 256 * 1024 * 1024
MAX_MEMBERS = 64
#: tar headers, padding and end blocks on top of the members' content
_TAR_OVERHEAD = (MAX_MEMBERS + 4) * 2048 + 20 * 512
_CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_MEMBER = re.compile(r"^(core|nlu)/[A-Za-z0-9_][A-Za-z0-9_.-]*\.(json|yml|npz)$")


class InvalidArchive(ModelError):
    """An uploaded archive that is not a model we can load; says why."""


def pack(
    model_dir: str | Path,
    *,
    name: str,
    fingerprint: str | None = None,
    extra: dict[str, Any] | None = None,
) -> bytes:
    """``model_dir/core`` and/or ``model_dir/nlu`` as an archive with a manifest;
    its ``fingerprint`` is the content's hash unless given (a label then)."""
    root = Path(model_dir)
    parts = [p for p in PARTS if (root / p).is_dir()]
    if not parts:
        raise ModelError(f"{root} holds neither core/ nor nlu/")
    members = {
        f"{part}/{path.name}": path.read_bytes()
        for part in parts
        for path in sorted((root / part).iterdir())
        if path.is_file() and _MEMBER.match(f"{part}/{path.name}")
    }
    if fingerprint is None:
        fingerprint = content_fingerprint(
            {k: hashlib.sha256(v).hexdigest() for k, v in members.items()}
        )
    manifest = {
        "format": ARCHIVE_FORMAT,
        "dialogd": __version__,
        "name": name,
        "fingerprint": fingerprint,
        "parts": parts,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **(extra or {}),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        _add(tar, MANIFEST, json.dumps(manifest, indent=2).encode())
        for member, content in members.items():
            _add(tar, member, content)
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


class _Inflated(io.RawIOBase):
    """The inflated stream, refused once it has given more than ``limit`` bytes."""

    def __init__(self, stream: IO[bytes], limit: int):
        self._stream = stream
        self._left = limit
        self.limit = limit

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        # NOTE: never all at once: a bomb is stopped after one chunk too many.
        data = self._stream.read(_CHUNK if size is None or size < 0 else size)
        self._left -= len(data)
        if self._left < 0:
            raise InvalidArchive(f"it inflates to over {self.limit} bytes")
        return data


def unpack(
    data: bytes, dest: str | Path, *, max_bytes: int = MAX_MODEL_BYTES
) -> dict[str, Any]:
    """Check ``data`` and write its files under ``dest`` (a fresh, private folder
    the caller removes on failure); returns the manifest, whose ``fingerprint``
    is the content's hash (the manifest's own claim is kept as ``label``)."""
    if len(data) > MAX_ARCHIVE_BYTES:
        raise InvalidArchive(f"the archive is over {MAX_ARCHIVE_BYTES} bytes")
    root = Path(dest)
    raw: IO[bytes] = io.BytesIO(data)
    if data.startswith(_GZIP_MAGIC):
        raw = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
    try:
        stream = _Inflated(raw, max_bytes + _TAR_OVERHEAD)
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            digests = _write_members(tar, root, max_bytes)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise InvalidArchive(f"not a readable tar or tar.gz archive: {err}") from err
    names = set(digests)
    budget = max_bytes
    for name in sorted(names):
        if name.endswith(".npz"):
            budget -= check_npz(root / name, budget, name)
        elif name.endswith(".yml"):
            _check_yaml(root / name, name)
    if MANIFEST not in names:
        raise InvalidArchive(f"no {MANIFEST}: not a dialogd model archive")
    manifest = _manifest((root / MANIFEST).read_bytes())
    for name in names - {MANIFEST}:
        if name.split("/", 1)[0] not in manifest["parts"]:
            raise InvalidArchive(f"{name!r} belongs to no part the manifest lists")
    for part in manifest["parts"]:
        if not (root / part).is_dir():
            raise InvalidArchive(f"the manifest lists {part}/ but it has no files")
    manifest["label"] = manifest["fingerprint"]
    manifest["fingerprint"] = content_fingerprint(
        {k: v for k, v in digests.items() if k != MANIFEST}
    )
    return manifest


def content_fingerprint(digests: dict[str, str]) -> str:
    """One hash of the members (name -> SHA-256 of its bytes), order-independent."""
    canonical = "".join(f"{name}\0{digests[name]}\n" for name in sorted(digests))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def check_npz(path: Path, budget: int, label: str) -> int:
    """The bytes ``np.load`` would allocate for ``path``, checked before it does.

    Each member's declared size is bounded (zipfile never inflates past it), and
    each array's header must describe exactly the bytes that follow it, so numpy
    never allocates more than the member holds. Object arrays (pickles) are
    refused here already. Raises InvalidArchive past ``budget`` in total.
    """
    total = 0
    try:
        with zipfile.ZipFile(path) as npz:
            for info in npz.infolist():
                total += info.file_size
                if total > budget:
                    raise InvalidArchive(
                        f"{label}: its arrays inflate to over {budget} bytes"
                    )
                with npz.open(info) as member:
                    _check_array_header(member, info, label)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise InvalidArchive(f"{label} is not a readable .npz: {err}") from err
    return total


def _check_yaml(path: Path, label: str) -> None:
    """A model's YAML is a client's: no anchors or aliases (see worker.yamlfile)."""
    try:
        load_client_yaml(path.read_text(encoding="utf-8"), label)
    except UnicodeDecodeError as err:
        raise InvalidArchive(f"{label} is not UTF-8") from err
    except TrainingDataError as err:
        raise InvalidArchive(str(err)) from err


def _check_array_header(member: IO[bytes], info: zipfile.ZipInfo, label: str) -> None:
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(member)
    else:
        raise InvalidArchive(f"{label}: {info.filename} has npy version {version}")
    if dtype.hasobject:
        raise InvalidArchive(f"{label}: {info.filename} holds objects (a pickle)")
    header = member.tell()  # the array's bytes start here
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if header + nbytes != info.file_size:
        raise InvalidArchive(
            f"{label}: {info.filename} declares {nbytes} bytes of {shape} "
            f"{dtype} but holds {info.file_size - header}"
        )


def _write_members(tar: tarfile.TarFile, root: Path, max_bytes: int) -> dict[str, str]:
    """Each member written under ``root``; their names and SHA-256 digests."""
    names: dict[str, str] = {}
    total = 0
    for count, member in enumerate(tar, start=1):
        if count > MAX_MEMBERS:
            raise InvalidArchive(f"more than {MAX_MEMBERS} files")
        if member.isdir():
            continue
        if not member.isfile():
            raise InvalidArchive(f"{member.name!r} is a link or special file")
        if member.name != MANIFEST and not _MEMBER.match(member.name):
            raise InvalidArchive(
                f"unexpected path {member.name!r}: only model.json and core/ or "
                "nlu/ .json, .yml and .npz files may be in a model"
            )
        if member.name in names:
            raise InvalidArchive(f"{member.name!r} appears twice")
        total += member.size
        if total > max_bytes:
            raise InvalidArchive(f"it unpacks to over {max_bytes} bytes")
        target = root / member.name
        target.parent.mkdir(parents=True, exist_ok=True)
        names[member.name] = _copy(tar.extractfile(member), target, member)
    return names


def _copy(stream: IO[bytes] | None, target: Path, member: tarfile.TarInfo) -> str:
    """``member`` copied to ``target`` a chunk at a time; its SHA-256."""
    digest = hashlib.sha256()
    written = 0
    with open(target, "wb") as out:
        while stream is not None and (chunk := stream.read(_CHUNK)):
            written += len(chunk)
            digest.update(chunk)
            out.write(chunk)
    if written != member.size:
        raise InvalidArchive(f"{member.name!r} is truncated")
    return digest.hexdigest()


def _manifest(raw: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidArchive(f"{MANIFEST} is not JSON: {err}") from err
    if not isinstance(manifest, dict) or manifest.get("format") != ARCHIVE_FORMAT:
        raise InvalidArchive(
            f"{MANIFEST}: unsupported archive format {manifest.get('format')!r} "
            f"(this dialogd reads format {ARCHIVE_FORMAT})"
            if isinstance(manifest, dict)
            else f"{MANIFEST} must be an object"
        )
    parts = manifest.get("parts")
    if (
        not isinstance(parts, list)
        or not parts
        or any(p not in PARTS for p in parts)
        or len(set(parts)) != len(parts)
    ):
        raise InvalidArchive(f"{MANIFEST}: 'parts' must list core and/or nlu")
    for key in ("name", "fingerprint"):
        if not isinstance(manifest.get(key), str) or not manifest[key]:
            raise InvalidArchive(f"{MANIFEST}: '{key}' must be a non-empty string")
    return manifest
