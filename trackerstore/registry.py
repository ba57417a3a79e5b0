"""Trained models and training jobs, in Redis, where every worker can read them.

Keys, under the store's prefix:

- ``reg:index``: hash, model name -> JSON metadata (name, fingerprint, created, ...)
- ``reg:blob:{name}``: the model archive (bytes)
- ``reg:active``: JSON ``{"name", "fingerprint", "serial"}`` of the active model;
  ``serial`` grows with every activation, so workers notice a re-activation too
- ``reg:queue``: list of job ids waiting for a trainer
- ``reg:job:{id}``: hash of the job (status, request, result or error, heartbeat)

Models are written blob first, index last, in one script: a model is either fully
there or not there at all. A registered model is immutable: its name is never
written again (a second upload or training of the name is ``ModelExists``), so
every worker that loads a name loads the same bytes, before and after a restart.
Only deleting it (when it is not active) frees the name.

The server's startup model is in the index as ``default`` (`STARTUP`), without an
archive: ``PUT /model {"name": "default"}`` switches the cluster back to it.

Trainers announce themselves in ``reg:trainers`` (a sorted set: trainer id ->
last heartbeat time); one not heard from for `TRAINER_TTL` seconds is gone.
"""

from __future__ import annotations

import json
import os
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
#: a trainer not heard from for this long is not alive (it beats every 2 s)
TRAINER_TTL = 10.0
#: the name of the model the server started with (never uploaded or trained)
STARTUP = "default"


class ModelNotFound(StoreError):
    """No model of that name is registered."""


class ModelInUse(StoreError):
    """The active model cannot be deleted."""


class JobNotFound(StoreError):
    """No training job with that id."""


class ModelExists(StoreError):
    """A model of that name is registered: registered models never change."""


class NoTrainer(StoreError):
    """No trainer process is alive to take a training job."""


_PUT = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
if KEYS[2] then redis.call('SET', KEYS[2], ARGV[3]) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


#: a popped job becomes running only if it is still queued (not reaped meanwhile)
_CLAIM = """
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return false end
redis.call('HSET', KEYS[1], 'status', 'running', 'started', ARGV[1],
           'heartbeat', ARGV[1])
return redis.call('HGET', KEYS[1], 'request')
"""
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
        """Register a new model; ModelExists if the name is taken."""
        if name == STARTUP or self.exists(name):
            raise ModelExists(f"a model named {name!r} exists; models never change")
        final = None
        if self._folder is not None:
            # NOTE: written under a temporary name, then linked to its own: a
            # link fails if the name exists, so no archive is ever overwritten.
            self._folder.mkdir(parents=True, exist_ok=True)
            partial = self._folder / f".{name}.{uuid.uuid4().hex}.part"
            partial.write_bytes(archive)
            final = self._folder / f"{name}.tar.gz"
            try:
                os.link(partial, final)
            except FileExistsError:
                raise ModelExists(f"a model named {name!r} exists") from None
            finally:
                partial.unlink()
        # the archive goes to Redis only without a model folder
        keys = [self._key("index")]
        if self._folder is None:
            keys.append(self._key("blob", name))
        try:
            with unavailable():
                done = self._redis().eval(
                    _PUT,
                    len(keys),
                    *keys,
                    name,
                    json.dumps({**meta, "name": name}),
                    archive if self._folder is None else b"",
                )
        except BaseException:
            if final is not None:
                final.unlink(missing_ok=True)
            raise
        if not done:
            if final is not None:
                final.unlink(missing_ok=True)
            raise ModelExists(f"a model named {name!r} exists; models never change")

    def exists(self, name: str) -> bool:
        with unavailable():
            return bool(self._redis().hexists(self._key("index"), name))

    def register_startup(self, fingerprint: str, parts: list[str]) -> None:
        """The server's startup model as `STARTUP`, so clients can switch back."""
        meta = {"name": STARTUP, "fingerprint": fingerprint, "parts": parts}
        with unavailable():
            self._redis().hset(
                self._key("index"), STARTUP, json.dumps({**meta, "startup": True})
            )

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
        if name == STARTUP:
            raise ModelInUse(f"{name!r} is the server's startup model")
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
        with unavailable():
            raw = self._redis().eval(_CLAIM, 1, self._key("job", job), self._clock())
        if raw is None:
            return None  # expired or reaped meanwhile
        return job, json.loads(raw)

    def queue_length(self) -> int:
        """Jobs waiting for a trainer (``/metrics``)."""
        with unavailable():
            return int(self._redis().llen(self._key("queue")))

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
        error = self._reaped(job, state)
        if error is not None:
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

    # ---- trainers --------------------------------------------------------------------
    def trainer_beat(self, trainer: str) -> None:
        """``trainer`` is alive now (it calls this every couple of seconds)."""
        with unavailable():
            self._redis().zadd(self._key("trainers"), {trainer: self._clock()})

    def trainer_gone(self, trainer: str) -> None:
        with unavailable():
            self._redis().zrem(self._key("trainers"), trainer)

    def trainers_alive(self) -> int:
        """How many trainers beat within `TRAINER_TTL`; the silent are forgotten."""
        key = self._key("trainers")
        with unavailable(), self._redis().pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(key, "-inf", self._clock() - TRAINER_TTL)
            pipe.zcard(key)
            return int(pipe.execute()[1])

    def _reaped(self, job: str, state: dict[str, str]) -> str | None:
        """Why a job that looks unfinished is failed: its trainer went silent while
        training, or took it from the queue and stopped before it could start."""
        now = self._clock()
        if state["status"] == "running":
            if now - float(state["heartbeat"]) > STALE_AFTER:
                return "the trainer stopped while training (no heartbeat)"
        elif state["status"] == "queued" and now - float(state["submitted"]) > (
            STALE_AFTER
        ):
            with unavailable():
                waiting = self._redis().lpos(self._key("queue"), job)
            if waiting is None:
                return "the trainer stopped as it took the job"
        return None

    def ping(self) -> None:
        with unavailable():
            self._redis().ping()
