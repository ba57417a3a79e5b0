"""Rasa's endpoints.yml as ``dialogd serve`` reads it."""

from __future__ import annotations

import pytest

from api.endpoints import read_credentials
from api.endpoints import read_endpoints
from worker.errors import InvalidConfig


def endpoints(tmp_path, text: str):
    path = tmp_path / "endpoints.yml"
    path.write_text(text)
    return read_endpoints(str(path))


def test_rasa_init_endpoints_are_all_comments(tmp_path):
    assert endpoints(tmp_path, "# action_endpoint:\n#  url: x\n").redis_url is None


def test_a_redis_tracker_store_is_the_servers_redis(tmp_path):
    found = endpoints(
        tmp_path,
        "tracker_store:\n  type: redis\n  url: redis.example\n  port: 6380\n"
        "  db: 3\n  password: 'p@ss:/'\n  use_ssl: true\n  key_prefix: bot\n"
        "  record_exp: 60\nlock_store:\n  type: redis\n",
    )
    assert found.redis_url == "rediss://:p%40ss%3A%2F@redis.example:6380/3"
    assert found.key_prefix == "bot"
    assert found.unused == ("lock_store", "tracker_store.record_exp")


def test_defaults_and_url_given_whole(tmp_path):
    text = "tracker_store:\n  type: RedisTrackerStore\n"
    with pytest.raises(InvalidConfig, match="Redis only"):
        endpoints(tmp_path, text)
    assert (
        endpoints(tmp_path, "tracker_store:\n  type: redis\n").redis_url
        == "redis://localhost:6379/0"
    )
    whole = "tracker_store:\n  type: redis\n  url: unix:///tmp/r.sock\n"
    assert endpoints(tmp_path, whole).redis_url == "unix:///tmp/r.sock"


@pytest.mark.parametrize(
    "text, message",
    [
        ("trackers:\n  type: redis\n", "unknown endpoints \\['trackers'\\]"),
        ("- a\n", "must be a mapping"),
        ("tracker_store:\n  type: sql\n", "tracker_store type 'sql'"),
        ("tracker_store: redis\n", "tracker_store must be a mapping"),
        ("tracker_store:\n  type: redis\n  port: x\n", "port and db are numbers"),
    ],
)
def test_mistakes_are_errors(tmp_path, text, message):
    with pytest.raises(InvalidConfig, match=message):
        endpoints(tmp_path, text)


def test_in_memory_is_accepted_and_named_unused(tmp_path):
    found = endpoints(tmp_path, "tracker_store:\n  type: in_memory\n")
    assert found.redis_url is None
    assert found.unused == ("tracker_store (in_memory)",)


def test_action_and_nlg_servers(tmp_path):
    found = endpoints(
        tmp_path,
        "action_endpoint:\n  url: http://actions:5055/webhook\n  token: s3\n"
        "  timeout: 2.5\n  params: {a: 1}\nnlg:\n  type: callback\n"
        "  url: https://nlg.example/nlg\n",
    )
    assert found.action is not None and found.nlg is not None
    assert found.action.url == "http://actions:5055/webhook"
    assert (found.action.token, found.action.timeout) == ("s3", 2.5)
    assert found.nlg.url == "https://nlg.example/nlg"
    assert found.unused == ("action_endpoint.params",)


@pytest.mark.parametrize(
    "text, message",
    [
        ("action_endpoint:\n  token: x\n", "needs a 'url'"),
        ("action_endpoint:\n  url: file:///etc/passwd\n", "http\\(s\\)"),
        ("action_endpoint:\n  url: http://x\n  timeout: -1\n", "above 0"),
        ("action_endpoint:\n  actions_module: actions\n  url: http://x\n", "HTTP"),
        ("nlg:\n  type: template\n  url: http://x\n", "only an NLG server"),
    ],
)
def test_http_endpoint_mistakes(tmp_path, text, message):
    with pytest.raises(InvalidConfig, match=message):
        endpoints(tmp_path, text)


def test_credentials(tmp_path):
    path = tmp_path / "credentials.yml"
    path.write_text("rest:\ncallback:\n  url: http://me/cb\nrasa:\n  url: http://x\n")
    found = read_credentials(str(path))
    assert found.callback is not None and found.callback.url == "http://me/cb"
    assert found.unused == ("rasa",)
    path.write_text("callback:\n  url: ftp://x\n")
    with pytest.raises(InvalidConfig, match="http"):
        read_credentials(str(path))


def test_a_redis_event_broker_is_the_event_stream(tmp_path):
    found = endpoints(
        tmp_path,
        "tracker_store:\n  type: redis\nevent_broker:\n  type: redis\n"
        "  maxlen: 5000\n  max_age: 3600\n  queue: x\n",
    )
    assert found.event_stream is not None
    assert (found.event_stream.maxlen, found.event_stream.max_age) == (5000, 3600)
    assert found.unused == ("event_broker.queue",)
    found = endpoints(tmp_path, "event_broker:\n  type: redis\n")
    assert found.event_stream is not None and found.event_stream.max_age is None


def test_rasas_own_brokers_are_accepted_unused(tmp_path):
    found = endpoints(tmp_path, "event_broker:\n  type: pika\n  url: localhost\n")
    assert found.event_stream is None
    assert found.unused == ("event_broker",)


@pytest.mark.parametrize("bad", ["maxlen: 0", "max_age: -1", "maxlen: lots"])
def test_a_bad_event_stream_bound_is_an_error(tmp_path, bad):
    with pytest.raises(InvalidConfig, match="event_broker"):
        endpoints(tmp_path, f"event_broker:\n  type: redis\n  {bad}\n")
