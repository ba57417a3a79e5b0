"""Rasa's ``endpoints.yml``, read by ``dialogd serve`` (``rasa run --endpoints``).

A Rasa project is served unchanged: its endpoints file is read and checked, the
Redis tracker store becomes the server's Redis, an event broker of ``type: redis``
turns on dialogd's event stream (``trackerstore.stream``), and the rest (actions,
NLG, other event brokers, model server, lock store) is accepted and named in one
warning at start, since dialogd does not use them yet (docs/rasa.md). An unknown
section is an error: a typo there would otherwise go unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from trackerstore.stream import StreamConfig
from worker.errors import InvalidConfig
from worker.yamlfile import read_yaml

#: The sections ``rasa run`` reads; only ``tracker_store`` is used for now.
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


@dataclass(frozen=True)
class Endpoints:
    redis_url: str | None = None
    key_prefix: str = ""
    #: Sections (and tracker store keys) accepted but without effect.
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
    unused = [
        k
        for k in data
        if k not in ("tracker_store", "event_broker") and data[k] is not None
    ]
    stream, broker_unused = _event_stream(path, data.get("event_broker"))
    unused += broker_unused
    store = data.get("tracker_store")
    if store is None:
        return Endpoints(unused=tuple(unused), event_stream=stream)
    if not isinstance(store, dict):
        raise InvalidConfig(f"{path}: tracker_store must be a mapping")
    kind = str(store.get("type", "")).lower()
    if kind in ("in_memory", ""):
        return Endpoints(
            unused=(*unused, "tracker_store (in_memory)"), event_stream=stream
        )
    if kind != "redis":
        raise InvalidConfig(
            f"{path}: tracker_store type {store.get('type')!r}: dialogd keeps "
            "conversations in Redis only (type: redis)"
        )
    unused += [f"tracker_store.{k}" for k in store if k not in REDIS_KEYS]
    prefix = store.get("key_prefix") or ""
    return Endpoints(_redis_url(path, store), str(prefix), tuple(unused), stream)


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
