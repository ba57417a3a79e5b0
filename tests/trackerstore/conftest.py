"""Private Redis Cluster and Sentinel deployments for the store conformance tests."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.sentinel import Sentinel

from trackerstore.embedded import redis_server_binary


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    rng = random.Random()
    while True:
        port = rng.randint(20000, 45000)
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port


def _redis_cli() -> str | None:
    found = shutil.which("redis-cli")
    if found:
        return found
    bundled = Path(redis_server_binary()).with_name("redis-cli")
    return str(bundled) if bundled.exists() else None


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [redis_server_binary(), *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait(check, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except redis.RedisError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up in {timeout} s")


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real three-master Redis Cluster on 127.0.0.1."""
    cli = _redis_cli()
    if cli is None:
        pytest.skip("redis-cli is not installed: cannot create a Redis Cluster")
    work = tmp_path_factory.mktemp("cluster")
    ports = [_cluster_port() for _ in range(3)]
    procs = [
        _start(
            [
                "--port",
                str(p),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                f"nodes-{p}.conf",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            work,
        )
        for p in ports
    ]
    try:
        for p in ports:
            _wait(lambda p=p: redis.Redis(port=p).ping(), f"node {p}")
        subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        for p in ports:
            _wait(
                lambda p=p: (
                    redis.Redis(port=p).execute_command("CLUSTER INFO")["cluster_state"]
                    == "ok"
                ),
                f"cluster state on {p}",
            )
        yield f"redis+cluster://127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}"
    finally:
        _stop(procs)


@pytest.fixture(scope="session")
def sentinel_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A master watched by one Sentinel; clients find the master through it."""
    work = tmp_path_factory.mktemp("sentinel")
    master, sentinel = _free_port(), _free_port()
    conf = work / "sentinel.conf"
    conf.write_text(
        f"port {sentinel}\nbind 127.0.0.1\nsentinel monitor main 127.0.0.1 {master} 1\n"
    )
    procs = [_start(["--port", str(master), "--bind", "127.0.0.1", "--save", ""], work)]
    try:
        _wait(lambda: redis.Redis(port=master).ping(), "master")
        procs.append(_start([str(conf), "--sentinel"], work))
        _wait(
            lambda: Sentinel([("127.0.0.1", sentinel)]).discover_master("main"),
            "sentinel",
        )
        yield f"redis+sentinel://127.0.0.1:{sentinel}/main/0"
    finally:
        _stop(procs)


@pytest.fixture(scope="session")
def tls_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis that speaks only TLS, with a self-signed certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make a certificate")
    work = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        cwd=work,
        check=True,
        capture_output=True,
        timeout=60,
    )
    port = _free_port()
    proc = subprocess.Popen(
        [
            redis_server_binary(),
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--tls-cert-file",
            "cert.pem",
            "--tls-key-file",
            "key.pem",
            "--tls-ca-cert-file",
            "cert.pem",
            "--tls-auth-clients",
            "no",
            "--save",
            "",
        ],
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={work / 'cert.pem'}"
    try:
        try:
            _wait(lambda: redis.Redis.from_url(url).ping(), "TLS Redis", 10)
        except RuntimeError:
            if proc.poll() is not None:
                output = proc.stdout.read().decode(errors="replace")[-300:]
                pytest.skip(f"this redis-server has no TLS: {output}")
            raise
        yield url
    finally:
        _stop([proc])
