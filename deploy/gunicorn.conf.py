"""gunicorn settings for dialogd; ``dialogd serve`` loads this file, then applies its
command-line flags (``--port``, ``--host``, ``--workers``, ``-o``) on top.

Every value can also be set from the environment, which is how the Docker image and
the Kubernetes manifests tune it (docs/operations.md lists the variables):

- ``DIALOGD_WORKERS``: worker processes (default: the usable CPUs)
- ``DIALOGD_THREADS``: threads per worker (2)
- ``DIALOGD_TIMEOUT``: seconds before a silent worker is replaced (30)
- ``DIALOGD_GRACEFUL_TIMEOUT``: seconds SIGTERM waits for in-flight requests (20)
- ``DIALOGD_KEEPALIVE``: seconds an idle keep-alive connection is kept (75)
- ``DIALOGD_BIND``: address, for a plain ``gunicorn -c`` only (0.0.0.0:5005)
- ``DIALOGD_LOG_LEVEL``: error log level (info)
- ``DIALOGD_ACCESS_LOG``: access log file, ``-`` for stdout (off)
- ``DIALOGD_ACCESS_LOG_FORMAT``: access log template (the JSON below)
- ``DIALOGD_WORKER_TMP_DIR``: the workers' heartbeat files (/dev/shm)

The file is plain Python run once in the gunicorn master; a module-level name that is
a gunicorn setting becomes that setting, so helpers here are named to avoid that.
"""

import contextlib
import json
import math
import os
import re
import time
from pathlib import Path

from gunicorn import glogging
from gunicorn.workers.gthread import ThreadWorker

from api.http_errors import JsonErrors


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def _cgroup_cpu_quota(root: str = "/sys/fs/cgroup") -> float | None:
    """The CPU limit of this container (``docker --cpus``, a Kubernetes
    ``limits.cpu``) in CPUs, or None when there is none."""
    base = Path(root)
    try:  # cgroup v2: "max 100000" or "150000 100000"
        quota, period = (base / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:  # cgroup v1
        quota = int((base / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((base / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def available_cpus(cgroup_root: str = "/sys/fs/cgroup") -> int:
    """CPUs this process may really use: its affinity mask (``--cpuset-cpus``),
    lowered to the cgroup quota, rounded up. ``os.cpu_count()`` alone would count
    every core of the node a container runs on."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    quota = _cgroup_cpu_quota(cgroup_root)
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)


# --- Processes ----------------------------------------------------------------------


class DrainingThreadWorker(JsonErrors, ThreadWorker):
    """gunicorn's gthread worker that stops listening as soon as SIGTERM arrives.

    The stock worker only stops *accepting* and keeps its listening socket open until
    it exits, so the kernel goes on completing connections into the backlog during
    the whole graceful shutdown; nobody accepts them, and when the worker exits they
    are reset, after the load balancer has already sent a request on them. nginx
    cannot resend such a request if it is a POST: the client gets a 502 although the
    request never reached dialogd. Closing the listening socket at once (the master
    has closed its copy already) makes new connections fail to connect instead,
    which nginx retries on another instance for every method. In-flight requests,
    and requests on kept-alive connections, are still served as before.

    Only this process's file descriptor is closed: on SIGHUP or TTOU, where the
    master stops some workers and keeps serving, the master and the other workers
    keep the socket open. On a gunicorn without the pieces used here it behaves as
    the stock worker. What gunicorn refuses itself is answered in JSON
    (``api.http_errors``).
    """

    def handle_exit(self, sig, frame) -> None:
        was_alive = self.alive
        super().handle_exit(sig, frame)
        queue = getattr(self, "method_queue", None)
        if was_alive and queue is not None and hasattr(self, "set_accept_enabled"):
            # Not in the signal handler: in the main loop, between two events.
            queue.defer(self._stop_listening)

    def _stop_listening(self) -> None:
        self.set_accept_enabled(False)
        for listener in self.sockets:
            listener.close()

    def accept(self, listener) -> None:
        # A listener closed above may still be in the batch of ready events.
        if getattr(listener, "sock", True) is not None:
            super().accept(listener)


# NOTE: a turn is CPU work (NLU + policy, numpy) plus two Redis round trips, so one
# process per usable core is the base; two threads per process overlap one request's
# Redis wait with another's CPU work and let the load balancer keep connections alive
# (sync workers cannot). More processes than cores only adds context switches.
workers = _env_int("DIALOGD_WORKERS", available_cpus())
worker_class = DrainingThreadWorker
threads = _env_int("DIALOGD_THREADS", 2)

# NOTE: ``dialogd serve`` loads the model and builds the app in the master before
# gunicorn starts, so workers share the model's arrays copy-on-write and a new worker
# (first start, or a replacement after a crash) answers at once. preload_app says the
# same to gunicorn; it also means SIGHUP restarts the workers with the same model:
# to change the model, restart the process (roll the pods).
preload_app = True

# Only for a plain ``gunicorn -c deploy/gunicorn.conf.py``: ``dialogd serve`` always
# binds to its --host/--port.
bind = os.environ.get("DIALOGD_BIND", "0.0.0.0:5005")
backlog = 2048

# Idle keep-alive connections are kept this long. NOTE: it must be LONGER than the
# load balancer's idle timeout towards us (nginx: ``keepalive_timeout 60s`` in the
# upstream block): if we closed first, nginx could send a request on a connection we
# are closing, and a POST that failed that way is not retried (it is not idempotent).
keepalive = _env_int("DIALOGD_KEEPALIVE", 75)

# A turn takes milliseconds; a worker that has not notified the master for this long is
# stuck and gets killed and replaced (the load balancer's read timeout is above it).
timeout = _env_int("DIALOGD_TIMEOUT", 30)

# Graceful shutdown. SIGTERM (docker stop, Kubernetes) makes the master stop accepting
# and tell its workers to finish the requests they hold for up to graceful_timeout
# seconds, then exit; only what is still running after that is killed. Whoever sends
# SIGTERM must wait longer than this before SIGKILL: compose ``stop_grace_period: 30s``
# and Kubernetes ``terminationGracePeriodSeconds: 45`` (10 s preStop + 20 s + margin).
graceful_timeout = _env_int("DIALOGD_GRACEFUL_TIMEOUT", 20)

# Bounded request line and headers; bodies are bounded by the app (--max-body) and by
# nginx (client_max_body_size).
limit_request_line = 8190
limit_request_fields = 100

# The workers' heartbeat files: on tmpfs, so a slow or read-only disk (Kubernetes
# readOnlyRootFilesystem) can neither block nor break them.
_tmp_dir = os.environ.get("DIALOGD_WORKER_TMP_DIR", "/dev/shm")
worker_tmp_dir = (
    _tmp_dir if os.path.isdir(_tmp_dir) and os.access(_tmp_dir, os.W_OK) else None
)


# --- Logs ---------------------------------------------------------------------------
# The error log goes to stderr (``-o FILE`` moves it). The access log is off unless
# DIALOGD_ACCESS_LOG names a file or ``-`` (stdout; the image turns it on; ``dialogd
# serve --access-log`` too): one JSON object per line, with the request id (the
# X-Request-Id that nginx or the client sent, else the one dialogd made up: it is read
# from the response) and the conversation id, so one turn can be followed from the
# load balancer to Redis.
errorlog = "-"
loglevel = os.environ.get("DIALOGD_LOG_LEVEL", "info")
accesslog = os.environ.get("DIALOGD_ACCESS_LOG") or None
access_log_format = os.environ.get("DIALOGD_ACCESS_LOG_FORMAT") or (
    '{"time": "%(time)s", "remote": "%(h)s", '
    '"forwarded_for": "%({x-forwarded-for}i)s", "request_id": "%({x-request-id}o)s", '
    '"method": "%(m)s", "path": "%(U)s", '
    '"query": "%(q)s", "status": %(s)s, "bytes": %(bytes)s, "duration_us": %(D)s, '
    '"conversation_id": "%(conversation_id)s", "pid": %(pid)s}'
)

_CONVERSATION_PATH = re.compile(r"^/conversations?/([^/]+)/")


def _json_text(value: str) -> str:
    """``value`` escaped to sit between double quotes in JSON."""
    return json.dumps(value, ensure_ascii=False)[1:-1]


class JsonAtoms(glogging.SafeAtoms):
    """gunicorn's atoms, every string escaped for JSON (gunicorn's own escaping only
    handles double quotes, so a backslash or a control character in a path or a header
    would break the line). A missing header is still ``-``."""

    def __init__(self, atoms: dict) -> None:
        dict.__init__(self)
        for key, value in atoms.items():
            self[key] = _json_text(value) if isinstance(value, str) else value


class JsonAccessLogger(glogging.Logger):
    """gunicorn's logger with JSON-safe atoms, the path (``U``) as UTF-8, and four more
    atoms: ``time`` (ISO 8601, UTC, milliseconds), ``bytes`` (always a number),
    ``pid`` and ``conversation_id``."""

    atoms_wrapper_class = JsonAtoms

    def _compute_access_log_enabled(self) -> bool:
        # NOTE: gunicorn counts a ``logconfig_dict`` as "access log on", and
        # ``dialogd serve`` always passes one (for the JSON error log); the access log
        # is on only when ``accesslog`` names a destination. Otherwise every request
        # would build its atoms for nothing (~4% of a turn's CPU).
        return bool(self.cfg.accesslog)

    def atoms(self, resp, req, environ, request_time) -> dict:
        atoms = super().atoms(resp, req, environ, request_time)
        now = time.time()
        atoms["time"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + (
            f".{int(now % 1 * 1000):03d}Z"
        )
        sent = getattr(resp, "sent", None)
        atoms["bytes"] = sent if isinstance(sent, int) else 0
        atoms["pid"] = os.getpid()
        # WSGI hands the path over as latin-1 text of the raw bytes: log it as UTF-8.
        path = environ.get("PATH_INFO") or ""
        with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
            path = path.encode("latin-1").decode("utf-8")
        atoms["U"] = path
        match = _CONVERSATION_PATH.match(path)
        atoms["conversation_id"] = match.group(1) if match else ""
        return atoms


logger_class = JsonAccessLogger
