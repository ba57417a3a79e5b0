"""deploy/nginx.conf, the load balancer: its rules read statically (with mutations
that each checker must notice), ``nginx -t`` on the native rendering (and on the
compose file itself where nginx is new enough), and a real nginx in front of stand-in
workers on 127.0.0.1: round robin, request ids, keep-alive, the body limit, and
retries that never send a POST twice."""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from api.serving.balance import keepalive_requests
from api.serving.settings import gunicorn_settings
from tests.data import ROOT

NGINX_CONF = ROOT / "deploy" / "nginx.conf"
RESOLVE_SINCE = (1, 27, 3)  # `resolve` and `resolver` in upstream{} (open source)


def _strip_comments(text: str) -> str:
    return re.sub(r"#[^\n]*", "", text)


def _block(text: str, header: str) -> str:
    """The body of ``header { ... }`` (blocks without nested braces)."""
    match = re.search(re.escape(header) + r"\s*\{([^{}]*)\}", text)
    return match.group(1) if match else ""


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m)?", value)
    assert match, value
    number, unit = int(match[1]), match[2] or "s"
    return number / 1000 if unit == "ms" else number * (60 if unit == "m" else 1)


def _directive(body: str, name: str) -> list[str]:
    return [m.split() for m in re.findall(rf"(?m)^\s*{name}\s+([^;]*);", body)] or []


def _gunicorn() -> dict[str, Any]:
    return gunicorn_settings()


def _check_upstream(upstream: str, gunicorn: dict[str, Any]) -> list[str]:
    out = []
    if not upstream:
        return ["no `upstream dialogd` block"]
    for method in ("ip_hash", "hash", "sticky", "least_conn", "random"):
        if re.search(rf"(?m)(^|;)\s*{method}\b", upstream):
            out.append(f"upstream: {method} is not round robin (no sticky sessions)")
    keepalive = _directive(upstream, "keepalive")
    if not keepalive or int(keepalive[0][0]) < 1:
        out.append("upstream: no keepalive connections to the workers")
    idle = _directive(upstream, "keepalive_timeout")
    nginx_idle = _seconds(idle[0][0]) if idle else 60.0
    if nginx_idle >= gunicorn["keepalive"]:
        out.append(
            f"upstream keepalive_timeout ({nginx_idle}s) must be below gunicorn's "
            f"keepalive ({gunicorn['keepalive']}s): nginx must close idle ones first"
        )
    requests = _directive(upstream, "keepalive_requests")
    most = keepalive_requests({})
    if not requests or int(requests[0][0]) > most:
        out.append(
            f"upstream keepalive_requests must be at most {most}, dialogd's own "
            "limit: a connection that lives for ever stays on one worker"
        )
    servers = _directive(upstream, "server")
    if not any(s[0] == "dialogd:5005" for s in servers):
        out.append("upstream: must balance over the compose service dialogd:5005")
    if any(s[0] == "dialogd:5005" and "resolve" not in s for s in servers):
        out.append("upstream: dialogd:5005 needs `resolve` to follow replicas")
    if not _directive(upstream, "resolver"):
        out.append("upstream: `resolve` needs a resolver (Docker's 127.0.0.11)")
    if "zone" not in upstream:
        out.append("upstream: `resolve` needs a shared zone")
    return out


def _check_location(location: str, gunicorn: dict[str, Any]) -> list[str]:
    out = []
    if not location:
        return ["no `location /` block"]
    if ["1.1"] not in _directive(location, "proxy_http_version"):
        out.append("proxy_http_version 1.1 is required for upstream keep-alive")
    if not re.search(r'(?m)^\s*proxy_set_header\s+Connection\s+""\s*;', location):
        out.append('proxy_set_header Connection "" is required for keep-alive')
    if not re.search(r"(?m)^\s*proxy_set_header\s+X-Request-Id\s+\$\w+", location):
        out.append("X-Request-Id is not passed to the workers")
    retries = _directive(location, "proxy_next_upstream")
    conditions = set(retries[0]) if retries else set()
    if not {"error", "timeout", "http_502", "http_503"} <= conditions:
        out.append("proxy_next_upstream must be: error timeout http_502 http_503")
    if "non_idempotent" in conditions:
        out.append("proxy_next_upstream non_idempotent would re-send POSTs")
    read = _directive(location, "proxy_read_timeout")
    if not read or _seconds(read[0][0]) <= gunicorn["timeout"]:
        out.append(
            "proxy_read_timeout must exceed gunicorn's timeout "
            f"({gunicorn['timeout']}s)"
        )
    for name in ("proxy_connect_timeout", "proxy_send_timeout"):
        if not _directive(location, name):
            out.append(f"{name} is not set")
    connect = _directive(location, "proxy_connect_timeout")
    if connect and _seconds(connect[0][0]) > 1:
        out.append(
            "proxy_connect_timeout over 1s: a request to a removed replica's "
            "address waits that long before it moves on"
        )
    if ["on"] not in _directive(location, "proxy_request_buffering"):
        out.append("proxy_request_buffering on: a slow body must not reach gunicorn")
    again = re.search(r"(?m)^\s*error_page\s+502\s+=\s*(@\w+)\s*;", location)
    if not again:
        out.append("no error_page 502 = @...: no second try after a `resolve` update")
    return out


def _nested_block(text: str, header: str) -> str:
    """The body of the first ``header { ... }``, nested blocks included."""
    match = re.search(re.escape(header) + r"\s*\{", text)
    if not match:
        return ""
    depth, start = 1, match.end()
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i]
    return ""


def _top_level(body: str) -> str:
    """``body`` without its nested blocks: the directives of that level only."""
    while True:
        flat = re.sub(r"\{[^{}]*\}", ";", body)
        if flat == body:
            return body
        body = flat


ERROR_PAGE_CODES = {"400", "408", "413", "414", "494", "502", "503", "504"}
ERROR_KEYS = {"status", "reason", "message", "details", "help", "code"}


def _check_server(server: str) -> list[str]:
    """One X-Request-Id per answer, JSON for nginx's own refusals, and the one
    retry of a request no worker saw."""
    out = []
    level = _top_level(server)
    if not re.search(r"(?m)^\s*add_header\s+X-Request-Id\s+\$\w+.*\balways\b", level):
        out.append("X-Request-Id is not returned to the client (server level, always)")
    for name in re.findall(r"(?m)^\s*location\s+([^{]+?)\s*\{", server):
        body = _top_level(_nested_block(server, f"location {name}"))
        if "add_header" in body:
            # nginx inherits add_header only into a level that has none.
            out.append(f"location {name}: add_header hides the server's X-Request-Id")
        if "proxy_pass" in body and not re.search(
            r"(?m)^\s*proxy_hide_header\s+X-Request-Id\s*;", body
        ):
            out.append(f"location {name}: the worker's X-Request-Id is sent too (two)")
        if re.search(r"(?m)^\s*proxy_request_buffering\s+off", body):
            out.append(f"location {name}: proxy_request_buffering off")
    pages = re.findall(r"(?m)^\s*error_page\s+([\d\s]+?)\s+(/\S+)\s*;", level)
    codes = {c for numbers, _ in pages for c in numbers.split()}
    if not pages or not codes >= ERROR_PAGE_CODES:
        out.append(f"error_page must cover {sorted(ERROR_PAGE_CODES)} at server level")
        return out
    page = _nested_block(server, f"location = {pages[0][1]}")
    body = re.search(r"return\s+\d+\s+'(\{.*\})\\n'\s*;", page)
    if not body:
        out.append("the error page does not return a JSON body")
        return out
    sample = re.sub(r"\$\w+", "0", body[1])
    try:
        keys = set(json.loads(sample))
    except ValueError:
        keys = set()
    if keys != ERROR_KEYS or '"code": $status' not in body[1]:
        out.append(f"the error body must be the API's shape: {sorted(ERROR_KEYS)}")
    if "application/json" not in page:
        out.append("the error page is not application/json")
    return out


def _check_clients(http: str) -> list[str]:
    """Slow or oversized clients stop at nginx."""
    out = []
    for name in (
        "client_header_timeout",
        "client_body_timeout",
        "send_timeout",
        "keepalive_timeout",
    ):
        value = _directive(http, name)
        if not value or _seconds(value[0][0]) > 65:
            out.append(f"{name} must be set, at most 65s")
    if not _directive(http, "large_client_header_buffers"):
        out.append("large_client_header_buffers (the header limit) is not set")
    return out


def problems(text: str, gunicorn: dict[str, Any]) -> list[str]:
    conf = _strip_comments(text)
    out = []
    http_conf = conf
    if not re.search(r"(?m)^\s*client_max_body_size\s+1m\s*;", http_conf):
        out.append("client_max_body_size must be 1m")
    if not re.search(r"(?m)^\s*listen\s+5005\s*;", conf):
        out.append("nginx must listen on 5005")
    formats = re.findall(r"log_format\s+(\w+)\s+escape=json", conf)
    if not formats:
        out.append("no JSON log_format (escape=json)")
    elif not re.search(rf"(?m)^\s*access_log\s+\S+\s+{formats[0]}\s*;", conf):
        out.append("the access log does not use the JSON format")
    if "$request_id" not in conf:
        out.append("$request_id is never used")
    out += _check_upstream(_block(conf, "upstream dialogd"), gunicorn)
    out += _check_location(_block(conf, "location /"), gunicorn)
    out += _check_server(_nested_block(conf, "server"))
    out += _check_clients(_top_level(_nested_block(conf, "http")))
    return out


def test_the_config_has_no_problems() -> None:
    assert problems(NGINX_CONF.read_text(), _gunicorn()) == []


def _replace(old: str, new: str):
    def mutate(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    return mutate


MUTATIONS = [
    (
        "sticky",
        _replace("zone dialogd_upstream 64k;", "zone u 64k; ip_hash;"),
        "ip_hash",
    ),
    ("no keepalive", _replace("keepalive 32;", ""), "no keepalive"),
    (
        "idle longer than gunicorn",
        _replace(
            "keepalive_timeout 60s;\n        keepalive_requests",
            "keepalive_timeout 90s;\n        keepalive_requests",
        ),
        "must be below gunicorn",
    ),
    (
        "connections live for ever",
        _replace("keepalive_requests 100;", "keepalive_requests 10000;"),
        "keepalive_requests must be at most",
    ),
    ("HTTP/1.0", _replace("proxy_http_version 1.1;", ""), "proxy_http_version"),
    (
        "Connection not cleared",
        _replace('proxy_set_header Connection "";', ""),
        "Connection",
    ),
    (
        "POSTs re-sent",
        _replace(
            "proxy_next_upstream error timeout http_502 http_503;",
            "proxy_next_upstream error timeout http_502 http_503 non_idempotent;",
        ),
        "non_idempotent",
    ),
    (
        "no retry on 503",
        _replace(
            "proxy_next_upstream error timeout http_502 http_503;",
            "proxy_next_upstream error timeout;",
        ),
        "proxy_next_upstream must be",
    ),
    (
        "bigger bodies",
        _replace("client_max_body_size 1m;", "client_max_body_size 10m;"),
        "1m",
    ),
    ("other port", _replace("listen 5005;", "listen 80;"), "5005"),
    (
        "no request id upstream",
        _replace("proxy_set_header X-Request-Id $dialogd_request_id;", ""),
        "not passed",
    ),
    (
        "text access log",
        _replace("access_log /dev/stdout dialogd_json;", "access_log /dev/stdout;"),
        "JSON format",
    ),
    (
        "read timeout below gunicorn's",
        _replace("proxy_read_timeout 35s;", "proxy_read_timeout 10s;"),
        "proxy_read_timeout",
    ),
    (
        "static upstream",
        _replace("server dialogd:5005 resolve", "server dialogd:5005"),
        "needs `resolve`",
    ),
    (
        "wrong service",
        _replace("server dialogd:5005", "server worker:5005"),
        "dialogd:5005",
    ),
    (
        "the worker's id passed on",
        _replace("proxy_hide_header X-Request-Id;", ""),
        "(two)",
    ),
    (
        "add_header in a location",
        _replace(
            "proxy_pass http://dialogd;\n",
            "proxy_pass http://dialogd;\n            add_header X-A b;\n",
        ),
        "hides the server's X-Request-Id",
    ),
    (
        "no id for the client",
        _replace("add_header X-Request-Id $dialogd_request_id always;", ""),
        "not returned",
    ),
    (
        "slow connect",
        _replace("proxy_connect_timeout 500ms;", "proxy_connect_timeout 2s;"),
        "proxy_connect_timeout over 1s",
    ),
    (
        "unbuffered bodies",
        _replace("proxy_request_buffering on;", "proxy_request_buffering off;"),
        "proxy_request_buffering",
    ),
    (
        "no second try",
        _replace("error_page 502 = @dialogd_again;", ""),
        "no error_page 502",
    ),
    (
        "HTML errors",
        _replace(
            "error_page 400 404 408 413 414 494 500 502 503 504 /_dialogd_error;", ""
        ),
        "error_page must cover",
    ),
    (
        "another error shape",
        _replace('"help": null, ', ""),
        "the API's shape",
    ),
    (
        "slow bodies",
        _replace("client_body_timeout 10s;", ""),
        "client_body_timeout",
    ),
    (
        "unbounded headers",
        _replace("large_client_header_buffers 4 8k;", ""),
        "large_client_header_buffers",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected"), [pytest.param(m, e, id=n) for n, m, e in MUTATIONS]
)
def test_the_checker_notices(mutate: Any, expected: str) -> None:
    found = problems(mutate(NGINX_CONF.read_text()), _gunicorn())
    assert any(expected in p for p in found), found


# --- the native rendering ----------------------------------------------------------


def test_render_replaces_only_the_compose_specifics(
    render_nginx: ModuleType, tmp_path: Path
) -> None:
    text = render_nginx.render(
        ["127.0.0.1:5101", "127.0.0.1:5102"], listen="127.0.0.1:6005", run_dir=tmp_path
    )
    conf = _strip_comments(text)
    assert re.findall(r"server (\S+) max_fails=1 fail_timeout=5s;", conf) == [
        "127.0.0.1:5101",
        "127.0.0.1:5102",
    ]
    assert "resolve" not in conf and "127.0.0.11" not in conf
    assert "listen 127.0.0.1:6005;" in conf
    assert f"pid {tmp_path / 'nginx.pid'};" in conf
    assert f"access_log {tmp_path / 'access.log'} dialogd_json;" in conf
    assert f"proxy_temp_path {tmp_path / 'temp-proxy'};" in conf
    # Everything else is the shared file's.
    original = _strip_comments(NGINX_CONF.read_text())
    for directive in ("proxy_next_upstream", "keepalive 32", "client_max_body_size"):
        assert re.findall(rf".*{directive}.*", conf) == re.findall(
            rf".*{directive}.*", original
        )


def test_render_refuses_a_drifted_config(
    render_nginx: ModuleType, tmp_path: Path
) -> None:
    text = NGINX_CONF.read_text()
    for broken in (
        text.replace("# @servers-begin", "# servers"),
        text.replace("listen 5005;", "listen 5005;\n        listen 5005;"),
        text.replace("pid /var/run/nginx.pid;", ""),
    ):
        with pytest.raises(ValueError):
            render_nginx.render(
                ["127.0.0.1:1"], listen="127.0.0.1:2", run_dir=tmp_path, conf=broken
            )
    with pytest.raises(ValueError):
        render_nginx.render([], listen="127.0.0.1:2", run_dir=tmp_path)


def _nginx_t(nginx: str, conf_text: str, run_dir: Path) -> subprocess.CompletedProcess:
    conf = run_dir / "nginx.conf"
    conf.write_text(conf_text)
    return subprocess.run(
        [
            nginx,
            "-t",
            "-p",
            str(run_dir),
            "-e",
            str(run_dir / "error.log"),
            "-c",
            str(conf),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_nginx_accepts_the_native_rendering(
    nginx: str, render_nginx: ModuleType, tmp_path: Path
) -> None:
    text = render_nginx.render(
        ["127.0.0.1:5101", "127.0.0.1:5102", "127.0.0.1:5103"],
        listen="127.0.0.1:5005",
        run_dir=tmp_path,
    )
    done = _nginx_t(nginx, text, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "syntax is ok" in done.stderr


def test_nginx_accepts_the_compose_config(
    nginx: str, nginx_version: tuple[int, ...], render_nginx: ModuleType, tmp_path: Path
) -> None:
    """The file exactly as compose runs it (only pid/log paths moved): needs an nginx
    with `resolve` in upstream{} (1.27.3+, as in nginx:1.27-alpine)."""
    if nginx_version < RESOLVE_SINCE:
        pytest.skip(
            f"nginx {'.'.join(map(str, nginx_version))} here predates upstream "
            "`resolve` (1.27.3): the compose variant is checked statically only"
        )
    text = render_nginx.render(
        [], listen="127.0.0.1:5005", run_dir=tmp_path, keep_servers=True
    )
    done = _nginx_t(nginx, text, tmp_path)
    assert done.returncode == 0, done.stderr


# --- a real nginx in front of stand-in workers -------------------------------------


class Worker:
    """A stand-in dialogd on 127.0.0.1 that records every request it reads, then
    answers 200, answers 503, or closes the connection without answering (an
    instance killed in the middle of a request)."""

    def __init__(self, behaviour: str = "ok"):
        self.behaviour = behaviour
        self.seen: list[dict[str, Any]] = []
        worker = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                worker.seen.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "version": self.request_version,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "peer": self.client_address[1],
                    }
                )
                if worker.behaviour == "drop":
                    self.close_connection = True
                    return
                code = 503 if worker.behaviour == "503" else 200
                body = json.dumps({"worker": worker.port}).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                # As dialogd does (api/middleware.py): the id it was given, back.
                self.send_header("X-Request-Id", self.headers.get("X-Request-Id", ""))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.address = f"127.0.0.1:{self.port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
        )
        self.thread.start()

    def ids(self) -> list[str]:
        return [r["headers"].get("x-request-id", "") for r in self.seen]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_nginx(
    nginx: str, render_nginx: ModuleType, run_dir: Path, upstreams: list[str]
) -> Iterator[int]:
    port = _free_port()
    conf = run_dir / "nginx.conf"
    conf.write_text(
        render_nginx.render(
            upstreams,
            listen=f"127.0.0.1:{port}",
            run_dir=run_dir,
            # Every stand-in stays in the rotation (no passive health marking), so
            # round robin reaches each of them in turn.
            params="max_fails=0",
            worker_processes=1,
        )
    )
    process = subprocess.Popen(
        [
            nginx,
            "-p",
            str(run_dir),
            "-e",
            str(run_dir / "error.log"),
            "-c",
            str(conf),
            "-g",
            "daemon off;",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if _request(port, "GET", "/nginx-health")[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                err = process.stderr.read().decode() if process.stderr else ""
                log_file = run_dir / "error.log"
                log = log_file.read_text(errors="replace") if log_file.exists() else ""
                pytest.fail(f"nginx did not start: {err}\n{log}")
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _request(
    port: int, method: str, path: str, body: bytes | None = None, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        head = {k.replace("_", "-"): v for k, v in headers.items()}
        connection.request(method, path, body=body, headers=head)
        response = connection.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        connection.close()


@pytest.mark.e2e
def test_round_robin_request_ids_keepalive_and_body_limit(
    nginx: str, render_nginx: ModuleType, tmp_path: Path
) -> None:
    workers = [Worker(), Worker()]
    try:
        with running_nginx(
            nginx, render_nginx, tmp_path, [w.address for w in workers]
        ) as port:
            answers = []
            for i in range(12):
                headers = {}
                if i % 3 == 0:
                    headers["X_Request_Id"] = f"client-{i}"
                elif i % 3 == 1:
                    headers["X_Request_Id"] = "not a token!"
                # the last one carries a token and a message in its query string
                query = "?token=s3cret&q=my+secret" if i == 11 else ""
                answers.append(
                    _request(
                        port,
                        "POST",
                        f"/conversations/c{i}/parse{query}",
                        b"{}",
                        **headers,
                    )
                )
            too_big = _request(
                port, "POST", "/conversations/x/parse", b"x" * (1024 * 1024 + 1)
            )
    finally:
        for worker in workers:
            worker.close()

    assert [a[0] for a in answers] == [200] * 12
    # Round robin, no stickiness: each worker took half.
    assert [len(w.seen) for w in workers] == [6, 6]
    seen = {r["headers"]["x-request-id"]: r for w in workers for r in w.seen}
    for i, (_, headers, _) in enumerate(answers):
        rid = headers["x-request-id"]
        if i % 3 == 0:
            assert rid == f"client-{i}"  # the client's own id travels through
        else:
            assert re.fullmatch(r"[0-9a-f]{32}", rid)  # nginx's own otherwise
        assert rid in seen
        assert seen[rid]["path"].split("?")[0] == f"/conversations/c{i}/parse"
    for worker in workers:
        for request in worker.seen:
            assert request["version"] == "HTTP/1.1"
            assert "close" not in request["headers"].get("connection", "").lower()
            assert request["headers"]["x-forwarded-for"] == "127.0.0.1"
        # Keep-alive: one nginx worker process reused its connections.
        assert len({r["peer"] for r in worker.seen}) < len(worker.seen)
    # The body limit is nginx's: the oversized request reached no worker.
    assert too_big[0] == 413
    assert sum(len(w.seen) for w in workers) == 12
    # The access log is JSON, with the ids.
    lines = [json.loads(x) for x in (tmp_path / "access.log").read_text().splitlines()]
    parse = [x for x in lines if x["path"] == "/conversations/c0/parse"]
    assert parse and parse[0]["request_id"] == "client-0"
    assert parse[0]["conversation_id"] == "c0"
    assert parse[0]["status"] == 200 and parse[0]["upstream"]
    # Neither a credential nor a message in a query string reaches the log.
    logged = (tmp_path / "access.log").read_text()
    assert "/conversations/c11/parse" in logged
    assert "s3cret" not in logged and "secret" not in logged


@pytest.mark.e2e
def test_a_post_is_never_sent_twice_and_a_get_is_retried(
    nginx: str, render_nginx: ModuleType, tmp_path: Path
) -> None:
    good, dropping, unavailable = Worker(), Worker("drop"), Worker("503")
    workers = [good, dropping, unavailable]
    try:
        with running_nginx(
            nginx, render_nginx, tmp_path, [w.address for w in workers]
        ) as port:
            posts = {
                f"post-{i}": _request(
                    port,
                    "POST",
                    f"/conversations/c{i}/parse",
                    b"{}",
                    X_Request_Id=f"post-{i}",
                )[0]
                for i in range(9)
            }
            gets = {
                f"get-{i}": _request(port, "GET", "/status", X_Request_Id=f"get-{i}")[0]
                for i in range(9)
            }
    finally:
        for worker in workers:
            worker.close()

    # POST: whoever received it answered, nobody else ever saw it.
    for rid, status in posts.items():
        receivers = [w for w in workers if rid in w.ids()]
        assert len(receivers) == 1, (rid, [w.behaviour for w in receivers])
        expected = {"ok": 200, "drop": 502, "503": 503}[receivers[0].behaviour]
        assert status == expected, rid
    assert set(posts.values()) == {200, 502, 503}  # each worker got its turn
    # GET: retried on the next worker until one answered.
    assert set(gets.values()) == {200}
    for rid in gets:
        assert good.ids().count(rid) == 1
    assert any(rid in dropping.ids() for rid in gets)
    assert any(rid in unavailable.ids() for rid in gets)


def _logged(access_log: Path, ids: set[str]) -> dict[str, dict[str, Any]]:
    """The access log's lines by request id, once all of ``ids`` are there. nginx
    logs a request it refused with a body (413) only when the connection's lingering
    close ends, after the client has its answer: so wait, up to 10 s."""
    deadline = time.monotonic() + 10
    while True:
        text = access_log.read_text() if access_log.exists() else ""
        lines = [json.loads(x) for x in text.splitlines()]
        logged = {x["request_id"]: x for x in lines}
        if ids <= logged.keys() or time.monotonic() > deadline:
            return logged
        time.sleep(0.05)


@pytest.mark.e2e
def test_an_error_answer_is_logged_as_the_request_the_client_sent(
    nginx: str, render_nginx: ModuleType, tmp_path: Path
) -> None:
    """nginx's JSON error page is an internal redirect, which makes $uri
    /_dialogd_error and the method GET: a POST that died with its worker was logged
    as `GET /_dialogd_error` with no conversation id (seen in the compose stack's
    replica kill), the very line one looks for."""
    dropping = Worker("drop")
    try:
        with running_nginx(nginx, render_nginx, tmp_path, [dropping.address]) as port:
            died = _request(
                port,
                "POST",
                "/conversations/ada/parse?q=secret",
                b"{}",
                X_Request_Id="d",
            )
            too_big = _request(
                port,
                "POST",
                "/conversations/bob/continue",
                b"x" * (1024 * 1024 + 1),
                X_Request_Id="b",
            )
            logged = _logged(tmp_path / "access.log", {"d", "b"})
    finally:
        dropping.close()
    assert (died[0], too_big[0]) == (502, 413)
    assert [
        (logged[rid]["method"], logged[rid]["path"], logged[rid]["conversation_id"])
        for rid in ("d", "b")
    ] == [
        ("POST", "/conversations/ada/parse", "ada"),
        ("POST", "/conversations/bob/continue", "bob"),
    ]
    assert logged["d"]["status"] == 502 and logged["d"]["upstream"] == dropping.address
    assert "secret" not in (tmp_path / "access.log").read_text()


@pytest.mark.e2e
def test_a_dead_instance_costs_no_request(
    nginx: str, render_nginx: ModuleType, tmp_path: Path
) -> None:
    """Nothing listens on one upstream (an instance killed and not yet back): a
    refused connection sent nothing, so even POSTs go to the next worker."""
    good = Worker()
    dead = f"127.0.0.1:{_free_port()}"
    try:
        with running_nginx(nginx, render_nginx, tmp_path, [good.address, dead]) as port:
            statuses = [
                _request(
                    port,
                    "POST",
                    f"/conversations/c{i}/continue",
                    b"{}",
                    X_Request_Id=f"p{i}",
                )[0]
                for i in range(6)
            ]
    finally:
        good.close()
    assert statuses == [200] * 6
    assert sorted(good.ids()) == sorted(f"p{i}" for i in range(6))


def _raw(port: int, data: bytes) -> tuple[int, list[str], bytes]:
    """Send ``data`` as it is (no client library fixes it up): the status, every
    X-Request-Id header of the answer, and its body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            # nginx refused before reading all of it: the rest resets the
            # connection once the answer is out.
            pass
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    ids = [
        line.split(":", 1)[1].strip()
        for line in lines[1:]
        if line.lower().startswith("x-request-id:")
    ]
    return int(lines[0].split()[1]), ids, body


def _ids(
    port: int, method: str, path: str, body: bytes
) -> tuple[int, list[str], bytes]:
    """As _raw, through http.client (which sends a big body as nginx expects)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body)
        response = connection.getresponse()
        return response.status, response.msg.get_all("X-Request-Id"), response.read()
    finally:
        connection.close()


def test_one_request_id_per_answer_and_json_refusals(
    nginx: str, render_nginx: ModuleType, tmp_path: Path
) -> None:
    """Every answer has ONE X-Request-Id (the worker returns its copy too), and what
    nginx refuses itself is JSON in the API's error shape."""
    worker = Worker()
    dead = f"127.0.0.1:{_free_port()}"
    close = b"Connection: close\r\n"
    try:
        with running_nginx(nginx, render_nginx, tmp_path, [worker.address]) as port:
            ok = _raw(port, b"GET /version HTTP/1.1\r\nHost: x\r\n" + close + b"\r\n")
            own = _raw(
                port,
                b"POST /conversations/a/parse HTTP/1.1\r\nHost: x\r\n"
                b"X-Request-Id: mine-1\r\nContent-Length: 2\r\n" + close + b"\r\n{}",
            )
            refused = {
                "uri": _raw(port, b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n"),
                "header": _raw(
                    port,
                    b"GET /version HTTP/1.1\r\nHost: x\r\nX-Big: "
                    + b"b" * 9000
                    + b"\r\n\r\n",
                ),
                "garbage": _raw(port, b"NOT HTTP\r\n\r\n"),
                "body": _ids(port, "POST", "/conversations/a/parse", b"x" * 1048577),
            }
        with running_nginx(nginx, render_nginx, tmp_path, [dead]) as port:
            refused["no worker"] = _raw(
                port,
                b"POST /conversations/a/parse HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length: 2\r\n" + close + b"\r\n{}",
            )
    finally:
        worker.close()

    assert ok[0] == 200 and len(ok[1]) == 1 and re.fullmatch(r"[0-9a-f]{32}", ok[1][0])
    assert worker.ids()[0] == ok[1][0]  # the id the worker got is the client's
    assert own[0] == 200 and own[1] == ["mine-1"]
    expected = {
        "uri": (414, "URITooLong"),
        "header": (400, "BadRequest"),
        "garbage": (400, "BadRequest"),
        "body": (413, "PayloadTooLarge"),
        "no worker": (502, "BadGateway"),
    }
    for name, (status, ids, body) in refused.items():
        assert (status, len(ids)) == (expected[name][0], 1), name
        error = json.loads(body)
        assert error == {
            "status": "failure",
            "reason": expected[name][1],
            "message": error["message"],
            "details": {},
            "help": None,
            "code": status,
        }, name
        assert error["message"], name
    assert len(worker.seen) == 2  # nothing refused reached the worker
