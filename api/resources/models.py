"""Training over HTTP and the model registry: ``/train``, ``/models``, ``/model``.

Resources here only translate HTTP into registry and trainer calls: training runs
in ``dialogd trainer`` processes, never in a serving worker.

A multipart body is read whole within the route's limit, then split: only the
route's parts, each once, so 64 parts cannot cost 64 limits.
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
from collections.abc import Collection
from typing import Any

import falcon

from api.body import json_object
from api.body import loads
from api.body import read_body
from api.body import read_json
from api.body import utf8
from api.errors import APIError
from trackerstore.registry import ModelExists
from trackerstore.registry import ModelRegistry
from trackerstore.registry import NoTrainer
from worker.archive import MAX_MODEL_BYTES
from worker.errors import TrainingDataError
from worker.models import ModelSet
from worker.trainer import apply_overrides
from worker.trainer import check_request
from worker.turn import Engine
from worker.yamlfile import load_client_yaml

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: query parameters that are not configuration overrides
RESERVED = {"name", "wait", "timeout", "model"}
BUNDLE_KEYS = {"domain", "stories", "nlu", "config"}
MAX_TRAIN_BODY = 64 * 1024 * 1024


def model_name(value: object) -> str:
    """A name from the query or a JSON body (where it may be any JSON value)."""
    if not isinstance(value, str) or not NAME.match(value):
        raise APIError(
            400,
            "InvalidParameter",
            "a model name is 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit",
            parameter="name",
            **{"in": "query"},
        )
    return value


def form_parts(
    req: falcon.Request, allowed: Collection[str], limit: int
) -> dict[str, bytes]:
    """A multipart body's parts by name: within ``limit`` in all, only ``allowed``
    names, each once."""
    body = read_body(req, limit)
    form = falcon.media.MultipartFormHandler().deserialize(
        io.BytesIO(body), req.content_type, len(body)
    )
    out: dict[str, bytes] = {}
    for part in form:
        if part.name not in allowed or part.name in out:
            raise APIError(
                400,
                "InvalidParameter",
                f"form part {part.name!r} is "
                + ("repeated" if part.name in out else "unknown")
                + f"; the parts are: {', '.join(sorted(allowed))}",
                parameter=part.name or "",
                **{"in": "body"},
            )
        out[str(part.name)] = part.stream.read(limit + 1)
    return out


def _form(req: falcon.Request) -> dict[str, Any]:
    """A multipart body: each part (file or field) is one bundle item, as text."""
    parts = form_parts(req, BUNDLE_KEYS, MAX_TRAIN_BODY)
    return {name: utf8(data, f"part {name!r}") for name, data in parts.items()}


def training_request(req: falcon.Request, limit: int) -> dict[str, Any]:
    """The training data of ``POST /train``: Rasa NLU JSON, a bundle, or a form."""
    if (req.content_type or "").startswith("multipart/form-data"):
        bundle = _form(req)
    else:
        text = utf8(read_body(req, limit))
        try:
            body = loads(text)
        except json.JSONDecodeError:
            body = text  # Markdown NLU data
        if isinstance(body, dict) and "rasa_nlu_data" in body:
            bundle = {"nlu": body}
        elif isinstance(body, dict) and set(body) <= BUNDLE_KEYS and body:
            bundle = dict(body)
        elif isinstance(body, str) and "## intent:" in body:
            bundle = {"nlu": body}
        else:
            raise APIError(
                400,
                "InvalidParameter",
                "the body must be Rasa NLU JSON (rasa_nlu_data), Markdown "
                "NLU data, or a bundle with domain, stories, nlu, config",
            )
    config = bundle.get("config")
    if isinstance(config, str):
        try:
            config = load_client_yaml(config, "config") or {}
        except TrainingDataError as err:
            raise APIError(400, "InvalidConfig", f"config: {err}") from err
    if config is not None and not isinstance(config, dict):
        raise APIError(400, "InvalidConfig", "config must be a mapping")
    params = {k: v for k, v in req.params.items() if k not in RESERVED}
    repeated = sorted(k for k, v in params.items() if not isinstance(v, str))
    if repeated:
        raise APIError(
            400, "InvalidParameter", f"given more than once: {', '.join(repeated)}"
        )
    overrides = {k: v for k, v in params.items() if isinstance(v, str)}
    bundle["config"] = apply_overrides(config, overrides) if overrides else config or {}
    return bundle


class Train:
    """``POST /train?name=NAME``: queue a training job, and by default wait for it.

    No live trainer: 503 at once, nothing queued. Waiting holds a worker thread, so
    only ``waiters`` requests per process wait (the original behaviour); any other,
    and one whose trainer goes quiet, is answered 202 with the job's Location.
    """

    def __init__(
        self, registry: ModelRegistry, *, wait_timeout: float = 900.0, waiters: int = 1
    ):
        self.registry = registry
        self.wait_timeout = wait_timeout
        self._waiters = threading.BoundedSemaphore(waiters)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        name = model_name(req.get_param("name"))
        if not self.registry.trainers_alive():
            raise NoTrainer("no trainer process is running: start `dialogd trainer`")
        request = training_request(req, MAX_TRAIN_BODY)
        request["name"] = name
        check_request(request)
        if self.registry.exists(name):
            raise ModelExists(f"a model named {name!r} exists; models never change")
        job = self.registry.submit(request)
        wait = req.get_param_as_bool("wait", default=True)
        if not wait or not self._waiters.acquire(blocking=False):
            self._accepted(resp, {"job": job, "status": "queued", "name": name})
            return
        try:
            state = self._wait(job)
        finally:
            self._waiters.release()
        if state["status"] in ("queued", "running"):
            self._accepted(resp, state)
        elif state["status"] == "failed":
            raise APIError(state["code"], "TrainingFailed", state["error"], job=job)
        else:
            resp.media = {"job": job, **state["result"]}

    def _wait(self, job: str) -> dict[str, Any]:
        """The job's state once done, or at the deadline, or once no trainer is
        alive to do it."""
        deadline = time.monotonic() + self.wait_timeout
        state = self.registry.job(job)
        while state["status"] in ("queued", "running"):
            if time.monotonic() > deadline or not self.registry.trainers_alive():
                return state
            time.sleep(0.1)
            state = self.registry.job(job)
        return state

    @staticmethod
    def _accepted(resp: falcon.Response, state: dict[str, Any]) -> None:
        resp.status = falcon.HTTP_202
        resp.location = f"/train/{state.get('job', state.get('id'))}"
        resp.media = state


class TrainJob:
    def __init__(self, registry: ModelRegistry):
        self.registry = registry

    def on_get(self, req: falcon.Request, resp: falcon.Response, job: str) -> None:
        resp.media = self.registry.job(job)


class Models:
    """``GET /models``: every registered model, the active one marked."""

    def __init__(self, registry: ModelRegistry):
        self.registry = registry

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        active = (self.registry.active() or {}).get("name")
        resp.media = [
            {**m, "active": m["name"] == active} for m in self.registry.models()
        ]


class ModelItem:
    def __init__(self, registry: ModelRegistry):
        self.registry = registry

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        meta = self.registry.meta(name)
        active = (self.registry.active() or {}).get("name")
        resp.media = {**meta, "active": name == active}

    def on_delete(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        self.registry.delete(name)
        resp.status = falcon.HTTP_204


class ActiveModel:
    """``PUT /model {"name"}`` switches the cluster; ``POST /model`` uploads one."""

    def __init__(
        self,
        engine: Engine,
        registry: ModelRegistry,
        max_upload: int,
        max_model: int = MAX_MODEL_BYTES,
    ):
        self.engine = engine
        self.registry = registry
        self.max_upload = max_upload
        self.max_model = max_model

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.registry.active() or {"name": None}

    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_object(read_json(req, 4096))
        resp.media = self.registry.activate(model_name(body.get("name")))

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        name = model_name(req.get_param("name"))
        if self.registry.exists(name):
            raise ModelExists(f"a model named {name!r} exists; models never change")
        if (req.content_type or "").startswith("multipart/form-data"):
            # NOTE: a part's headers and boundaries on top of the model itself
            parts = form_parts(req, {"model"}, self.max_upload + 64 * 1024)
            data = parts.get("model")
            if data is None:
                raise APIError(
                    400,
                    "InvalidParameter",
                    "You did not supply a model as part of your request.",
                    parameter="model",
                    **{"in": "body"},
                )
            if len(data) > self.max_upload:
                raise APIError(
                    413, "PayloadTooLarge", f"the model is over {self.max_upload} bytes"
                )
        else:
            data = read_body(req, self.max_upload)
        meta = validate_archive(data, self.engine, self.max_model)
        meta.update(name=name, created=time.time(), size=len(data), uploaded=True)
        self.registry.put(name, data, meta)
        resp.status = falcon.HTTP_201
        resp.media = meta


def validate_archive(data: bytes, engine: Engine, max_bytes: int) -> dict[str, Any]:
    """Load and smoke-test the archive as a worker would (unpacked in a private
    folder that is then removed): a bad archive is a 400 that says why, and nothing
    of it stays. The fingerprint is its content's hash."""
    models = ModelSet.from_archive(data, engine.models.current(), max_bytes=max_bytes)
    return {"fingerprint": models.fingerprint, "parts": list(models.parts)}
