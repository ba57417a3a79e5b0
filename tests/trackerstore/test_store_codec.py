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
    # format 2: known keys and event type names are written as small integers
    assert msgpack.unpackb(
        encode_event({"event": "restart", "x": 1}), strict_map_key=False
    ) == [2, {0: 4, "x": 1}]


def test_format_1_records_are_still_read() -> None:
    old = msgpack.packb([1, {"event": "restart"}])
    assert decode_event(old) == {"event": "restart"}


def test_the_compact_format_halves_a_turn() -> None:
    turn = [
        {
            **EVENT,
            "parse_data": {
                **EVENT["parse_data"],
                "intent_ranking": [
                    {"name": f"intent_{i}", "confidence": 0.1} for i in range(6)
                ],
            },
        },
        {
            "event": "action",
            "timestamp": 1.5,
            "name": "utter_happy",
            "policy": None,
            "confidence": None,
        },
    ]
    plain = sum(len(msgpack.packb([1, e])) for e in turn)
    compact = sum(len(encode_event(e)) for e in turn)
    assert all(decode_event(encode_event(e)) == e for e in turn)
    assert compact < 0.75 * plain


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
        pytest.param(msgpack.packb([3, {"event": "x"}]), id="unknown-version"),
        pytest.param(msgpack.packb([2, {99: "x"}]), id="unknown-key-code"),
        pytest.param(msgpack.packb([2, {0: 99}]), id="unknown-type-code"),
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
