"""The action server's faults, each a documented outcome with no events: a 400
``{error, action_name}`` is ``ActionRejected``; a 500, a silent or trickling
server, a refused port, garbage, a huge or too deep answer and a bad event are
``ActionFailed`` (whose reason is the log line)."""

from __future__ import annotations

import select
import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from api.testing import free_port
from tests.actions.servers import JsonServer
from tests.actions.servers import RawServer
from tests.actions.servers import read_request
from tests.actions.talk import Talk
from worker.actions import ActionEndpoint
from worker.actions import ActionFailed
from worker.actions import ActionRejected
from worker.actions import ActionRunner
from worker.domain import Domain
from worker.errors import InvalidConfig
from worker.errors import UnknownAction
from worker.events import BotUttered
from worker.events import SlotSet

DOMAIN = Domain.from_yaml(
    """
version: "3.1"
intents: [greet]
slots:
  name: {type: text, mappings: [{type: custom}]}
responses:
  utter_hi: [{text: "hi {name}"}]
actions: [action_hello]
"""
)


def _runner(url: str, **kwargs) -> ActionRunner:
    return ActionRunner(DOMAIN, ActionEndpoint(url, **kwargs))


def _talk() -> Talk:
    talk = Talk(DOMAIN)
    talk.user("hello", "greet")
    return talk


def test_a_good_answer_is_applied_and_the_connection_kept():
    answer = {
        "events": [{"event": "slot", "name": "name", "value": "Ada"}],
        "responses": [{"text": "done"}],
    }
    with JsonServer(lambda path, body: (200, answer)) as server:
        runner = _runner(server.url, token="s3cr&t")
        talk = _talk()
        for _ in range(3):
            events = talk.run(runner, "action_hello")
        runner.close()
    assert [type(e) for e in events] == [BotUttered, SlotSet]
    assert events[0].text == "done" and events[1] == SlotSet(name="name", value="Ada")
    assert server.connections == 1  # kept alive across the three calls
    request = server.requests[0]
    assert request["path"] == "/webhook?token=s3cr%26t"  # Rasa sends it as a query
    body = request["body"]
    assert set(body) == {"next_action", "sender_id", "tracker", "domain", "version"}
    assert body["next_action"] == "action_hello"
    assert [e["event"] for e in body["tracker"]["events"]] == ["action", "user"]


def test_a_rejection_is_action_rejected():
    rejection = {"error": "no thanks", "action_name": "action_hello"}
    server = JsonServer(lambda path, body: (400, rejection))
    with server, pytest.raises(ActionRejected) as err:
        _talk().run(_runner(server.url), "action_hello")
    assert err.value.reason == "no thanks"


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (500, {"error": "boom"}, "answered HTTP 500"),
        (404, {"error": "No registered action found"}, "answered HTTP 404"),
        (400, b"not the rejection shape", "answered HTTP 400"),
        (200, b"<html>garbage</html>", "answered no JSON"),
        (200, b"[" * 100 + b"]" * 100, "nesting deeper"),
        (200, [1, 2], "not an object"),
        (200, {"events": {"event": "slot"}}, "must be lists"),
        (200, {"events": [{"event": "nonsense"}]}, "unknown event type"),
        (200, {"events": [{"event": "slot", "name": 3}]}, "event 0"),
        (200, {"responses": ["text"]}, "not an object"),
    ],
)
def test_a_bad_answer_is_a_failure_with_no_events(status, body, reason):
    server = JsonServer(lambda path, _: (status, body))
    with server, pytest.raises(ActionFailed) as err:
        _talk().run(_runner(server.url), "action_hello")
    assert reason in err.value.reason


def test_a_huge_answer_is_refused_unread():
    huge = {"events": [], "junk": "x" * 100_000}
    server = JsonServer(lambda path, _: (200, huge))
    with server, pytest.raises(ActionFailed) as err:
        _talk().run(_runner(server.url, max_response_bytes=10_000), "action_hello")
    assert "over the 10000 allowed" in err.value.reason


def _chunked_forever(conn: socket.socket, stop: threading.Event) -> None:
    read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"x" * 4096
    while not stop.is_set():
        conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))


def test_an_endless_chunked_answer_is_cut_at_the_limit():
    with RawServer(_chunked_forever) as server, pytest.raises(ActionFailed) as err:
        _talk().run(_runner(server.url, max_response_bytes=50_000), "action_hello")
    assert "more than the 50000 bytes" in err.value.reason


def _silent(conn: socket.socket, stop: threading.Event) -> None:
    read_request(conn)
    stop.wait(60)


def _trickle(conn: socket.socket, stop: threading.Event) -> None:
    """A byte of a never-ending header every 50 ms: each read gets data in time,
    only the whole call's deadline can end it."""
    read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    while not stop.wait(0.05):
        conn.sendall(b"a")


@pytest.mark.parametrize("behave", [_silent, _trickle], ids=["silent", "trickle"])
def test_a_server_that_does_not_answer_in_time_is_a_timeout(behave):
    with RawServer(behave) as server:
        runner = _runner(server.url, timeout=0.5)
        with pytest.raises(ActionFailed) as err:
            _talk().run(runner, "action_hello")
    assert "no full answer" in err.value.reason and "within 0.5s" in err.value.reason


def test_a_refused_port_is_a_failure():
    url = f"http://127.0.0.1:{free_port()}/webhook"
    with pytest.raises(ActionFailed) as err:
        _talk().run(_runner(url), "action_hello")
    assert "cannot connect" in err.value.reason


def _close_without_answer(conn: socket.socket, stop: threading.Event) -> None:
    read_request(conn)


def test_a_server_that_hangs_up_is_a_failure_and_is_not_called_twice():
    calls = []

    def behave(conn: socket.socket, stop: threading.Event) -> None:
        calls.append(time.monotonic())
        _close_without_answer(conn, stop)

    with RawServer(behave) as server, pytest.raises(ActionFailed) as err:
        _talk().run(_runner(server.url), "action_hello")
    assert "bad HTTP answer" in err.value.reason
    assert len(calls) == 1


def test_a_kept_connection_the_server_closed_is_not_reused():
    """A server that closes each connection after answering (without saying so):
    the next call sees the close before sending and opens a new connection."""

    def once(conn: socket.socket, stop: threading.Event) -> None:
        read_request(conn)
        body = b'{"events": []}'
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )

    def closed_seen(runner: ActionRunner) -> bool:
        """The server's close has reached the kept connection (a request sent
        before it does fails: a POST is never resent)."""
        idle = [s for socks in runner.client._idle.values() for s in socks]
        poller = select.poll()
        for sock in idle:
            poller.register(sock, select.POLLIN)
        return len(poller.poll(0)) == len(idle)

    with RawServer(once) as server:
        runner = _runner(server.url)
        talk = _talk()
        for _ in range(3):
            while not closed_seen(runner):
                time.sleep(0.01)
            assert talk.run(runner, "action_hello") == []
    assert len(server.threads) == 3  # a new connection for each call


def test_without_an_action_server_a_custom_action_fails():
    with pytest.raises(ActionFailed) as err:
        _talk().run(ActionRunner(DOMAIN), "action_hello")
    assert "no action server" in err.value.reason


def test_an_action_the_domain_does_not_have_is_unknown():
    with pytest.raises(UnknownAction):
        _talk().run(ActionRunner(DOMAIN), "action_nobody_wrote")


@pytest.mark.parametrize(
    "config",
    [
        {"url": "ftp://x"},
        {"url": "http://x", "timeout": 0},
        {"url": "http://x", "timeout": "10"},
        {"url": "http://x", "headers": {"X-A": "b\r\nInjected: 1"}},
        {"url": "http://x", "basic_auth": {"username": "u"}},
        {"token": "t"},
    ],
)
def test_bad_endpoint_configs_are_refused(config):
    with pytest.raises(InvalidConfig):
        ActionEndpoint.from_config(config)


def test_endpoint_config_reads_rasa_keys():
    endpoint = ActionEndpoint.from_config(
        {
            "url": "http://localhost:5055/webhook",
            "token": "abc",
            "basic_auth": {"username": "u", "password": "p"},
            "timeout": 2,
        }
    )
    assert endpoint.token == "abc" and endpoint.timeout == 2.0
    assert endpoint.basic_auth == ("u", "p")


def test_one_runner_serves_many_threads_on_few_connections():
    """A gunicorn worker's threads share one runner: every call is answered with
    its own conversation's data, on at most one connection per thread."""
    from concurrent.futures import ThreadPoolExecutor

    def answer(path, body):
        who = body["sender_id"]
        return 200, {"events": [{"event": "slot", "name": "name", "value": who}]}

    with JsonServer(answer) as server:
        runner = _runner(server.url)

        def call(i: int) -> object:
            talk = Talk(DOMAIN, sender=f"user-{i}")
            talk.user("hello", "greet")
            return talk.run(runner, "action_hello")[0]

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(call, range(200)))
        runner.close()
    assert results == [SlotSet(name="name", value=f"user-{i}") for i in range(200)]
    assert server.connections <= 8


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the openssl command line)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes"),
            *("-days", "1", "-keyout", str(key), "-out", str(cert)),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def _https_server(certificate: tuple[Path, Path]) -> JsonServer:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    answer = {"events": [{"event": "slot", "name": "name", "value": "Ada"}]}
    return JsonServer(lambda path, body: (200, answer), tls=context)


def test_an_https_server_is_verified_against_the_endpoints_cafile(certificate):
    with _https_server(certificate) as server:
        assert server.url.startswith("https://")
        # a certificate no CA vouches for is refused
        with pytest.raises(ActionFailed) as err:
            _talk().run(_runner(server.url), "action_hello")
        assert "TLS with" in err.value.reason and "certificate" in err.value.reason
        # Rasa's ``cafile`` trusts it
        endpoint = ActionEndpoint.from_config(
            {"url": server.url, "cafile": str(certificate[0])}
        )
        events = _talk().run(ActionRunner(DOMAIN, endpoint), "action_hello")
    assert events == [SlotSet(name="name", value="Ada", timestamp=events[0].timestamp)]


def test_a_cafile_that_is_not_a_ca_file_is_refused(tmp_path):
    for cafile in (tmp_path / "missing.pem", Path(__file__)):
        with pytest.raises(InvalidConfig, match="not a PEM CA file"):
            ActionEndpoint.from_config({"url": "https://x", "cafile": str(cafile)})


def test_a_host_name_lookup_that_hangs_is_bounded_by_the_connect_timeout(
    monkeypatch,
):
    """The lookup waits on an event the test sets only after the call failed: the
    call cannot have waited for it."""
    release, returned = threading.Event(), threading.Event()
    real = socket.getaddrinfo

    def hanging(host: str, *args, **kwargs):
        if host != "actions.example":
            return real(host, *args, **kwargs)
        release.wait(30)
        returned.set()
        raise socket.gaierror("gave up")

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    runner = _runner("http://actions.example:5055/webhook", connect_timeout=0.2)
    try:
        with pytest.raises(ActionFailed) as err:
            _talk().run(runner, "action_hello")
        assert not returned.is_set()
        assert "no connection within 0.2s" in err.value.reason
    finally:
        release.set()
        runner.close()
