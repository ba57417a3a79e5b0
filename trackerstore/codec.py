"""msgpack encoding of event records and snapshots.

Every record is the msgpack array ``[format_version, payload]``, so a format change
can be read side by side with old data instead of being misread.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgpack

EVENT_FORMAT = 1
SNAPSHOT_FORMAT = 1


class CodecError(ValueError):
    """Bytes that are not a record this version of the code can read."""


def _reject_ext(code: int, data: bytes) -> Any:
    # NOTE: we never write ext types; meeting one means foreign or damaged data.
    raise CodecError(f"unexpected msgpack ext type {code}")


def _pack(version: int, payload: Mapping[str, Any]) -> bytes:
    # PERF: use_bin_type keeps str and bytes apart without a per-value tag.
    return msgpack.packb([version, dict(payload)], use_bin_type=True)


def _unpack(data: bytes, version: int) -> dict[str, Any]:
    try:
        record = msgpack.unpackb(data, raw=False, ext_hook=_reject_ext)
    except CodecError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise CodecError(f"not msgpack: {exc}") from exc
    if not isinstance(record, list) or len(record) != 2:
        raise CodecError("not a [version, payload] record")
    found, payload = record
    if isinstance(found, bool) or found != version:
        raise CodecError(f"unknown record format {found!r}")
    if not isinstance(payload, dict):
        raise CodecError(f"payload is a {type(payload).__name__}, not a map")
    return payload


def encode_event(event: Mapping[str, Any]) -> bytes:
    """One event record for the log."""
    return _pack(EVENT_FORMAT, event)


def decode_event(data: bytes) -> dict[str, Any]:
    """The event dict of a log record; raises ``CodecError``."""
    return _unpack(data, EVENT_FORMAT)


def encode_snapshot(snapshot: Mapping[str, Any]) -> bytes:
    """The snapshot record of a conversation."""
    return _pack(SNAPSHOT_FORMAT, snapshot)


def decode_snapshot(data: bytes) -> dict[str, Any]:
    """The snapshot dict of a snapshot record; raises ``CodecError``."""
    return _unpack(data, SNAPSHOT_FORMAT)
