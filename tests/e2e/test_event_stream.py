"""The event stream of a real server under load, across SIGKILLs: the stream holds
every logged event once, in log order; the example consumer's PostgreSQL table
ends up equal to the logs in Redis."""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from api.testing import Server
from api.testing import free_port
from bench.event_stream import GroupReader
from bench.event_stream import compare
from bench.event_stream import load
from bench.event_stream import worker_pids
from tests.data import ROOT
from trackerstore import RedisStore
from trackerstore.stream import Entry
from trackerstore.stream import EventStream
from trackerstore.stream import StreamConfig

CONSUMER = ROOT / "examples" / "event_consumer" / "postgres_consumer.py"


def test_the_stream_is_the_logs_across_a_killed_worker(
    moodbot_model, redis_url, tmp_path
) -> None:
    prefix = "stream1:"
    stream = EventStream(redis_url, prefix=prefix)
    reader = GroupReader(stream, "test")
    reader.start()
    with Server(
        moodbot_model,
        redis_url,
        prefix,
        tmp_path,
        nlu=True,
        workers=2,
        extra=["--event-stream"],
    ) as server:
        killed = []

        def kill_a_worker() -> None:
            killed.append(worker_pids(server)[0])
            os.kill(killed[0], signal.SIGKILL)

        load(server.url, 300, 6, 20, kill_a_worker)
    reader.stop.set()
    reader.join()
    assert killed
    result = compare(RedisStore(redis_url, prefix=prefix), reader.got)
    assert result["problems"] == []
    assert result["conversations"] == 20
    assert result["events_streamed"] == result["events_logged"] > 300 * 3


def _postgres_bin() -> Path | None:
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(folder) / "initdb").exists():
            return Path(folder)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A PostgreSQL server of our own on a free port: its DSN."""
    binaries = _postgres_bin()
    if binaries is None:
        pytest.skip(
            "no PostgreSQL server binaries (apt-get install postgresql): the "
            "example consumer is not run"
        )
    user: dict = {}
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root without a 'postgres' user to run PostgreSQL")
        user = {"user": "postgres", "group": "postgres", "extra_groups": []}
    work = Path(tempfile.mkdtemp(prefix="dialogd-pg-"))
    if user:
        shutil.chown(work, "postgres", "postgres")
    port = free_port()
    subprocess.run(
        [binaries / "initdb", "-D", work / "data", "-A", "trust", "-U", "dialogd"],
        check=True,
        capture_output=True,
        **user,
    )
    proc = subprocess.Popen(
        [
            binaries / "postgres",
            "-D",
            work / "data",
            "-p",
            str(port),
            "-k",
            work,
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(work / "log").open("wb"),
        **user,
    )
    dsn = f"postgresql://dialogd@127.0.0.1:{port}/postgres"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(dsn).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        yield dsn
    finally:
        proc.send_signal(signal.SIGINT)  # fast shutdown
        proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)


def _consumer(redis_url: str, prefix: str, dsn: str, name: str, *extra: str):
    return subprocess.Popen(
        [
            sys.executable,
            str(CONSUMER),
            "--redis-url",
            redis_url,
            "--key-prefix",
            prefix,
            "--dsn",
            dsn,
            "--consumer",
            name,
            "--batch",
            "50",
            "--block-ms",
            "100",
            "--claim-idle-ms",
            "500",
            *extra,
        ],
        cwd=ROOT,
    )


def test_the_postgres_consumer_stores_each_event_once(
    moodbot_model, redis_url, postgres, tmp_path
) -> None:
    prefix = "stream2:"
    consumers = {
        name: _consumer(redis_url, prefix, postgres, name) for name in ("a", "b")
    }
    try:
        with Server(
            moodbot_model,
            redis_url,
            prefix,
            tmp_path,
            nlu=True,
            workers=2,
            extra=["--event-stream"],
        ) as server:

            def kill_a_worker_and_a_consumer() -> None:
                os.kill(worker_pids(server)[0], signal.SIGKILL)
                consumers["a"].kill()  # likely holding a batch not acknowledged
                consumers["a"].wait()

            load(server.url, 300, 6, 20, kill_a_worker_and_a_consumer)
        # "b" takes over what "a" held once it is idle, or "a", started again
        # under its name, applies what it was given first
        consumers["a"] = _consumer(redis_url, prefix, postgres, "a", "--exit-when-idle")
        assert consumers["a"].wait(60) == 0
        stream = EventStream(redis_url, prefix=prefix)
        last = stream._redis.xrevrange(stream.key, count=1)[0][0]

        def drained() -> bool:
            (group,) = stream._redis.xinfo_groups(stream.key)
            return group["pending"] == 0 and group["last-delivered-id"] == last

        deadline = time.monotonic() + 60
        while not drained():
            assert time.monotonic() < deadline, "the consumers did not catch up"
            time.sleep(0.2)
        consumers["b"].terminate()
        assert consumers["b"].wait(30) == 0  # a clean stop on SIGTERM
    finally:
        for proc in consumers.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    store = RedisStore(redis_url, prefix=prefix)
    logs = {cid: store.read_log(cid) for cid in store.conversation_ids()}
    with psycopg.connect(postgres) as db:
        (rows,) = db.execute("SELECT count(*) FROM dialogd_events").fetchone()
        stored: dict[str, list] = {}
        for sender, data in db.execute(
            "SELECT sender_id, data FROM dialogd_events ORDER BY sender_id, seq"
        ):
            data.pop("sender_id")
            stored.setdefault(sender, []).append(data)
    assert rows == sum(len(log) for log in logs.values()) > 300 * 3
    assert stored == logs


def test_a_replace_is_applied_by_the_consumer(redis_url, postgres) -> None:
    prefix = "stream3:"
    store = RedisStore(redis_url, prefix=prefix, stream=StreamConfig())
    event = {"event": "user", "timestamp": 1.0, "text": "x"}
    version = store.append("r", [event, event, event], 0, {})
    store.replace("r", [{**event, "text": "y"}], {}, version)
    proc = _consumer(redis_url, prefix, postgres, "solo", "--exit-when-idle")
    assert proc.wait(60) == 0
    with psycopg.connect(postgres) as db:
        rows = db.execute(
            "SELECT seq, data->>'text' FROM dialogd_events WHERE sender_id = 'r'"
        ).fetchall()
    assert rows == [(0, "y")]


def _example_consumer():
    spec = importlib.util.spec_from_file_location("postgres_consumer", CONSUMER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_applying_again_or_late_changes_nothing(postgres) -> None:
    consumer = _example_consumer()

    def event(entry_id: str, seq: int, text: str) -> Entry:
        body = {"sender_id": "late", "event": "user", "timestamp": 1.0, "text": text}
        return Entry(entry_id, "event", "late", seq, body)

    def texts(db) -> list:
        return db.execute(
            "SELECT seq, data->>'text' FROM dialogd_events "
            "WHERE sender_id = 'late' ORDER BY seq"
        ).fetchall()

    old = [event("1-0", 0, "a"), event("1-1", 1, "b"), event("1-2", 2, "c")]
    with psycopg.connect(postgres, autocommit=True) as db:
        db.execute(consumer.SCHEMA)
        consumer.apply(db, old)
        consumer.apply(db, old)  # redelivered after a crash before XACK
        assert texts(db) == [(0, "a"), (1, "b"), (2, "c")]
        # the log was replaced by one event; a consumer applies that first...
        consumer.apply(db, [Entry("2-0", "reset", "late"), event("2-1", 0, "z")])
        # ...and another one an old batch it had claimed, late
        consumer.apply(db, old[1:])
        consumer.apply(db, [Entry("0-5", "trimmed", "")])
        assert texts(db) == [(0, "z")]
