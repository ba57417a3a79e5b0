"""gunicorn settings for dialogd; ``dialogd serve`` loads this file, then applies its
command-line flags (``--port``, ``--host``, ``--workers``, ``-o``) on top.

Every value can also be set from the environment, which is how the Docker image and
the Kubernetes manifests tune it.
"""

import multiprocessing
import os

# NOTE: a turn is CPU work (NLU + policy) plus two Redis round trips, so one process
# per core is the base; a couple of threads per process hide the Redis latency and
# let the load balancer keep connections alive (sync workers cannot).
workers = int(os.environ.get("DIALOGD_WORKERS", multiprocessing.cpu_count()))
worker_class = "gthread"
threads = int(os.environ.get("DIALOGD_THREADS", 2))

# NOTE: the model is loaded once in the master before forking, so workers share its
# arrays copy-on-write and a new worker is ready at once.
preload_app = True

bind = os.environ.get("DIALOGD_BIND", "0.0.0.0:5005")
backlog = 2048
keepalive = 5  # seconds; behind nginx, upstream keep-alive connections are reused

# A turn takes milliseconds; a worker silent for 30 s is stuck and gets replaced.
timeout = int(os.environ.get("DIALOGD_TIMEOUT", 30))
# SIGTERM: stop accepting, finish in-flight requests for up to this long, then exit.
graceful_timeout = int(os.environ.get("DIALOGD_GRACEFUL_TIMEOUT", 20))

# Bounded request line and headers; bodies are bounded by the app (--max-body).
limit_request_line = 8190
limit_request_fields = 100

errorlog = "-"
loglevel = os.environ.get("DIALOGD_LOG_LEVEL", "info")
accesslog = os.environ.get("DIALOGD_ACCESS_LOG") or None
access_log_format = (
    '{"remote": "%(h)s", "request": "%(r)s", "status": %(s)s, "bytes": %(B)s, '
    '"duration_us": %(D)s, "request_id": "%({x-request-id}i)s"}'
)
