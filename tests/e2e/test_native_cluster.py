"""The docker-compose topology, natively: one Redis, three instances of 2 workers
each, nginx in front. One instance is SIGKILLed in the middle of the load and
restarted; every acknowledged turn must be in Redis exactly once."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import requests

from api.testing import Server
from api.testing import free_port
from tests.data import ROOT
from trackerstore import EmbeddedRedis
from trackerstore import RedisStore

NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)),
    None,
)
REDIS = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(
    NGINX is None or REDIS is None,
    reason="native cluster test skipped: it needs nginx and redis-server "
    "(apt-get install nginx redis-server; .ci/run installs them)",
)
CLIENTS = 12
LOAD_SECONDS = 9.0


def render_nginx(upstreams: list[str], listen: str, run_dir: Path) -> str:
    spec = importlib.util.spec_from_file_location(
        "render_nginx", ROOT / "deploy" / "render_nginx.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.render(upstreams, listen=listen, run_dir=run_dir)


class Client(threading.Thread):
    """Plays conversations through the load balancer, remembering what was acked."""

    def __init__(self, url: str, stop: threading.Event):
        super().__init__(daemon=True)
        self.url, self.stop = url, stop
        self.acked: dict[str, list[tuple[str, str]]] = {}
        self.errors = 0
        self.requests = 0

    def post(self, session: requests.Session, path: str, body: dict) -> dict | None:
        self.requests += 1
        try:
            r = session.post(self.url + path, json=body, timeout=15)
        except requests.RequestException:
            self.errors += 1
            return None
        if r.status_code != 200:
            self.errors += 1
            return None
        return r.json()

    def run(self) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            cid = f"nc-{uuid.uuid4().hex[:12]}"
            acked = self.acked.setdefault(cid, [])
            for turn in range(6):
                text = f"hello there {cid} {turn}"
                reply = self.post(
                    session, f"/conversations/{cid}/parse", {"query": text}
                )
                if reply is None:
                    continue
                acked.append(("user", text))
                action = reply["next_action"]
                while action and action != "action_listen":
                    said = f"{action} for {cid} {turn}"
                    reply = self.post(
                        session,
                        f"/conversations/{cid}/continue",
                        {
                            "executed_action": action,
                            "events": [{"event": "bot", "text": said}],
                        },
                    )
                    if reply is None:
                        break
                    acked.append(("bot", said))
                    action = reply["next_action"]


def test_an_instance_killed_mid_load_loses_nothing_acknowledged(
    moodbot_model, tmp_path
):
    prefix = f"nc:{uuid.uuid4().hex[:8]}:"
    redis_dir = tmp_path / "redis"
    with EmbeddedRedis(redis_dir, port=free_port()) as redis_server:
        instances = [
            Server(moodbot_model, redis_server.url, prefix, tmp_path, nlu=True)
            for _ in range(3)
        ]
        lb_dir = tmp_path / "lb"
        lb_dir.mkdir()
        port = free_port()
        (lb_dir / "nginx.conf").write_text(
            render_nginx(
                [f"127.0.0.1:{s.port}" for s in instances], f"127.0.0.1:{port}", lb_dir
            )
        )
        nginx = None
        try:
            for server in instances:
                server.start()
            nginx = subprocess.Popen(
                [
                    NGINX,
                    "-p",
                    str(lb_dir),
                    "-e",
                    str(lb_dir / "error.log"),
                    "-c",
                    str(lb_dir / "nginx.conf"),
                    "-g",
                    "daemon off;",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 20
            while True:
                try:
                    if requests.get(url + "/status", timeout=1).ok:
                        break
                except requests.ConnectionError:
                    assert time.monotonic() < deadline, (
                        lb_dir / "error.log"
                    ).read_text()
                    time.sleep(0.1)

            stop = threading.Event()
            clients = [Client(url, stop) for _ in range(CLIENTS)]
            for client in clients:
                client.start()
            time.sleep(LOAD_SECONDS / 3)
            victim = instances[1]
            os.killpg(victim.proc.pid, signal.SIGKILL)  # master and workers at once
            victim.proc.wait()
            time.sleep(LOAD_SECONDS / 6)
            victim.start()
            time.sleep(LOAD_SECONDS / 2)
            stop.set()
            for client in clients:
                client.join(30)
        finally:
            if nginx is not None:
                nginx.terminate()
                nginx.wait(10)
            for server in instances:
                server.stop()

        store = RedisStore(redis_server.url, prefix=prefix)
        requests_made = sum(c.requests for c in clients)
        errors = sum(c.errors for c in clients)
        print(f"native cluster: {requests_made} requests, {errors} failed")
        assert requests_made > 500, "the load never got going"
        # only the requests in flight on the killed instance may fail: one per client
        assert errors <= CLIENTS, f"{errors} errors in {requests_made} requests"
        for client in clients:
            for cid, acked in client.acked.items():
                log = store.read_log(cid)
                stored = [
                    (e["event"], e["text"])
                    for e in log
                    if e["event"] in ("user", "bot")
                ]
                counts = Counter(stored)
                assert all(n == 1 for n in counts.values()), f"duplicated in {cid}"
                assert all(counts[item] == 1 for item in acked), f"lost in {cid}"
                in_log_order = [item for item in stored if item in set(acked)]
                assert in_log_order == acked, f"reordered in {cid}"
                assert log[0]["event"] == "action" and log[0]["name"] == "action_listen"
