"""Training jobs: what ``POST /train`` asks for, done by ``dialogd trainer``.

A serving worker never trains: it validates the request and queues it; a trainer
process takes jobs from the registry's queue, trains, loads and smoke-tests the
model as a worker would, and registers the archive in one atomic step. A trainer
that dies leaves no model behind, and its job is reported failed once its heartbeat
goes quiet. Every trainer also beats while idle, so a server can tell at once that
no trainer is alive to take a job.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import json
import logging
import math
import multiprocessing
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from typing import Protocol

from trackerstore import StoreUnavailable
from trackerstore.registry import ModelExists
from worker.archive import pack
from worker.domain import Domain
from worker.errors import DialogdError
from worker.errors import InvalidConfig
from worker.errors import TrainingDataError
from worker.errors import TrainingTooLong
from worker.errors import public_message
from worker.models import load_archive
from worker.nlu import Component
from worker.nlu import NLUPipeline
from worker.nlu import load_nlu_data
from worker.nlu.pipeline import DEFAULT_PIPELINE_CONFIG
from worker.nlu.pipeline import REGISTRY
from worker.policies.base import Policy
from worker.policies.config import DEFAULT_POLICY_CONFIG
from worker.policies.config import POLICY_REGISTRY
from worker.policies.config import policies_from_config
from worker.train import split_config
from worker.train import train_models
from worker.training import read_stories
from worker.yamlfile import load_client_yaml

log = logging.getLogger("dialogd.trainer")
HEARTBEAT_INTERVAL = 2.0
#: The longest one training job may take (``DIALOGD_MAX_TRAIN_SECONDS``). A request
#: may ask for any number of epochs or examples: its time is what is bounded.
MAX_TRAIN_SECONDS = 3600.0


class JobQueue(Protocol):
    def claim(self, timeout: float = 1.0) -> tuple[str, dict[str, Any]] | None: ...

    def trainer_beat(self, trainer: str) -> None: ...

    def trainer_gone(self, trainer: str) -> None: ...

    def heartbeat(self, job: str) -> None: ...

    def finish(
        self,
        job: str,
        *,
        result: dict | None = None,
        error: str | None = None,
        code: int = 500,
    ) -> None: ...

    def put(self, name: str, archive: bytes, meta: dict[str, Any]) -> None: ...


# ---- the request ---------------------------------------------------------------------
def _entries(config: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """Each configured component and policy with the parameters it accepts (name ->
    annotation, a string under ``from __future__ import annotations``)."""
    out = []
    pipeline = config.get("pipeline")
    if not isinstance(pipeline, list):
        pipeline = copy.deepcopy(DEFAULT_PIPELINE_CONFIG["pipeline"])
        config["pipeline"] = pipeline
    for entry in pipeline:
        name = entry.get("name") if isinstance(entry, dict) else None
        component = REGISTRY.get(name) if isinstance(name, str) else None
        if component is not None:
            out.append((entry, _param_types(component)))
    key = "policy" if "policy" in config else "policies"
    policies = config.get(key)
    if not isinstance(policies, list):
        policies = copy.deepcopy(DEFAULT_POLICY_CONFIG["policies"])
        config[key] = policies
    for entry in policies:
        name = entry.get("name") if isinstance(entry, dict) else None
        policy = POLICY_REGISTRY.get(str(name).rsplit(".", 1)[-1])
        if policy is not None:
            out.append((entry, _param_types(policy)))
    return out


def _param_types(cls: type[Component] | type[Policy]) -> dict[str, str]:
    params = inspect.signature(cls).parameters
    return {name: str(params[name].annotation) for name in cls.param_names()}


_SCALARS: dict[str, type | tuple[type, ...]] = {
    "int": int,
    "float": (int, float),
    "str": str,
    "bool": bool,
    "None": type(None),
}


def _accepts(annotation: str, value: Any) -> bool:
    """Whether ``value`` fits a parameter annotated ``annotation`` (the scalar types
    and ``Sequence[int]`` of our components; anything else is not checked here)."""
    for kind in (k.strip() for k in annotation.split("|")):
        if kind == "Sequence[int]":
            if isinstance(value, list) and all(
                isinstance(v, int) and not isinstance(v, bool) for v in value
            ):
                return True
        elif kind not in _SCALARS:
            return True
        elif isinstance(value, bool) and kind != "bool":
            continue
        elif isinstance(value, _SCALARS[kind]):
            return not isinstance(value, float) or math.isfinite(value)
    return False


def apply_overrides(
    config: Mapping[str, Any] | None, overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """``config`` with each ``key=value`` set on every component that takes ``key``.

    Values are read as YAML scalars (``50`` is a number, ``true`` a boolean) and must
    fit the parameter's type, so a mistyped value is a 400 now, not a failed job.
    """
    out = copy.deepcopy(dict(config or {}))
    entries = _entries(out)
    valid = sorted({p for _, params in entries for p in params})
    for key, raw in overrides.items():
        targets = [(entry, params[key]) for entry, params in entries if key in params]
        if not targets:
            raise InvalidConfig(
                f"unknown configuration parameter {key!r}; valid: {', '.join(valid)}"
            )
        if not isinstance(raw, str):
            raise InvalidConfig(f"{key}: give one value, not {raw!r}")
        try:
            value = load_client_yaml(raw, key)
        except TrainingDataError as err:
            raise InvalidConfig(f"{key}: cannot read {raw!r}: {err.reason}") from err
        for entry, annotation in targets:
            if not _accepts(annotation, value):
                raise InvalidConfig(f"{key}: {raw!r} is not of type {annotation}")
            entry[key] = value
    return out


def check_request(request: Mapping[str, Any]) -> None:
    """Everything that can be checked before queueing, so a mistake is a 400 now."""
    with tempfile.TemporaryDirectory(prefix="dialogd-check-") as folder:
        paths = _write_inputs(request, Path(folder))
        responses = load_nlu_data(paths["nlu"]).responses if "nlu" in paths else {}
        if "domain" in paths:
            domain = Domain.load(paths["domain"]).with_responses(responses)
            read_stories(paths["stories"], domain)
        nlu_config, core_config = split_config(request.get("config"))
        if nlu_config is not None:
            NLUPipeline(nlu_config)
        if core_config is not None:
            policies_from_config(core_config)


def _write_inputs(request: Mapping[str, Any], folder: Path) -> dict[str, Path]:
    """The request's training data as files, as ``dialogd train`` would read them."""
    paths: dict[str, Path] = {}
    folder.mkdir(parents=True, exist_ok=True)
    nlu = request.get("nlu")
    if nlu is not None:
        if isinstance(nlu, dict):
            paths["nlu"] = folder / "nlu.json"
            paths["nlu"].write_text(json.dumps(nlu))
        elif isinstance(nlu, str):
            paths["nlu"] = folder / (
                "nlu.json" if nlu.lstrip().startswith("{") else "nlu.md"
            )
            paths["nlu"].write_text(nlu)
        else:
            raise TrainingDataError("'nlu' must be Rasa NLU JSON or Markdown text")
    domain, stories = request.get("domain"), request.get("stories")
    if (domain is None) != (stories is None):
        raise TrainingDataError("a dialogue model needs both 'domain' and 'stories'")
    if domain is not None:
        if not isinstance(domain, str) or not isinstance(stories, str):
            raise TrainingDataError("'domain' (YAML) and 'stories' (Markdown) are text")
        load_client_yaml(domain, "domain.yml")  # no aliases: see worker.yamlfile
        paths["domain"] = folder / "domain.yml"
        paths["domain"].write_text(domain)
        paths["stories"] = folder / "stories.md"
        paths["stories"].write_text(stories)
    if not paths:
        raise TrainingDataError("nothing to train: send NLU data and/or domain+stories")
    return paths


# ---- the work ------------------------------------------------------------------------
def train_archive(request: Mapping[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """Train what ``request`` asks for; the model archive and its metadata."""
    started = time.monotonic()
    config = request.get("config") or {}
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="dialogd-train-") as folder:
        work = Path(folder)
        paths = _write_inputs(request, work / "input")
        trained = train_models(
            work / "model",
            config,
            nlu=paths.get("nlu"),
            domain=paths.get("domain"),
            stories=paths.get("stories"),
        )
        if trained.core is not None:
            figures["actions"] = len(trained.core.domain.action_names)
        if trained.nlu is not None:
            figures.update(examples=trained.nlu_examples, intents=trained.nlu_intents)
        figures["train_seconds"] = round(time.monotonic() - started, 3)
        meta = {
            "name": request["name"],
            "parts": [p for p in ("core", "nlu") if (work / "model" / p).is_dir()],
            "figures": figures,
            "config": config,
        }
        archive = pack(
            work / "model",
            name=meta["name"],
            extra={"figures": figures},
        )
    # NOTE: loaded and smoke-tested as a worker would, before it is registered.
    meta["fingerprint"] = load_archive(archive)[0]["fingerprint"]
    meta["created"] = time.time()
    meta["size"] = len(archive)
    return archive, meta


def max_train_seconds(environ: Mapping[str, str] = os.environ) -> float:
    value = environ.get("DIALOGD_MAX_TRAIN_SECONDS", "").strip()
    seconds = float(value) if value else MAX_TRAIN_SECONDS
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"DIALOGD_MAX_TRAIN_SECONDS must be above 0, not {value!r}")
    return seconds


def train_bounded(
    request: Mapping[str, Any], seconds: float
) -> tuple[bytes, dict[str, Any]]:
    """``train_archive`` in a child process that is killed after ``seconds``
    (TrainingTooLong): a job cannot hold the trainer for ever."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_train_child, args=(request, sender), daemon=True)
    child.start()
    sender.close()
    try:
        if not receiver.poll(seconds):
            raise TrainingTooLong(
                f"training took longer than {seconds:g} s and was stopped "
                "(DIALOGD_MAX_TRAIN_SECONDS)"
            )
        kind, value = receiver.recv()
    except EOFError:
        raise RuntimeError("the training process ended without an answer") from None
    finally:
        if child.is_alive():
            child.kill()
        child.join(10)
        receiver.close()
    if kind == "done":
        return value
    if kind == "invalid":
        raise DialogdError(value)
    raise RuntimeError(value)


def _train_child(request: Mapping[str, Any], sender: Any) -> None:
    """In the child: the trained archive and its metadata, or what went wrong as
    text (an exception object need not survive pickling)."""
    try:
        sender.send(("done", train_archive(request)))
    except DialogdError as err:
        sender.send(("invalid", str(err)))
    except Exception as err:
        sender.send(("error", f"{type(err).__name__}: {err}"))
    finally:
        sender.close()


def run_one(
    queue: JobQueue, timeout: float = 1.0, max_seconds: float = MAX_TRAIN_SECONDS
) -> bool:
    """Take and do one job; False when none came within ``timeout``."""
    claimed = queue.claim(timeout)
    if claimed is None:
        return False
    job, request = claimed
    log.info("training %s (job %s)", request.get("name"), job)
    done = threading.Event()

    def beat() -> None:
        while not done.wait(HEARTBEAT_INTERVAL):
            queue.heartbeat(job)

    threading.Thread(target=beat, daemon=True).start()
    try:
        archive, meta = train_bounded(request, max_seconds)
        queue.put(meta["name"], archive, meta)
    except ModelExists as err:
        queue.finish(job, error=str(err), code=409)
        log.info("job %s failed: %s", job, err)
    except DialogdError as err:
        queue.finish(job, error=public_message(str(err)), code=400)
        log.info("job %s failed: %s", job, err)
    except Exception as err:
        log.exception("job %s failed", job)
        queue.finish(
            job, error=public_message(f"{type(err).__name__}: {err}"), code=500
        )
    else:
        queue.finish(job, result=meta)
        log.info("job %s done: %s %s", job, meta["name"], meta["fingerprint"])
    finally:
        done.set()
    return True


def run(queue: JobQueue, stop: threading.Event) -> None:
    """Do jobs until ``stop`` is set, beating all the while."""
    trainer = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def beat() -> None:
        while True:
            with contextlib.suppress(StoreUnavailable):  # the loop reports it
                queue.trainer_beat(trainer)
            if stop.wait(HEARTBEAT_INTERVAL):
                return

    beating = threading.Thread(target=beat, name="trainer-heartbeat", daemon=True)
    beating.start()
    limit = max_train_seconds()
    try:
        while not stop.is_set():
            try:
                run_one(queue, max_seconds=limit)
            except StoreUnavailable as err:
                log.warning("Redis is unavailable, retrying: %s", err)
                stop.wait(1.0)
    finally:
        beating.join()
        with contextlib.suppress(StoreUnavailable):
            queue.trainer_gone(trainer)
