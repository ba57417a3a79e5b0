"""Model archives: a trained model (``core/`` and/or ``nlu/``) as one tar.gz.

A model is data. Reading an archive never runs code and never writes outside the
folder it is unpacked into: members are read one by one and written by our own
code under validated names (``tarfile.extract`` is never used), links and special
files are refused, and sizes are bounded before anything is decompressed further.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import time
import zlib
from pathlib import Path
from typing import Any

from worker.errors import ModelError
from worker.version import __version__

ARCHIVE_FORMAT = 1
MANIFEST = "model.json"
PARTS = ("core", "nlu")
MAX_ARCHIVE_BYTES = 256 * 1024 * 1024
MAX_UNPACKED_BYTES = 512 * 1024 * 1024
MAX_MEMBERS = 64
_MEMBER = re.compile(r"^(core|nlu)/[A-Za-z0-9_][A-Za-z0-9_.-]*\.(json|yml|npz)$")


class InvalidArchive(ModelError):
    """An uploaded archive that is not a model we can load; says why."""


def pack(
    model_dir: str | Path,
    *,
    name: str,
    fingerprint: str,
    extra: dict[str, Any] | None = None,
) -> bytes:
    """``model_dir/core`` and/or ``model_dir/nlu`` as an archive with a manifest."""
    root = Path(model_dir)
    parts = [p for p in PARTS if (root / p).is_dir()]
    if not parts:
        raise ModelError(f"{root} holds neither core/ nor nlu/")
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
        for part in parts:
            for path in sorted((root / part).iterdir()):
                member = f"{part}/{path.name}"
                if path.is_file() and _MEMBER.match(member):
                    _add(tar, member, path.read_bytes())
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def unpack(data: bytes, dest: str | Path) -> dict[str, Any]:
    """Check ``data`` and write its files under ``dest`` (a fresh, private folder
    the caller removes on failure); returns the manifest."""
    if len(data) > MAX_ARCHIVE_BYTES:
        raise InvalidArchive(f"the archive is over {MAX_ARCHIVE_BYTES} bytes")
    root = Path(dest)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            names = _write_members(tar, root)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise InvalidArchive(f"not a readable tar or tar.gz archive: {err}") from err
    if MANIFEST not in names:
        raise InvalidArchive(f"no {MANIFEST}: not a dialogd model archive")
    manifest = _manifest((root / MANIFEST).read_bytes())
    for name in names - {MANIFEST}:
        if name.split("/", 1)[0] not in manifest["parts"]:
            raise InvalidArchive(f"{name!r} belongs to no part the manifest lists")
    for part in manifest["parts"]:
        if not (root / part).is_dir():
            raise InvalidArchive(f"the manifest lists {part}/ but it has no files")
    return manifest


def _write_members(tar: tarfile.TarFile, root: Path) -> set[str]:
    names: set[str] = set()
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
        names.add(member.name)
        total += member.size
        if total > MAX_UNPACKED_BYTES:
            raise InvalidArchive(f"it unpacks to over {MAX_UNPACKED_BYTES} bytes")
        stream = tar.extractfile(member)
        content = stream.read(member.size + 1) if stream else b""
        if len(content) != member.size:
            raise InvalidArchive(f"{member.name!r} is truncated")
        target = root / member.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return names


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
