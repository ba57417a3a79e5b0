"""JSON from clients within what the server can store and answer (issue 11.1)."""

import json

import msgpack
import orjson
import pytest
import yaml

from worker.jsonlimits import MAX_DEPTH
from worker.jsonlimits import JSONLimitError
from worker.jsonlimits import loads


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "depth"),
        ('{"a": ' * (MAX_DEPTH + 1) + "1" + "}" * (MAX_DEPTH + 1), "depth"),
        ("[" * 100_000 + "]" * 100_000, "depth"),  # past Python's recursion limit
        ("1" + "0" * 5000, "integer"),  # past Python's int-string limit
        (str(2**64), "integer"),
        (str(-(2**63) - 1), "integer"),
        ('{"x": [1e999]}', "number"),
        ("-1e999", "number"),
        ("NaN", "number"),
        ("[Infinity]", "number"),
        ('"\\ud800"', "string"),
        ('{"\\udc00": 1}', "string"),
        ('["ok", {"a": "\\ude00x"}]', "string"),
    ],
)
def test_values_beyond_the_limits_are_refused(text, limit):
    with pytest.raises(JSONLimitError) as err:
        loads(text)
    assert err.value.limit == limit


def test_what_passes_can_be_stored_and_answered():
    deepest = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    for text in (
        deepest,
        str(2**64 - 1),
        str(-(2**63)),
        "1.7e308",
        '"\\ud83d\\ude00"',  # a surrogate pair is one character
        '{"a": [1, 2.5, "x", null, true]}',
    ):
        value = loads(text)
        assert value == json.loads(text)
        # wrapped in a few levels, as a stored value is in a tracker answer
        wrapped = {"tracker": {"events": [{"data": value}]}}
        orjson.dumps(wrapped)
        msgpack.unpackb(msgpack.packb([2, wrapped]))


def test_syntax_errors_stay_json_decode_errors():
    with pytest.raises(json.JSONDecodeError):
        loads('{"a": ')


LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n"
    for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.mark.parametrize(
    "text",
    [
        "intents: " + "[" * 5000 + "]" * 5000,  # past Python's recursion limit
        "x: " + "{a: " * 65 + "1" + "}" * 65,
        LAUGHS,  # 9**9 nodes once expanded
    ],
)
def test_yaml_beyond_the_limits_is_a_yaml_error(text):
    import yaml

    from worker.yamlfile import BoundedLoader

    with pytest.raises(yaml.YAMLError):
        yaml.load(text, Loader=BoundedLoader)


def test_yaml_aliases_within_the_limits_still_work():
    from worker.yamlfile import BoundedLoader

    loaded = yaml.load("a: &x {b: 1}\nc: *x", Loader=BoundedLoader)
    assert loaded == {"a": {"b": 1}, "c": {"b": 1}}


@pytest.mark.parametrize("text", ["a: \x13", "\x00", "x: \ufffe", "- \x7f\x85"])
def test_yaml_with_characters_yaml_forbids_is_a_training_data_error(text):
    """PyYAML's reader refuses them as it is made, before parsing (was a 500)."""
    from worker.errors import TrainingDataError
    from worker.yamlfile import load_client_yaml

    with pytest.raises(TrainingDataError, match="invalid YAML"):
        load_client_yaml(text, "config")
