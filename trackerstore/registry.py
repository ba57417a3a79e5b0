"""Trained models and training jobs, in Redis, where every worker can read them.

Keys, under the store's prefix:

- ``reg:index``: hash, model name -> JSON metadata (name, fingerprint, created, ...)
- ``reg:blob:{name}``: the model archive (bytes)
- ``reg:active``: JSON ``{"name", "fingerprint", "serial"}`` of the active model;
  ``serial`` grows with every activation, so workers notice a re-activation too
- ``reg:queue``: list of job ids waiting for a trainer
- ``reg:job:{id}``: hash of the job (status, request, result or error, heartbeat)

Models are written blob first, index last, in one MULTI: a model is either fully
there or not there at all.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trackerstore.clients import make_client
from trackerstore.clients import process_id
from trackerstore.clients import unavailable
from trackerstore.errors import StoreError

#: a running job whose trainer has not been heard from for this long has failed
STALE_AFTER = 15.0
JOB_TTL = 7 * 24 * 3600


class ModelNotFound(StoreError):
    """No model of that name is registered."""


class ModelInUse(StoreError):
    """The active model cannot be deleted."""


class JobNotFound(StoreError):
    """No training job with that id."""


_ACTIVATE = """
local meta = redis.call('HGET', KEYS[1], ARGV[1])
if not meta then return false end
local serial = redis.call('INCR', KEYS[3])
local fp = cjson.decode(meta)['fingerprint']
local active = cjson.encode({name=ARGV[1], fingerprint=fp, serial=serial})
redis.call('SET', KEYS[2], active)
return active
"""
_DELETE = """
local active = redis.call('GET', KEYS[2])
if active and cjson.decode(active)['name'] == ARGV[1] then return -1 end
redis.call('DEL', KEYS[3])
return redis.call('HDEL', KEYS[1], ARGV[1])
"""


class ModelRegistry:
    """Models and jobs on one Redis (any URL ``trackerstore.connect`` accepts).

    NOTE: the registry's keys share one hash tag, so in Redis Cluster it lives in
    one slot and its scripts stay atomic; it is small next to the conversations.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "",
        folder: str | Path | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self._url = url
        self._base = f"{prefix}{{reg}}:"
        #: archives go to this shared folder instead of Redis (index stays in Redis)
        self._folder = Path(folder) if folder is not None else None
        self._clock = clock
        self._client: tuple[int, Any] | None = None

    # NOTE: Any: redis-py types every command's result as "awaitable or value" (one
    # class for sync and asyncio), which no sync caller can use without a cast.
    def _redis(self) -> Any:
        if self._client is None or self._client[0] != process_id():
            self._client = (process_id(), make_client(self._url, socket_timeout=30.0))
        return self._client[1]

    def _key(self, *parts: str) -> str:
        return self._base + ":".join(parts)

    # ---- models ------------------------------------------------------------------
    def put(self, name: str, archive: bytes, meta: dict[str, Any]) -> None:
        if self._folder is not None:
            # NOTE: written under a temporary name, then renamed: readers see the
            # old archive or the new one, never half of one.
            self._folder.mkdir(parents=True, exist_ok=True)
            partial = self._folder / f".{name}.{uuid.uuid4().hex}.part"
            partial.write_bytes(archive)
            partial.replace(self._folder / f"{name}.tar.gz")
        with unavailable(), self._redis().pipeline(transaction=True) as pipe:
            if self._folder is None:
                pipe.set(self._key("blob", name), archive)
            pipe.hset(self._key("index"), name, json.dumps({**meta, "name": name}))
            pipe.execute()

    def meta(self, name: str) -> dict[str, Any]:
        with unavailable():
            raw = self._redis().hget(self._key("index"), name)
        if raw is None:
            raise ModelNotFound(f"no model named {name!r}")
        return json.loads(raw)

    def archive(self, name: str) -> bytes:
        if self._folder is not None:
            self.meta(name)  # the index decides what exists
            try:
                return (self._folder / f"{name}.tar.gz").read_bytes()
            except FileNotFoundError:
                raise ModelNotFound(
                    f"model {name!r} is missing from the model folder"
                ) from None
        with unavailable():
            blob = self._redis().get(self._key("blob", name))
        if blob is None:
            raise ModelNotFound(f"no model named {name!r}")
        return blob

    def models(self) -> list[dict[str, Any]]:
        with unavailable():
            raw = self._redis().hgetall(self._key("index"))
        return sorted((json.loads(v) for v in raw.values()), key=lambda m: m["name"])

    def activate(self, name: str) -> dict[str, Any]:
        with unavailable():
            active = self._redis().eval(
                _ACTIVATE,
                3,
                self._key("index"),
                self._key("active"),
                self._key("serial"),
                name,
            )
        if active is None:
            raise ModelNotFound(f"no model named {name!r}")
        return json.loads(active)

    def active(self) -> dict[str, Any] | None:
        with unavailable():
            raw = self._redis().get(self._key("active"))
        return json.loads(raw) if raw else None

    def delete(self, name: str) -> None:
        with unavailable():
            done = self._redis().eval(
                _DELETE,
                3,
                self._key("index"),
                self._key("active"),
                self._key("blob", name),
                name,
            )
        if done == -1:
            raise ModelInUse(f"model {name!r} is active; activate another one first")
        if done == 0:
            raise ModelNotFound(f"no model named {name!r}")
        if self._folder is not None:
            (self._folder / f"{name}.tar.gz").unlink(missing_ok=True)

    # ---- training jobs -------------------------------------------------------------
    def submit(self, request: dict[str, Any]) -> str:
        job = uuid.uuid4().hex
        key = self._key("job", job)
        with unavailable(), self._redis().pipeline(transaction=True) as pipe:
            pipe.hset(
                key,
                mapping={
                    "id": job,
                    "status": "queued",
                    "request": json.dumps(request),
                    "submitted": self._clock(),
                },
            )
            pipe.expire(key, JOB_TTL)
            pipe.rpush(self._key("queue"), job)
            pipe.execute()
        return job

    def claim(self, timeout: float = 1.0) -> tuple[str, dict[str, Any]] | None:
        """The next queued job, marked running; None if none came in ``timeout``."""
        with unavailable():
            popped = self._redis().blpop([self._key("queue")], timeout=timeout)
        if popped is None:
            return None
        job = popped[1].decode()
        key = self._key("job", job)
        with unavailable():
            raw = self._redis().hget(key, "request")
            if raw is None:
                return None  # expired meanwhile
            self._redis().hset(
                key,
                mapping={
                    "status": "running",
                    "started": self._clock(),
                    "heartbeat": self._clock(),
                },
            )
        return job, json.loads(raw)

    def heartbeat(self, job: str) -> None:
        with unavailable():
            self._redis().hset(self._key("job", job), "heartbeat", self._clock())

    def finish(
        self,
        job: str,
        *,
        result: dict | None = None,
        error: str | None = None,
        code: int = 500,
    ) -> None:
        """``code`` says whose fault a failure is: 400 the request's, 500 ours."""
        fields: dict[str, Any] = {
            "status": "failed" if error else "succeeded",
            "finished": self._clock(),
        }
        if result is not None:
            fields["result"] = json.dumps(result)
        if error is not None:
            fields["error"] = error
            fields["code"] = code
        with unavailable():
            self._redis().hset(self._key("job", job), mapping=fields)

    def job(self, job: str) -> dict[str, Any]:
        """The job's state; a running job whose trainer went silent is failed."""
        key = self._key("job", job)
        with unavailable():
            raw = self._redis().hgetall(key)
        if not raw:
            raise JobNotFound(f"no training job {job!r}")
        state = {k.decode(): v.decode() for k, v in raw.items()}
        if (
            state["status"] == "running"
            and self._clock() - float(state["heartbeat"]) > STALE_AFTER
        ):
            error = "the trainer stopped while training (no heartbeat)"
            self.finish(job, error=error)
            state.update(status="failed", error=error)
        out: dict[str, Any] = {"id": state["id"], "status": state["status"]}
        for name in ("submitted", "started", "finished"):
            if name in state:
                out[name] = float(state[name])
        request = json.loads(state["request"])
        out["name"] = request.get("name")
        if "result" in state:
            out["result"] = json.loads(state["result"])
        if "error" in state:
            out["error"] = state["error"]
            out["code"] = int(state.get("code", 500))
        return out

    def ping(self) -> None:
        with unavailable():
            self._redis().ping()
