"""The record codec: round trips, format versions and garbage."""

from __future__ import annotations

import msgpack
import pytest

from trackerstore.codec import CodecError
from trackerstore.codec import decode_event
from trackerstore.codec import decode_snapshot
from trackerstore.codec import encode_event
from trackerstore.codec import encode_snapshot

EVENT = {
    "event": "user",
    "timestamp": 1700000000.25,
    "text": "héllo",
    "parse_data": {"intent": {"name": "greet", "confidence": 0.9}, "entities": []},
    "input_channel": None,
    "flag": True,
    "count": -3,
}


def test_event_round_trip() -> None:
    assert decode_event(encode_event(EVENT)) == EVENT


def test_snapshot_round_trip() -> None:
    snapshot = {"slots": {"name": "x"}, "states": [[1.0, 0.0]], "paused": False}
    assert decode_snapshot(encode_snapshot(snapshot)) == snapshot


def test_record_carries_its_format_version() -> None:
    assert msgpack.unpackb(encode_event({"event": "restart"})) == [
        1,
        {"event": "restart"},
    ]


def test_floats_stay_float64() -> None:
    value = 0.1 + 0.2
    assert decode_event(encode_event({"v": value}))["v"] == value


def test_decoded_values_are_fresh_objects() -> None:
    event = {"data": {"list": [1, 2]}}
    decoded = decode_event(encode_event(event))
    decoded["data"]["list"].append(3)
    assert event == {"data": {"list": [1, 2]}}


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xc1", id="never-used-byte"),
        pytest.param(b"\x92\x01", id="truncated"),
        pytest.param(msgpack.packb([1, {}]) + b"\x00", id="extra-data"),
        pytest.param(msgpack.packb([2, {"event": "x"}]), id="unknown-version"),
        pytest.param(msgpack.packb([True, {"event": "x"}]), id="bool-version"),
        pytest.param(msgpack.packb({"event": "x"}), id="no-envelope"),
        pytest.param(msgpack.packb([1, ["x"]]), id="payload-not-map"),
        pytest.param(msgpack.packb([1, {1: "x"}]), id="non-str-key"),
        pytest.param(b"\x92\x01\x81\xa1k\xa2\xff\xfe", id="bad-utf8"),
        pytest.param(
            msgpack.packb([1, {"k": msgpack.ExtType(5, b"x")}]), id="ext-type"
        ),
    ],
)
def test_garbage_raises_codec_error(data: bytes) -> None:
    with pytest.raises(CodecError):
        decode_event(data)
    with pytest.raises(ValueError):
        decode_snapshot(data)
