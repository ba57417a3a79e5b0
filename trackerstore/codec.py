"""msgpack encoding of event records and snapshots.

Every record is the msgpack array ``[format_version, payload]``, so a format change
can be read side by side with old data instead of being misread.

Event format 2 writes the map keys that every event repeats (``event``,
``timestamp``, ``parse_data``, ...) and the event type names as small integers:
the log is the one thing that grows with a conversation, and this halves it.
``KEYS`` and ``EVENT_NAMES`` may only ever be appended to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgpack

from trackerstore.errors import UnstorableValue

EVENT_FORMAT = 2
SNAPSHOT_FORMAT = 1

KEYS = (
    "event",
    "timestamp",
    "text",
    "parse_data",
    "intent",
    "name",
    "confidence",
    "entities",
    "intent_ranking",
    "input_channel",
    "policy",
    "value",
    "data",
    "start",
    "end",
    "entity",
    "extractor",
    "processors",
    "message_id",
    "validate",
    "action",
    "date_time",
    "kill_on_user_msg",
    "buttons",
    "title",
    "payload",
    "elements",
    "attachment",
    "image",
)
EVENT_NAMES = (
    "user",
    "bot",
    "slot",
    "reset_slots",
    "restart",
    "rewind",
    "undo",
    "reminder",
    "export",
    "pause",
    "resume",
    "action",
    "agent",
    "followup",
    "form",
    "form_validation",
    "action_execution_rejected",
)
_KEY_CODE = {key: code for code, key in enumerate(KEYS)}
_NAME_CODE = {name: code for code, name in enumerate(EVENT_NAMES)}
_CONTAINERS = frozenset({dict, list, tuple})


class CodecError(ValueError):
    """Bytes that are not a record this version of the code can read."""


def _reject_ext(code: int, data: bytes) -> Any:
    # NOTE: we never write ext types; meeting one means foreign or damaged data.
    raise CodecError(f"unexpected msgpack ext type {code}")


def _pack(version: int, payload: Mapping[Any, Any]) -> bytes:
    # PERF: use_bin_type keeps str and bytes apart without a per-value tag.
    try:
        return msgpack.packb([version, payload], use_bin_type=True)
    except (OverflowError, TypeError, ValueError) as exc:
        raise UnstorableValue(f"a value cannot be stored: {exc}") from exc


def _unpack(
    data: bytes, versions: tuple[int, ...], *, int_keys: bool = False
) -> tuple[int, dict[Any, Any]]:
    """The ``(format, payload)`` of a record whose format is one of ``versions``."""
    try:
        record = msgpack.unpackb(
            data, raw=False, ext_hook=_reject_ext, strict_map_key=not int_keys
        )
    except CodecError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise CodecError(f"not msgpack: {exc}") from exc
    if not isinstance(record, list) or len(record) != 2:
        raise CodecError("not a [version, payload] record")
    found, payload = record
    if isinstance(found, bool) or found not in versions:
        raise CodecError(f"unknown record format {found!r}")
    if not isinstance(payload, dict):
        raise CodecError(f"payload is a {type(payload).__name__}, not a map")
    return found, payload


def _compact(value: Any) -> Any:
    # PERF: scalars are passed through without a call: a user event is mostly
    # scalars (the intent ranking's names and confidences), and it is encoded on
    # every turn. Exact types, not isinstance: a dict subclass is packed as it is,
    # with its keys spelled out, which ``_expand`` reads as well.
    code = _KEY_CODE.get
    kind = type(value)
    if kind is dict:
        return {
            code(k, k): _compact(v) if type(v) in _CONTAINERS else v
            for k, v in value.items()
        }
    if kind in _CONTAINERS:
        return [_compact(v) if type(v) in _CONTAINERS else v for v in value]
    return value


def _expand(value: Any) -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if isinstance(k, int) and not isinstance(k, bool):
                if not 0 <= k < len(KEYS):
                    raise CodecError(f"unknown key code {k}")
                k = KEYS[k]
            elif not isinstance(k, str):
                raise CodecError(f"map key of type {type(k).__name__}")
            out[k] = _expand(v)
        return out
    if isinstance(value, list):
        return [_expand(v) for v in value]
    return value


def encode_event(event: Mapping[str, Any]) -> bytes:
    """One event record for the log, in the compact format 2."""
    payload = _compact(dict(event))
    code = _NAME_CODE.get(event.get("event"))  # type: ignore[arg-type]
    if code is not None:
        payload[0] = code
    return _pack(EVENT_FORMAT, payload)


def decode_event(data: bytes) -> dict[str, Any]:
    """The event dict of a log record (format 1 or 2); raises ``CodecError``."""
    found, payload = _unpack(data, (1, EVENT_FORMAT), int_keys=True)
    if found == 1:
        if not all(isinstance(k, str) for k in payload):
            raise CodecError("format 1 record with non-string keys")
        return payload
    event = _expand(payload)
    name = event.get("event")
    if isinstance(name, int) and not isinstance(name, bool):
        if not 0 <= name < len(EVENT_NAMES):
            raise CodecError(f"unknown event type code {name}")
        event["event"] = EVENT_NAMES[name]
    return event


def encode_snapshot(snapshot: Mapping[str, Any]) -> bytes:
    """The snapshot record of a conversation."""
    return _pack(SNAPSHOT_FORMAT, dict(snapshot))


def decode_snapshot(data: bytes) -> dict[str, Any]:
    """The snapshot dict of a snapshot record; raises ``CodecError``."""
    return _unpack(data, (SNAPSHOT_FORMAT,))[1]
