"""Rasa's ``endpoints.yml``, read by ``dialogd serve`` (``rasa run --endpoints``).

A Rasa project is served unchanged: its endpoints file is read and checked, the
Redis tracker store becomes the server's Redis, the action server and the NLG
server are called by the server-side loop (docs/actions.md), an event broker of
``type: redis`` turns on dialogd's event stream (``trackerstore.stream``), and the
rest (other event brokers, model server, lock store) is accepted and named in one
warning at start, since dialogd does not use them (docs/rasa.md). An unknown
section is an error: a typo there would otherwise go unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from typing import TypeVar
from urllib.parse import quote

from trackerstore.stream import StreamConfig
from worker.actions import ActionEndpoint
from worker.actions import NLGEndpoint
from worker.actions.http import Endpoint
from worker.errors import InvalidConfig
from worker.yamlfile import read_yaml

#: The sections ``rasa run`` reads.
SECTIONS = (
    "action_endpoint",
    "nlg",
    "tracker_store",
    "event_broker",
    "models",
    "lock_store",
)
#: ``event_broker`` keys of dialogd's own type ``redis``: the event stream's bounds.
BROKER_KEYS = ("type", "maxlen", "max_age")
#: Keys of Rasa's RedisTrackerStore that name the Redis and its keys.
REDIS_KEYS = ("type", "url", "host", "port", "db", "password", "use_ssl", "key_prefix")


#: Keys of an HTTP endpoint (Rasa's ``EndpointConfig``) that dialogd uses;
#: the timeouts and the answer limit are dialogd's own.
HTTP_KEYS = (
    "url",
    "type",
    "token",
    "token_name",
    "headers",
    "basic_auth",
    "cafile",
    "timeout",
    "connect_timeout",
    "max_response_bytes",
)
E = TypeVar("E", bound=Endpoint)
USED = ("tracker_store", "action_endpoint", "nlg", "event_broker")


@dataclass(frozen=True)
class Endpoints:
    redis_url: str | None = None
    key_prefix: str = ""
    action: ActionEndpoint | None = None
    nlg: NLGEndpoint | None = None
    #: Sections (and keys) accepted but without effect.
    unused: tuple[str, ...] = ()
    #: ``event_broker: {type: redis}``: the event stream, on the store's Redis
    event_stream: StreamConfig | None = None


def read_endpoints(path: str) -> Endpoints:
    data = read_yaml(path).data or {}
    if not isinstance(data, dict):
        raise InvalidConfig(f"{path}: endpoints must be a mapping of sections")
    unknown = sorted(str(k) for k in data if k not in SECTIONS)
    if unknown:
        raise InvalidConfig(
            f"{path}: unknown endpoints {unknown} (known: {', '.join(SECTIONS)})"
        )
    unused = [k for k in data if k not in USED and data[k] is not None]
    action = nlg = None
    if data.get("action_endpoint") is not None:
        action = _http(
            path, "action_endpoint", data["action_endpoint"], ActionEndpoint, unused
        )
    if data.get("nlg") is not None:
        nlg = _http(path, "nlg", data["nlg"], NLGEndpoint, unused)
    stream, broker_unused = _event_stream(path, data.get("event_broker"))
    unused += broker_unused
    store = data.get("tracker_store")
    if store is None:
        return Endpoints(
            action=action, nlg=nlg, unused=tuple(unused), event_stream=stream
        )
    if not isinstance(store, dict):
        raise InvalidConfig(f"{path}: tracker_store must be a mapping")
    kind = str(store.get("type", "")).lower()
    if kind in ("in_memory", ""):
        unused.append("tracker_store (in_memory)")
        return Endpoints(
            action=action, nlg=nlg, unused=tuple(unused), event_stream=stream
        )
    if kind != "redis":
        raise InvalidConfig(
            f"{path}: tracker_store type {store.get('type')!r}: dialogd keeps "
            "conversations in Redis only (type: redis)"
        )
    unused += [f"tracker_store.{k}" for k in store if k not in REDIS_KEYS]
    prefix = store.get("key_prefix") or ""
    return Endpoints(
        _redis_url(path, store), str(prefix), action, nlg, tuple(unused), stream
    )


def _http(path: str, section: str, data: Any, kind: type[E], unused: list[str]) -> E:
    """An HTTP endpoint section, as Rasa's ``EndpointConfig`` reads it (with
    dialogd's timeouts and answer limit: ``worker/actions/http.py``)."""
    if isinstance(data, dict) and "actions_module" in data:
        raise InvalidConfig(
            f"{path}: {section}.actions_module: dialogd calls an action server "
            "over HTTP (give its 'url'), it does not import Python actions"
        )
    if (
        section == "nlg"
        and isinstance(data, dict)
        and data.get("type") not in (None, "callback")
    ):
        raise InvalidConfig(
            f"{path}: nlg type {data.get('type')!r}: only an NLG server "
            "(type: callback, or no type) is supported"
        )
    try:
        endpoint = kind.from_config(data)
    except InvalidConfig as err:
        raise InvalidConfig(f"{path}: {section}: {err}") from err
    if isinstance(data, dict):
        unused += [f"{section}.{k}" for k in data if k not in HTTP_KEYS]
    return endpoint


def _event_stream(path: str, broker: Any) -> tuple[StreamConfig | None, list[str]]:
    """``type: redis`` is dialogd's event stream (``maxlen``, ``max_age`` in
    seconds); Rasa's own types (pika, kafka, sql) are accepted, unused."""
    if broker is None:
        return None, []
    if not isinstance(broker, dict):
        raise InvalidConfig(f"{path}: event_broker must be a mapping")
    if str(broker.get("type", "")).lower() != "redis":
        return None, ["event_broker"]
    try:
        stream = StreamConfig(
            maxlen=broker.get("maxlen", StreamConfig.maxlen),
            max_age=broker.get("max_age"),
        )
    except (TypeError, ValueError) as err:
        raise InvalidConfig(f"{path}: event_broker: {err}") from err
    return stream, [f"event_broker.{k}" for k in broker if k not in BROKER_KEYS]


def _redis_url(path: str, store: dict[str, Any]) -> str:
    """Rasa's ``url`` is a host name (or a redis:// URL); port, db, password apart."""
    url = str(store.get("url") or store.get("host") or "localhost")
    if "://" in url:
        return url
    try:
        port = int(store.get("port", 6379))
        db = int(store.get("db", 0))
    except (TypeError, ValueError) as err:
        raise InvalidConfig(f"{path}: tracker_store port and db are numbers") from err
    scheme = "rediss" if store.get("use_ssl") else "redis"
    password = store.get("password")
    auth = f":{quote(str(password), safe='')}@" if password else ""
    return f"{scheme}://{auth}{url}:{port}/{db}"


@dataclass(frozen=True)
class Credentials:
    """Rasa's ``credentials.yml``: the channels to serve. ``rest`` is always
    served; ``callback`` when it names a ``url``; others are accepted and named."""

    callback: Endpoint | None = None
    unused: tuple[str, ...] = ()


def read_credentials(path: str) -> Credentials:
    data = read_yaml(path).data or {}
    if not isinstance(data, dict):
        raise InvalidConfig(f"{path}: credentials must be a mapping of channels")
    unused = [str(k) for k in data if k not in ("rest", "callback")]
    callback = None
    if data.get("callback") is not None:
        callback = _http(path, "callback", data["callback"], Endpoint, unused)
    return Credentials(callback, tuple(unused))
