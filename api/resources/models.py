"""Training over HTTP and the model registry: ``/train``, ``/models``, ``/model``.

Resources here only translate HTTP into registry and trainer calls: training runs
in ``dialogd trainer`` processes, never in a serving worker.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import falcon
import yaml

from api.body import json_object
from api.body import loads
from api.body import read_body
from api.body import read_json
from api.body import utf8
from api.errors import APIError
from trackerstore.registry import ModelRegistry
from worker import yamlfile
from worker.models import ModelSet
from worker.trainer import apply_overrides
from worker.trainer import check_request
from worker.turn import Engine

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: query parameters that are not configuration overrides
RESERVED = {"name", "wait", "timeout", "model"}
BUNDLE_KEYS = {"domain", "stories", "nlu", "config"}
MAX_TRAIN_BODY = 64 * 1024 * 1024


def model_name(value: Any) -> str:
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


def _form(req: falcon.Request) -> dict[str, Any]:
    """A multipart body: each part (file or field) is one bundle item, as text."""
    out: dict[str, Any] = {}
    for part in req.get_media():
        if part.name in BUNDLE_KEYS:
            out[part.name] = utf8(part.stream.read(), f"part {part.name!r}")
    return out


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
            config = yamlfile.safe_load(config) or {}
        except yaml.YAMLError as err:
            raise APIError(400, "InvalidConfig", f"config is not YAML: {err}") from err
    if config is not None and not isinstance(config, dict):
        raise APIError(400, "InvalidConfig", "config must be a mapping")
    overrides = {k: v for k, v in req.params.items() if k not in RESERVED}
    bundle["config"] = apply_overrides(config, overrides) if overrides else config or {}
    return bundle


class Train:
    """``POST /train?name=NAME``: queue a training job, and by default wait for it."""

    def __init__(self, registry: ModelRegistry, *, wait_timeout: float = 900.0):
        self.registry = registry
        self.wait_timeout = wait_timeout

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        name = model_name(req.get_param("name"))
        request = training_request(req, MAX_TRAIN_BODY)
        request["name"] = name
        check_request(request)
        job = self.registry.submit(request)
        if not req.get_param_as_bool("wait", default=True):
            resp.status = falcon.HTTP_202
            resp.location = f"/train/{job}"
            resp.media = {"job": job, "status": "queued", "name": name}
            return
        deadline = time.monotonic() + self.wait_timeout
        state = self.registry.job(job)
        while state["status"] in ("queued", "running"):
            if time.monotonic() > deadline:
                resp.status = falcon.HTTP_202
                resp.location = f"/train/{job}"
                resp.media = state
                return
            time.sleep(0.1)
            state = self.registry.job(job)
        if state["status"] == "failed":
            raise APIError(state["code"], "TrainingFailed", state["error"], job=job)
        resp.media = {"job": job, **state["result"]}


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

    def __init__(self, engine: Engine, registry: ModelRegistry, max_upload: int):
        self.engine = engine
        self.registry = registry
        self.max_upload = max_upload

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.registry.active() or {"name": None}

    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_object(read_json(req, 4096))
        resp.media = self.registry.activate(model_name(body.get("name")))

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        name = model_name(req.get_param("name"))
        if (req.content_type or "").startswith("multipart/form-data"):
            parts = {
                p.name: p.stream.read(self.max_upload + 1) for p in req.get_media()
            }
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
        meta = validate_archive(data, self.engine)
        meta.update(name=name, created=time.time(), size=len(data), uploaded=True)
        self.registry.put(name, data, meta)
        resp.status = falcon.HTTP_201
        resp.media = meta


def validate_archive(data: bytes, engine: Engine) -> dict[str, Any]:
    """Load the archive as a worker would (unpacked in a private folder that is then
    removed): a bad archive is a 400 that says why, and nothing of it stays."""
    models = ModelSet.from_archive(data, engine.models.current())
    return {"fingerprint": models.fingerprint, "parts": list(models.parts)}
