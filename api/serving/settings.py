"""gunicorn's settings for ``dialogd serve``; its command-line flags (``--port``,
``--host``, ``--workers``, ``-o``, ``--access-log``) are applied on top.

Every value can also be set from the environment, which is how the Docker image and
the Kubernetes manifests tune it (docs/operations.md lists the variables):

- ``DIALOGD_WORKERS``: worker processes (default: the usable CPUs)
- ``DIALOGD_THREADS``: threads per worker (2)
- ``DIALOGD_TIMEOUT``: seconds before a silent worker is replaced (30)
- ``DIALOGD_GRACEFUL_TIMEOUT``: seconds SIGTERM waits for in-flight requests (20)
- ``DIALOGD_KEEPALIVE``: seconds an idle keep-alive connection is kept (75)
- ``DIALOGD_REQUEST_TIMEOUT``: seconds a client has to send a whole request (10)
- ``DIALOGD_KEEPALIVE_REQUESTS``: requests on one connection before it is closed
  (1000; 0: no limit)
- ``DIALOGD_BALANCE``: ``off`` lets every worker accept whenever it can (on)
- ``DIALOGD_LOG_LEVEL``: error log level (info)
- ``DIALOGD_ACCESS_LOG``: access log file, ``-`` for stdout (off)
- ``DIALOGD_ACCESS_LOG_FORMAT``: access log template (the JSON of
  :data:`api.serving.access_log.ACCESS_LOG_FORMAT`)
- ``DIALOGD_WORKER_TMP_DIR``: the workers' heartbeat files (/dev/shm)

A value that is not a number where one is expected is an error at start.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from api.serving.access_log import ACCESS_LOG_FORMAT
from api.serving.access_log import JsonAccessLogger
from api.serving.balance import child_exit
from api.serving.balance import enabled
from api.serving.balance import keepalive_requests
from api.serving.balance import pre_fork
from api.serving.worker import DrainingThreadWorker
from api.serving.worker import request_timeout


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    value = environ.get(name, "").strip()
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
        quota_us = int((base / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((base / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


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


def gunicorn_settings(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """gunicorn's settings by name (``gunicorn.config.Config().settings``)."""
    tmp_dir = environ.get("DIALOGD_WORKER_TMP_DIR", "/dev/shm")
    # The workers read these; a bad value fails here, at start.
    request_timeout(environ)
    keepalive_requests(environ)
    enabled(environ)
    return {
        # NOTE: a turn is CPU work (NLU + policy, numpy) plus two Redis round trips,
        # so one process per usable core is the base; two threads per process overlap
        # one request's Redis wait with another's CPU work and let the load balancer
        # keep connections alive (sync workers cannot). More processes than cores
        # only adds context switches.
        "workers": _int(environ, "DIALOGD_WORKERS", available_cpus()),
        "worker_class": DrainingThreadWorker,
        "threads": _int(environ, "DIALOGD_THREADS", 2),
        # NOTE: ``dialogd serve`` loads the model and builds the app in the master
        # before gunicorn starts, so workers share the model's arrays copy-on-write
        # and a new worker answers at once. It also means SIGHUP restarts the
        # workers with the same model: to change the model, restart the process.
        "preload_app": True,
        "backlog": 2048,
        # Idle keep-alive connections are kept this long. NOTE: it must be LONGER
        # than the load balancer's idle timeout towards us (nginx: keepalive_timeout
        # 60s in the upstream block): if we closed first, nginx could send a request
        # on a connection we are closing, and a POST that failed that way is not
        # retried (it is not idempotent).
        "keepalive": _int(environ, "DIALOGD_KEEPALIVE", 75),
        # A turn takes milliseconds; a worker that has not notified the master for
        # this long is stuck and gets replaced (the load balancer's read timeout is
        # above it).
        "timeout": _int(environ, "DIALOGD_TIMEOUT", 30),
        # Graceful shutdown: SIGTERM makes the workers finish the requests they hold
        # for up to this long. Whoever sends SIGTERM must wait longer before SIGKILL:
        # compose stop_grace_period: 30s, Kubernetes terminationGracePeriodSeconds:
        # 45 (10 s preStop + 20 s + margin).
        "graceful_timeout": _int(environ, "DIALOGD_GRACEFUL_TIMEOUT", 20),
        # Bounded request line and headers; the worker bounds the whole head (64 KiB)
        # and the time to send a request, the app bounds the body (--max-body).
        "limit_request_line": 8190,
        "limit_request_fields": 100,
        # The workers' heartbeat files: on tmpfs, so a slow or read-only disk
        # (Kubernetes readOnlyRootFilesystem) can neither block nor break them.
        "worker_tmp_dir": (
            tmp_dir if os.path.isdir(tmp_dir) and os.access(tmp_dir, os.W_OK) else None
        ),
        # The error log goes to stderr (``-o FILE`` moves it); the access log is off
        # unless DIALOGD_ACCESS_LOG names a file or ``-`` (stdout; the image turns it
        # on, ``dialogd serve --access-log`` too).
        "errorlog": "-",
        "loglevel": environ.get("DIALOGD_LOG_LEVEL", "info"),
        "accesslog": environ.get("DIALOGD_ACCESS_LOG") or None,
        "access_log_format": environ.get("DIALOGD_ACCESS_LOG_FORMAT")
        or ACCESS_LOG_FORMAT,
        "logger_class": JsonAccessLogger,
        # NOTE: one listening socket shared by the workers, each leaving it to its
        # peers while it holds more requests than one of them (api/serving/
        # balance.py); these hooks give each worker its row of the board. Not
        # reuse_port: a socket per worker balances by a hash of the client's
        # address (7 or 8 of 8 connections on one of 2 workers in 7% of rounds), a
        # worker that exits resets the connections queued on its socket, and a
        # second server started on the same port silently takes a share of them.
        "pre_fork": pre_fork,
        "child_exit": child_exit,
    }
