"""Serving: load the models once, start the embedded Redis if no URL is given, and
run gunicorn with the settings of :mod:`api.serving.settings`.

``python -m api.server -d CORE [-u NLU] ...`` is the original command line; it is the
same as ``dialogd serve``.
"""

from __future__ import annotations

import argparse
import gc
import logging
import logging.config
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from dataclasses import fields
from typing import Any

from gunicorn.app.base import BaseApplication

from api.app import DEFAULT_MAX_BODY
from api.app import create_app
from api.endpoints import read_credentials
from api.endpoints import read_endpoints
from api.logs import logging_config
from api.metrics import Metrics
from api.metrics import child_exit
from api.metrics import prepare_multiproc_dir
from api.metrics import remove_multiproc_dir
from api.serving.settings import gunicorn_settings
from trackerstore import EmbeddedRedis
from trackerstore import connect
from trackerstore.registry import STARTUP
from trackerstore.registry import ModelRegistry
from trackerstore.stream import DEFAULT_MAXLEN
from trackerstore.stream import StreamConfig
from trackerstore.stream import check_stream_url
from worker.actions import ActionEndpoint
from worker.actions import NLGEndpoint
from worker.actions.http import Endpoint
from worker.archive import MAX_MODEL_BYTES
from worker.errors import InvalidConfig
from worker.loop import Bot
from worker.loop import LoopSettings
from worker.models import ModelSet
from worker.models import RegistryModels
from worker.observe import NO_OBSERVER
from worker.train import MODELS_DIR
from worker.train import newest_model
from worker.trainer import run as run_jobs
from worker.turn import Engine

log = logging.getLogger("dialogd.server")
TRAINER_NICENESS = 15


@dataclass(frozen=True)
class ServeOptions:
    core: str
    nlu: str | None = None
    port: int = 5005
    host: str = "0.0.0.0"
    workers: int | None = None
    redis_url: str | None = None
    data_dir: str = "data"
    key_prefix: str = ""
    ttl: int | None = None
    log_file: str | None = None
    access_log: bool = False
    max_body: int = DEFAULT_MAX_BODY
    trainer: bool | None = None
    auth_token: str | None = None
    jwt_secret: str | None = None
    jwt_method: str = "HS256"
    cors: tuple[str, ...] | None = None
    model_dir: str | None = None
    max_model_size: int = MAX_MODEL_BYTES
    #: from endpoints.yml and credentials.yml, not flags
    action_endpoint: ActionEndpoint | None = None
    nlg_endpoint: NLGEndpoint | None = None
    callback: Endpoint | None = None
    metrics: bool = True
    #: the event stream (``--event-stream``, or endpoints.yml's redis broker)
    event_stream: StreamConfig | None = None
    unused_endpoints: tuple[str, ...] = ()


#: ServeOptions read from files rather than flags
_FROM_FILES = (
    "action_endpoint",
    "nlg_endpoint",
    "callback",
    "unused_endpoints",
    "event_stream",
)


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-d",
        "--core",
        help="Core model directory (default: core/ of the newest model under "
        "--model, as 'rasa run')",
    )
    parser.add_argument(
        "-m",
        "--model",
        default=MODELS_DIR,
        help="without -d: a model directory (core/, nlu/) or a folder of them; the "
        "newest is served (default: models)",
    )
    parser.add_argument(
        "--endpoints",
        help="Rasa's endpoints.yml (default: ./endpoints.yml when there is one)",
    )
    parser.add_argument(
        "--credentials",
        help="Rasa's credentials.yml: the channels (rest is always served, "
        "callback when it has a url; default: ./credentials.yml when there is one)",
    )
    parser.add_argument(
        "-u",
        "--nlu",
        help="NLU model directory (default: only /intent{...} messages are understood)",
    )
    parser.add_argument("-p", "--port", type=int, default=5005)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: CPUs)")
    parser.add_argument(
        "--redis-url",
        help="redis://, rediss:// or unix:// URL; "
        "without it an embedded Redis is started in --data-dir",
    )
    parser.add_argument(
        "--data-dir",
        default="data",
        help="where the embedded Redis keeps its files (default: data)",
    )
    parser.add_argument("--key-prefix", default="", help="prefix of every Redis key")
    parser.add_argument(
        "--ttl",
        type=int,
        help="expire idle conversations after this many seconds (default: never)",
    )
    parser.add_argument("-o", "--log-file", help="log file (default: stderr)")
    parser.add_argument(
        "--auth-token",
        default=os.environ.get("DIALOGD_AUTH_TOKEN") or None,
        help="require this token (?token= or Authorization: Bearer) on every route "
        "but /, /version and /status (default: $DIALOGD_AUTH_TOKEN, else none)",
    )
    parser.add_argument(
        "--jwt-secret",
        default=os.environ.get("DIALOGD_JWT_SECRET") or None,
        help="accept JWTs (Authorization: Bearer) signed with this key (the public "
        "key for asymmetric methods); role admin may do everything, role user only "
        "touch the conversation named user.username (default: $DIALOGD_JWT_SECRET)",
    )
    parser.add_argument(
        "--jwt-method",
        default=os.environ.get("DIALOGD_JWT_METHOD") or "HS256",
        help="the JWTs' signing algorithm (default: HS256)",
    )
    parser.add_argument(
        "--cors",
        nargs="+",
        metavar="ORIGIN",
        help="let browser pages of these origins call the API ('*': any)",
    )
    parser.add_argument(
        "--model-dir",
        help="keep model archives in this shared folder instead of Redis",
    )
    parser.add_argument(
        "--trainer",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="start a trainer process beside the server (default: with the "
        "embedded Redis only)",
    )
    parser.add_argument(
        "--metrics",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="serve Prometheus metrics of every worker at /metrics (admin-only "
        "with auth; default: on)",
    )
    parser.add_argument(
        "--event-stream",
        action="store_true",
        help="add every logged event to a Redis Stream, in the write itself "
        "(dialogd events tail; docs/operations.md; default: off)",
    )
    parser.add_argument(
        "--event-stream-maxlen",
        type=int,
        help=f"keep about this many stream entries (default: {DEFAULT_MAXLEN:,})",
    )
    parser.add_argument(
        "--event-stream-max-age",
        type=int,
        metavar="SECONDS",
        help="and none older than this (default: no age limit)",
    )
    parser.add_argument(
        "--access-log",
        action="store_true",
        help="log every request (JSON, with request id and cid)",
    )
    parser.add_argument(
        "--max-model-size",
        type=int,
        default=MAX_MODEL_BYTES,
        help="largest model in bytes, unpacked and its arrays apart (an upload, "
        "a model a worker loads; default: 256 MiB)",
    )
    parser.add_argument(
        "--max-body",
        type=int,
        default=DEFAULT_MAX_BODY,
        help="largest request body in bytes (default: 1 MiB)",
    )


def options_from_args(args: argparse.Namespace) -> ServeOptions:
    """The options of the flags; without ``-d``, the newest trained model (its NLU
    too, unless ``-u`` names one); endpoints.yml's Redis tracker store when no
    flag names a Redis."""
    given = {
        f.name: getattr(args, f.name)
        for f in fields(ServeOptions)
        if f.name not in _FROM_FILES
    }
    if given["core"] is None:
        model = newest_model(args.model)
        given["core"] = str(model / "core")
        if given["nlu"] is None and (model / "nlu").is_dir():
            given["nlu"] = str(model / "nlu")
    path = args.endpoints or (
        "endpoints.yml" if os.path.isfile("endpoints.yml") else None
    )
    if path is not None:
        endpoints = read_endpoints(path)
        if given["redis_url"] is None and endpoints.redis_url is not None:
            given["redis_url"] = endpoints.redis_url
            if not given["key_prefix"]:
                given["key_prefix"] = endpoints.key_prefix
        given["action_endpoint"] = endpoints.action
        given["nlg_endpoint"] = endpoints.nlg
        given["unused_endpoints"] = endpoints.unused
        given["event_stream"] = endpoints.event_stream
    maxlen, max_age = args.event_stream_maxlen, args.event_stream_max_age
    try:
        if args.event_stream or maxlen is not None or max_age is not None:
            base = given.get("event_stream") or StreamConfig()
            given["event_stream"] = StreamConfig(
                maxlen=base.maxlen if maxlen is None else maxlen,
                max_age=base.max_age if max_age is None else max_age,
            )
        if given.get("event_stream") and given["redis_url"]:
            check_stream_url(given["redis_url"])
    except ValueError as err:
        raise InvalidConfig(f"event stream: {err}") from err
    path = args.credentials or (
        "credentials.yml" if os.path.isfile("credentials.yml") else None
    )
    if path is not None:
        credentials = read_credentials(path)
        given["callback"] = credentials.callback
        given["unused_endpoints"] = (
            *given.get("unused_endpoints", ()),
            *(f"credentials: {c}" for c in credentials.unused),
        )
    return ServeOptions(**given)


def start_trainer(redis_url: str, options: ServeOptions) -> subprocess.Popen:
    """A trainer process beside the server (``make run``): training jobs never run
    in a serving worker."""
    cmd = [
        sys.executable,
        "-m",
        "api",
        "trainer",
        "--redis-url",
        redis_url,
        "--key-prefix",
        options.key_prefix,
    ]
    if options.log_file:
        cmd += ["-o", options.log_file]
    if options.model_dir:
        cmd += ["--model-dir", options.model_dir]
    log.info("starting a trainer process")
    return subprocess.Popen(cmd)


def run_trainer(
    redis_url: str,
    key_prefix: str = "",
    log_file: str | None = None,
    model_dir: str | None = None,
) -> int:
    """``dialogd trainer``: take training jobs until SIGTERM or SIGINT."""
    logging.config.dictConfig(logging_config(log_file))
    # NOTE: training is background work: on a machine shared with serving workers
    # the scheduler must prefer them, so a turn's latency does not move.
    os.nice(TRAINER_NICENESS)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    registry = ModelRegistry(redis_url, prefix=key_prefix, folder=model_dir)
    registry.ping()
    log.info("trainer waiting for jobs")
    run_jobs(registry, stop)
    log.info("trainer stopped")
    return 0


def build_app(options: ServeOptions, redis_url: str) -> Any:
    """The app with the startup model, switched to the registry's active model if
    one is set (before forking, so workers start on it)."""
    registry = ModelRegistry(
        redis_url, prefix=options.key_prefix, folder=options.model_dir
    )
    startup = ModelSet.from_dirs(options.core, options.nlu, name=STARTUP)
    models = RegistryModels(startup, registry, max_model_bytes=options.max_model_size)
    # NOTE: the startup model is registered by name, so a client can switch back.
    parts = ["core", "nlu"] if startup.has_nlu else ["core"]
    registry.register_startup(startup.fingerprint, parts)
    models.refresh()
    store = connect(
        redis_url,
        prefix=options.key_prefix,
        ttl=options.ttl,
        stream=options.event_stream,
    )
    metrics = Metrics(registry) if options.metrics else None
    engine = Engine(models, store, observer=metrics or NO_OBSERVER)
    action = options.action_endpoint
    # NOTE: a loop's lease must outlast its longest step, an action server call.
    settings = LoopSettings(lease_ttl=max(30.0, (action.timeout if action else 0) + 10))
    return create_app(
        engine,
        bot=Bot(engine, action, options.nlg_endpoint, settings),
        callback=options.callback,
        registry=registry,
        max_body=options.max_body,
        max_model=options.max_model_size,
        auth_token=options.auth_token,
        jwt_secret=options.jwt_secret,
        jwt_method=options.jwt_method,
        cors_origins=options.cors,
        metrics=metrics,
    )


class _Gunicorn(BaseApplication):
    """gunicorn with our settings and an app built before forking."""

    def __init__(self, app: Any, settings: dict[str, Any]):
        self.app = app
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        given = {k: v for k, v in self.settings.items() if v is not None}
        for key, value in {**gunicorn_settings(), **given}.items():
            if value is not None:
                self.cfg.set(key, value)

    def load(self) -> Any:
        return self.app


def serve(options: ServeOptions) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code."""
    log_config = logging_config(options.log_file)
    logging.config.dictConfig(log_config)
    if options.unused_endpoints:
        log.warning(
            "accepted but not used: %s (docs/rasa.md)",
            ", ".join(options.unused_endpoints),
        )
    embedded = None
    trainer_process = None
    master = os.getpid()
    # NOTE: before the app is built: its metrics are created in this folder's mode.
    metrics_dir = prepare_multiproc_dir() if options.metrics else None
    redis_url = options.redis_url
    if not redis_url:
        embedded = EmbeddedRedis(options.data_dir)
        embedded.start()
        redis_url = embedded.url
        log.info("embedded Redis at %s (data in %s)", redis_url, options.data_dir)
    try:
        if options.trainer if options.trainer is not None else embedded is not None:
            trainer_process = start_trainer(redis_url, options)
        app = build_app(options, redis_url)
        settings: dict[str, Any] = {
            "bind": f"{options.host}:{options.port}",
            "workers": options.workers,
            "logconfig_dict": log_config,
            # gunicorn's JSON access log (api/serving/access_log.py) on stdout
            "accesslog": "-" if options.access_log else None,
            "proc_name": "dialogd",
            # NOTE: gunicorn >= 25 opens a control socket at one per-user path;
            # several instances on one machine would fight over it.
            "control_socket_disable": True,
        }
        if metrics_dir is not None:
            settings["child_exit"] = child_exit
        log.info("serving %s on %s", options.core, settings["bind"])
        # NOTE: the model and the app are built and will never be freed: frozen,
        # the collector no longer walks them in every full collection of every
        # worker, and it no longer writes to their pages, which stay shared.
        gc.freeze()
        _Gunicorn(app, settings).run()
    finally:
        # NOTE: forked workers unwind through this frame when they exit; only the
        # master owns the embedded Redis.
        if os.getpid() == master:
            if trainer_process is not None:
                trainer_process.terminate()
                trainer_process.wait(30)
            if embedded is not None:
                embedded.stop()
            if metrics_dir is not None and metrics_dir[1]:
                remove_multiproc_dir(metrics_dir[0])
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m api.server", description="Serve a dialogd model over HTTP."
    )
    add_serve_arguments(parser)
    return serve(options_from_args(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
