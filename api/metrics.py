"""Prometheus metrics: ``GET /metrics`` in the text format, for every worker.

gunicorn runs several worker processes, and a scrape reaches one of them; so the
metrics live in ``prometheus_client``'s multiprocess mode: each process writes its
values to memory-mapped files in ``PROMETHEUS_MULTIPROC_DIR`` and the worker that
answers a scrape sums them all. ``dialogd serve`` sets the folder up before the
app is built (:func:`prepare_multiproc_dir`) and gunicorn's ``child_exit`` hook
(:func:`child_exit`) drops a dead worker's live gauges; its counters stay, so a
counter never goes down when a worker is replaced. Without the variable (an app
built in a test process) the metrics are the process's own.

``prometheus_client`` picks the mode from the environment when it is imported;
:class:`Metrics` picks it again when it is built (after ``serve`` has set the
variable), since every value of ours is created then.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING
from typing import Any

import falcon
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import Gauge
from prometheus_client import Histogram
from prometheus_client import generate_latest
from prometheus_client import multiprocess
from prometheus_client import values
from prometheus_client.core import GaugeMetricFamily

from trackerstore import StoreUnavailable
from worker.observe import PHASES

if TYPE_CHECKING:
    from trackerstore.registry import ModelRegistry
    from worker.turn import Engine

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
PATH = "/metrics"

#: a turn takes milliseconds: finer buckets below 10 ms than Prometheus' default
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
PHASE_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)
#: label values a client cannot choose: anything else is "other"
METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"},
)
UNMATCHED = "unmatched"


def prepare_multiproc_dir() -> tuple[str, bool]:
    """The multiprocess folder, emptied of an earlier run's files; a new temporary
    one when ``PROMETHEUS_MULTIPROC_DIR`` is unset (then True: ``serve`` removes it
    at exit). Old files would add a dead server's counts to this one's."""
    given = os.environ.get(MULTIPROC_ENV)
    if not given:
        folder = tempfile.mkdtemp(prefix="dialogd-metrics-")
        os.environ[MULTIPROC_ENV] = folder
        return folder, True
    path = Path(given)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    return given, False


def remove_multiproc_dir(folder: str) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn's ``child_exit`` hook, in the master: a worker that died (killed,
    replaced after a timeout, stopped) no longer counts in the live gauges."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(worker.pid)


class Metrics:
    """The metrics of one server, and the :class:`worker.observe.TurnObserver`
    its engine reports to."""

    def __init__(self, registry: ModelRegistry | None = None) -> None:
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        if self.multiprocess != getattr(values.ValueClass, "_multiprocess", False):
            # NOTE: prometheus_client was imported before the variable was set
            # (or after it was removed): its values would silently be per process.
            values.ValueClass = values.get_value_class()
        self.own = CollectorRegistry()
        self.model_registry = registry
        self.requests = Counter(
            "dialogd_http_requests",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=self.own,
        )
        self.latency = Histogram(
            "dialogd_http_request_duration_seconds",
            "Time in the app per request (routing to response), by route",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.own,
        )
        self.errors = Counter(
            "dialogd_errors",
            "Error answers by reason (StoreUnavailable, StoreFull, CorruptRecord: "
            "Redis; Conflict: a turn lost every retry)",
            ["reason"],
            registry=self.own,
        )
        phases = Histogram(
            "dialogd_turn_phase_seconds",
            "Time of each phase of a turn: nlu, policy, store_load, store_write",
            ["phase"],
            buckets=PHASE_BUCKETS,
            registry=self.own,
        )
        self._phases = {name: phases.labels(name) for name in PHASES}
        self.conflicts = Counter(
            "dialogd_turn_conflicts",
            "Writes that lost their compare-and-append: each redoes its turn",
            registry=self.own,
        )
        self.model = Gauge(
            "dialogd_model_active",
            "Worker processes serving each model (as of their latest request)",
            ["name", "fingerprint"],
            multiprocess_mode="livesum",
            registry=self.own,
        )
        self.switches = Counter(
            "dialogd_model_switches",
            "Times a worker process found a new active model",
            registry=self.own,
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        #: (pid, name, fingerprint) of the model this process last served
        self._served: tuple[int, str, str] | None = None

    # ---- TurnObserver -----------------------------------------------------------
    def phase(self, name: str, seconds: float) -> None:
        self._phases[name].observe(seconds)

    def conflict(self) -> None:
        self.conflicts.inc()

    # ---- requests ---------------------------------------------------------------
    def request(
        self, route: str, method: str, status: int, seconds: float, reason: str | None
    ) -> None:
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            # PERF: ``labels()`` costs more than the update itself; the keys are
            # bounded (route templates, METHODS, statuses), so they stay cached.
            verb = method if method in METHODS else "other"
            children = (
                self.requests.labels(route, verb, str(status)),
                self.latency.labels(route, verb),
            )
            if verb == method:
                self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
        if reason is not None:
            self.errors.labels(reason).inc()

    def serving(self, name: str, fingerprint: str) -> None:
        """The model this process answered with; a change is a switch."""
        pid = os.getpid()
        served = self._served
        if served is not None and served == (pid, name, fingerprint):
            return
        if served is not None and served[0] == pid:
            self.model.labels(served[1], served[2]).set(0)
            self.switches.inc()
        self.model.labels(name, fingerprint).set(1)
        self._served = (pid, name, fingerprint)

    # ---- exposition -------------------------------------------------------------
    def render(self) -> bytes:
        """The text format, of every process in multiprocess mode."""
        if self.multiprocess:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        else:
            registry = CollectorRegistry()
            registry.register(_Own(self.own))
        if self.model_registry is not None:
            registry.register(_Training(self.model_registry))
        return generate_latest(registry)


class _Own:
    """This process's metrics, in a scrape registry of their own."""

    def __init__(self, registry: Any):
        self.registry = registry

    def collect(self) -> Any:
        return self.registry.collect()


class _Training:
    """The training jobs' state, read from Redis at scrape time: trainers run in
    their own processes (containers), which no worker's files describe."""

    def __init__(self, registry: ModelRegistry):
        self.registry = registry

    def collect(self) -> Any:
        try:
            queued = self.registry.queue_length()
            trainers = self.registry.trainers_alive()
        except StoreUnavailable:
            return
        yield GaugeMetricFamily(
            "dialogd_train_jobs_queued", "Training jobs waiting for a trainer", queued
        )
        yield GaugeMetricFamily(
            "dialogd_trainers_alive", "Trainer processes that beat lately", trainers
        )


class MetricsMiddleware:
    """Counts and times every request, by the route that served it (its template,
    never the path a client chose), and notes the model the worker serves."""

    def __init__(self, metrics: Metrics, engine: Engine):
        self.metrics = metrics
        self.engine = engine

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = perf_counter()

    def process_response(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        resource: Any,
        req_succeeded: bool,
    ) -> None:
        started = req.context.get("started")
        if started is None:
            return
        self.metrics.request(
            req.uri_template or UNMATCHED,
            req.method,
            resp.status_code,
            perf_counter() - started,
            req.context.get("error_reason"),
        )
        models = self.engine.models.current()
        self.metrics.serving(models.name, models.fingerprint)


class MetricsResource:
    """``GET /metrics``: admin-only when authentication is on (``Auth``)."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.data = self.metrics.render()
        resp.content_type = CONTENT_TYPE_LATEST
