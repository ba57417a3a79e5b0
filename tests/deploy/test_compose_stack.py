"""The compose stack for real: the image built from deploy/Dockerfile and
docker-compose.yml as shipped (only nginx's published port moved to a free one on
127.0.0.1), on a container engine. A conversation and POST /train through nginx; a
replica killed under load; 3 -> 5 -> 3 replicas under load; a rolling restart under
load; one X-Request-Id in every answer.

It runs where `docker` answers (DOCKER_HOST, and DOCKER_CONFIG for the compose v2
plugin) and holds the images; elsewhere it skips, saying what is missing. It never
builds: `docker compose build` (or, without a registry,
/work/shared/tools/containers/procedure.sh) makes dialogd:local first. About four
minutes, most of it the stack starting (training the example bot) and the waits for
nginx to follow the replicas.

    pytest -m compose -s tests/deploy/test_compose_stack.py   # -s shows the figures
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.data import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.compose]

IMAGES = ("dialogd:local", "redis:7-alpine", "nginx:1.27-alpine")
RESOLVE_EVERY = 10  # `resolver ... valid=10s` in deploy/nginx.conf
CLIENTS = 6
SCALE = ("up", "-d", "--no-deps", "--no-recreate")
TINY_NLU = {
    "rasa_nlu_data": {
        "common_examples": [
            {"text": text, "intent": intent, "entities": []}
            for intent, texts in {
                "greet": ["hello", "hi there", "good morning"],
                "restaurant_search": [
                    "show me indian food",
                    "i want a chinese restaurant",
                    "find me a place to eat",
                ],
                "goodbye": ["bye", "see you later"],
            }.items()
            for text in texts
        ]
    }
}


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def _missing() -> str | None:
    """Why the stack cannot run here, or None."""
    if shutil.which("docker") is None:
        return "no docker CLI"
    try:
        if _run("docker", "compose", "version").returncode != 0:
            return "no `docker compose` (v2 plugin; DOCKER_CONFIG may name its folder)"
        info = _run("docker", "info", "--format", "{{.ServerVersion}}", timeout=20)
    except subprocess.TimeoutExpired:
        return "the container engine does not answer"
    if info.returncode != 0:
        host = os.environ.get("DOCKER_HOST", "the default socket")
        return f"no container engine answers at {host}"
    absent = [i for i in IMAGES if _run("docker", "image", "inspect", i).returncode]
    if absent:
        return (
            f"image(s) {', '.join(absent)} not here: `docker compose build` (or, "
            "without a registry, shared/tools/containers/procedure.sh ... build "
            "docker-up) first; this test never builds"
        )
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    """One compose project of the repository's docker-compose.yml."""

    def __init__(self, workdir: Path):
        self.project = f"dialogd-e2e-{uuid.uuid4().hex[:8]}"
        self.port = _free_port()
        override = workdir / "compose.override.yml"
        # `!override` (compose 2.24+) replaces the published port instead of adding
        # one: the test must not need the host's 5005.
        override.write_text(
            "services:\n  nginx:\n    ports: !override\n"
            f'      - "127.0.0.1:{self.port}:5005"\n'
        )
        self.compose = [
            "docker",
            "compose",
            "-p",
            self.project,
            "--project-directory",
            str(ROOT),
            "-f",
            str(ROOT / "docker-compose.yml"),
            "-f",
            str(override),
        ]
        # One worker per replica: 5 replicas on a small machine.
        self.env = {**os.environ, "DIALOGD_WORKERS": "1"}

    def __call__(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run(
            [*self.compose, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
        )
        assert done.returncode == 0, f"compose {args}: {done.stderr[-2000:]}"
        return done.stdout

    def replicas(self) -> list[str]:
        return self("ps", "-q", "dialogd").split()

    def container(self, service: str, index: int) -> str:
        return f"{self.project}-{service}-{index}"

    def wait_healthy(self, container: str, within: float = 120) -> None:
        deadline = time.monotonic() + within
        while True:
            state = _run(
                "docker", "inspect", "-f", "{{.State.Health.Status}}", container
            ).stdout.strip()
            if state == "healthy":
                return
            assert time.monotonic() < deadline, f"{container}: {state}"
            time.sleep(1)

    def nginx_log(self, since: str) -> list[dict]:
        out = _run(
            "docker", "logs", "--since", since, self.container("nginx", 1)
        ).stdout
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def request(
    port: int, method: str, path: str, body: dict | None = None
) -> tuple[int, list[str], bytes]:
    """Status, every X-Request-Id header, body (http.client keeps duplicates)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data else {}
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        ids = response.msg.get_all("X-Request-Id") or []
        return response.status, ids, response.read()
    finally:
        connection.close()


class Load:
    """CLIENTS threads sending parse turns through nginx on kept-alive connections,
    counting every answer by status and every answer without exactly one id."""

    def __init__(self, port: int):
        self.port = port
        self.stop = threading.Event()
        self.statuses: Counter[int | str] = Counter()
        self.bad_ids = 0
        self.failures: list[tuple[float, int | str, bytes]] = []
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True)
            for n in range(CLIENTS)
        ]

    def _run(self, n: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        turn = 0
        while not self.stop.is_set():
            turn += 1
            path = f"/conversations/load-{n}-{turn % 50}/parse"
            body = json.dumps({"query": ("hello there", "I am very sad")[turn % 2]})
            try:
                connection.request(
                    "POST",
                    path,
                    body=body,
                    headers={"Content-Type": "application/json"},
                )
                response = connection.getresponse()
                status: int | str = response.status
                ids = response.msg.get_all("X-Request-Id") or []
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                status, ids, data = type(exc).__name__, [""], b""
            with self.lock:
                self.statuses[status] += 1
                self.bad_ids += len(ids) != 1
                if status != 200:
                    self.failures.append((time.monotonic(), status, data[:300]))

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    @property
    def failed(self) -> int:
        return self.total - self.statuses[200]


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    reason = _missing()
    if reason:
        pytest.skip(f"compose stack test skipped: {reason}")
    s = Stack(tmp_path_factory.mktemp("compose"))
    try:
        # Not `up --wait`: it refuses the services without a healthcheck.
        s("up", "-d", timeout=460)
        for index in (1, 2, 3):
            s.wait_healthy(s.container("dialogd", index), within=400)
        s.wait_healthy(s.container("nginx", 1))
        yield s
    finally:
        subprocess.run(
            [*s.compose, "down", "-v", "--timeout", "30"],
            capture_output=True,
            timeout=180,
            env=s.env,
        )


def test_a_conversation_and_training_through_nginx(stack: Stack) -> None:
    port, cid = stack.port, f"smoke-{uuid.uuid4().hex[:8]}"
    answers = [
        request(port, "GET", "/status"),
        request(port, "POST", f"/conversations/{cid}/parse", {"query": "hello there"}),
        request(
            port,
            "POST",
            f"/conversations/{cid}/continue",
            {
                "executed_action": "utter_greet",
                "events": [{"event": "bot", "text": "Hey! How are you?"}],
            },
        ),
        request(port, "POST", f"/conversations/{cid}/parse", {"query": "I am sad"}),
        request(port, "GET", f"/conversations/{cid}/tracker?include_events=ALL"),
        request(port, "POST", "/train?name=tiny", TINY_NLU),
        request(port, "GET", "/parse?q=show%20me%20indian%20food&model=tiny"),
        request(port, "GET", "/conversations/x/tracker?" + "a" * 20_000),
    ]
    assert [a[0] for a in answers] == [200] * 7 + [414], answers
    for status, ids, _ in answers:
        assert len(ids) == 1, (status, ids)  # one X-Request-Id, never two
    bodies = [json.loads(a[2]) for a in answers]
    assert bodies[1]["next_action"] == "utter_greet"
    assert bodies[2]["next_action"] == "action_listen"
    assert bodies[3]["next_action"] == "utter_cheer_up"
    assert len(bodies[4]["events"]) == 6
    assert bodies[6]["intent"]["name"] == "restaurant_search"
    assert bodies[7]["reason"] == "URITooLong" and bodies[7]["code"] == 414


def test_a_replica_killed_under_load(stack: Stack) -> None:
    """SIGKILL: what that replica held in flight is lost (a POST is never sent
    twice: 502), nothing else."""
    victim = stack.container("dialogd", 2)
    since = _utc_now()
    with Load(stack.port) as load:
        time.sleep(4)
        _run("docker", "kill", victim)
        time.sleep(8)
    _run("docker", "start", victim)
    stack.wait_healthy(victim)
    print(
        f"\ncompose kill: {load.total} requests, {load.failed} failed "
        f"{dict(load.statuses)}, answers without one X-Request-Id: {load.bad_ids}"
    )
    assert load.total > 100, "the load never got going"
    assert load.bad_ids == 0
    assert load.failed <= CLIENTS, load.failures  # at most one in flight per client
    assert set(load.statuses) <= {200, 502}, load.failures
    for _, _, body in load.failures:
        assert json.loads(body)["reason"] == "BadGateway"
    # nginx logs each lost turn as the client sent it (not as its error page).
    lost = [e for e in stack.nginx_log(since) if e["status"] == 502]
    assert len(lost) == load.failed, lost
    for entry in lost:
        assert entry["method"] == "POST", entry
        assert entry["path"] == f"/conversations/{entry['conversation_id']}/parse"
        assert entry["conversation_id"].startswith("load-"), entry


def test_scaling_3_5_3_under_load_costs_nothing(stack: Stack) -> None:
    since = _utc_now()
    with Load(stack.port) as load:
        time.sleep(2)
        stack(*SCALE, "--scale", "dialogd=5", "dialogd")
        for index in (4, 5):
            stack.wait_healthy(stack.container("dialogd", index))
        time.sleep(RESOLVE_EVERY + 4)  # nginx resolves `dialogd` again
        at_five = {e["upstream"] for e in stack.nginx_log(since) if e["upstream"]}
        stack(*SCALE, "--scale", "dialogd=3", "dialogd")
        # the removed replicas' addresses stay in nginx until it resolves again
        time.sleep(RESOLVE_EVERY + 6)
    # A second pass (" : " in the upstreams) is location @dialogd_again: a request
    # that found "no live upstreams" while nginx followed the new set of replicas.
    again = [e for e in stack.nginx_log(since) if " : " in e["upstream"]]
    print(
        f"\ncompose scale 3->5->3: {load.total} requests, {load.failed} failed "
        f"{dict(load.statuses)}, upstreams seen: {len(at_five)}, passed again "
        f"after 'no live upstreams': {[e['status'] for e in again]}, "
        f"answers without one X-Request-Id: {load.bad_ids}"
    )
    assert len(stack.replicas()) == 3
    assert len(at_five) >= 5, at_five  # nginx followed the scale-up
    assert load.total > 100, "the load never got going"
    assert (load.failed, load.bad_ids) == (0, 0), load.failures


def test_a_rolling_restart_under_load_costs_nothing(stack: Stack) -> None:
    """deploy/rolling-restart.sh, the documented way to restart the replicas."""
    env = {
        **stack.env,
        "COMPOSE": " ".join(stack.compose),
        "SETTLE": str(RESOLVE_EVERY + 1),
    }
    with Load(stack.port) as load:
        time.sleep(2)
        done = subprocess.run(
            [str(ROOT / "deploy" / "rolling-restart.sh")],
            capture_output=True,
            text=True,
            timeout=400,
            env=env,
        )
    print(
        f"\ncompose rolling restart: {load.total} requests, {load.failed} failed "
        f"{dict(load.statuses)}, answers without one X-Request-Id: {load.bad_ids}\n"
        + done.stdout
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("healthy again") == 3
    assert load.total > 100, "the load never got going"
    assert (load.failed, load.bad_ids) == (0, 0), load.failures
