"""The models a worker serves, and the cluster-wide switch between them.

A ``ModelSet`` is one dialogue model with its NLU. A request takes the current set
once and uses only it, so every response comes wholly from one model. In each
worker process a poller thread watches the registry's active model and swaps the
reference when it changes: requests never wait for a model to load, and the old set
is freed once the last request holding it ends.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from typing import Protocol

from trackerstore import StoreUnavailable
from trackerstore.clients import process_id
from trackerstore.registry import ModelNotFound
from worker.archive import MAX_MODEL_BYTES
from worker.archive import InvalidArchive
from worker.archive import unpack
from worker.domain import ACTION_LISTEN
from worker.errors import ModelError
from worker.events import ActionExecuted
from worker.events import UserUttered
from worker.model import CoreModel
from worker.nlu import Interpreter
from worker.nlu import NLUPipeline
from worker.tracker import Tracker

log = logging.getLogger("dialogd.models")


class Registry(Protocol):
    def active(self) -> dict[str, Any] | None: ...

    def archive(self, name: str) -> bytes: ...


@dataclass(frozen=True, slots=True)
class ModelSet:
    name: str
    fingerprint: str
    core: CoreModel
    interpreter: Interpreter
    has_nlu: bool
    #: the parts this set was loaded with (the rest came from the startup model)
    parts: tuple[str, ...] = ("core", "nlu")

    @classmethod
    def of(
        cls,
        core: CoreModel,
        interpreter: Interpreter | None = None,
        name: str = "default",
    ) -> ModelSet:
        """Models already in memory (tests, training, evaluation)."""
        interpreter = interpreter or Interpreter()
        fingerprint = core.fingerprint
        if interpreter.model is not None:
            fingerprint = f"{fingerprint}-{interpreter.model.fingerprint_}"
        return cls(name, fingerprint, core, interpreter, interpreter.model is not None)

    @classmethod
    def from_dirs(
        cls, core: str | Path, nlu: str | Path | None, name: str = "default"
    ) -> ModelSet:
        pipeline = NLUPipeline.load(nlu) if nlu else None
        return cls.of(CoreModel.load(core), Interpreter(pipeline), name)

    @classmethod
    def from_archive(
        cls, archive: bytes, base: ModelSet, *, max_bytes: int = MAX_MODEL_BYTES
    ) -> ModelSet:
        """Load an archive; a part it lacks (an NLU-only model) comes from ``base``."""
        manifest, core, pipeline = load_archive(archive, max_bytes=max_bytes)
        if pipeline is not None:
            interpreter, has_nlu = Interpreter(pipeline), True
        else:
            interpreter, has_nlu = base.interpreter, base.has_nlu
        return cls(
            manifest["name"],
            manifest["fingerprint"],
            core or base.core,
            interpreter,
            has_nlu,
            tuple(manifest["parts"]),
        )


def load_archive(
    archive: bytes, *, max_bytes: int = MAX_MODEL_BYTES
) -> tuple[dict[str, Any], CoreModel | None, NLUPipeline | None]:
    """The archive's manifest and its parts, loaded and smoke-tested.

    Unpacked in a private folder that is removed whatever happens. A model that
    loads but cannot answer (weights of the wrong shapes) is an InvalidArchive
    here, before it is registered, not a 500 on every parse of every worker.
    """
    folder = Path(tempfile.mkdtemp(prefix="dialogd-model-"))
    try:
        manifest = unpack(archive, folder, max_bytes=max_bytes)
        parts = manifest["parts"]
        try:
            core = CoreModel.load(folder / "core") if "core" in parts else None
            pipeline = NLUPipeline.load(folder / "nlu") if "nlu" in parts else None
        except ModelError as err:
            raise InvalidArchive(str(err)) from err
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise InvalidArchive(f"the model is corrupt: {err!r}") from err
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    smoke_test(core, pipeline)
    return manifest, core, pipeline


def smoke_test(core: CoreModel | None, pipeline: NLUPipeline | None) -> None:
    """One parse and one prediction, as a worker would make them."""
    try:
        if pipeline is not None:
            pipeline.parse("hello there")
        if core is not None:
            intents = core.domain.intent_names
            parse = {
                "text": "hello there",
                "intent": {"name": intents[0], "confidence": 1.0} if intents else {},
                "entities": [],
            }
            tracker = Tracker("smoke-test", core.domain, core.max_history)
            tracker.update(ActionExecuted(name=ACTION_LISTEN))
            tracker.update(UserUttered(text="hello there", parse_data=parse))
            # NOTE: every policy, not only the ensemble's winner: a policy that
            # loses this one prediction may win the next.
            states = tracker.states(core.max_history)
            actions = len(core.domain.action_names)
            for policy in core.ensemble.policies:
                scores = policy.predict_scores(tracker, core.domain, states)
                if len(scores) != actions:
                    raise ValueError(
                        f"{type(policy).__name__} scores {len(scores)} actions "
                        f"of the domain's {actions}"
                    )
            core.next_action(tracker)
    except Exception as err:  # whatever breaks, the model cannot be served
        raise InvalidArchive(
            f"the model loads but does not run: {type(err).__name__}: {err}"
        ) from err


class FixedModels:
    """One model set for the life of the process (tests, a server without registry)."""

    def __init__(self, models: ModelSet):
        self._models = models

    def current(self) -> ModelSet:
        return self._models

    def named(self, name: str) -> ModelSet:
        if name != self._models.name:
            raise ModelNotFound(f"no model named {name!r}")
        return self._models


class RegistryModels:
    """The registry's active model, or ``fallback`` while none is active."""

    def __init__(
        self,
        fallback: ModelSet,
        registry: Registry,
        *,
        poll_interval: float | None = 0.25,
        cache_size: int = 4,
        max_model_bytes: int = MAX_MODEL_BYTES,
    ):
        self.fallback = fallback
        self.max_model_bytes = max_model_bytes
        self.registry = registry
        self.poll_interval = poll_interval
        self._current = fallback
        #: the registry's active record this worker follows (None: the fallback)
        self._followed: dict[str, Any] | None = None
        self._named: OrderedDict[str, ModelSet] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._poller_pid: int | None = None
        # NOTE: a forked worker starts watching at once, not at its first request,
        # so it never answers with a model switched away from while it was idle.
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._start_poller()

    def current(self) -> ModelSet:
        if self._poller_pid != process_id():
            self._start_poller()
        return self._current

    def refresh(self) -> bool:
        """Load the active model if it changed; True if the current set changed.

        No active model means the startup model, for every worker alike: when
        Redis loses its data (a flush, a restart without persistence) a worker
        that had switched goes back to it, as a worker started since does.
        """
        active = self.registry.active()
        if active is None:
            if self._followed is None:
                return False
            self._followed = None
            if self._current is self.fallback:
                return False
            self._current = self.fallback
            log.warning(
                "no active model in the registry (Redis lost it?): serving the "
                "startup model %s again",
                self.fallback.name,
            )
            return True
        # NOTE: the whole record, not only the serial: after a loss of data the
        # serial starts again at 1, for whatever model is activated next.
        if active == self._followed:
            return False
        try:
            models = (
                self.fallback
                if active["name"] == self.fallback.name
                else ModelSet.from_archive(
                    self.registry.archive(active["name"]),
                    self.fallback,
                    max_bytes=self.max_model_bytes,
                )
            )
        except (ModelError, ModelNotFound) as err:
            # NOTE: remembered, so a broken model is reported once, not every poll.
            self._followed = active
            log.error("cannot serve model %s: %s", active["name"], err)
            return False
        self._current, self._followed = models, active
        log.info("serving model %s (%s)", models.name, models.fingerprint)
        return True

    def named(self, name: str) -> ModelSet:
        """A registered model by name, for ``/parse?model=``; a few stay cached."""
        current = self._current
        if name == current.name:
            return current
        with self._lock:
            if name in self._named:
                self._named.move_to_end(name)
                return self._named[name]
        models = ModelSet.from_archive(
            self.registry.archive(name), self.fallback, max_bytes=self.max_model_bytes
        )
        with self._lock:
            self._named[name] = models
            while len(self._named) > self._cache_size:
                self._named.popitem(last=False)
        return models

    def _start_poller(self) -> None:
        if self.poll_interval is None:  # refreshed by the caller (tests, tools)
            return
        with self._lock:
            if self._poller_pid == process_id():
                return
            # NOTE: threads do not survive fork: each worker starts its own.
            self._poller_pid = process_id()
            threading.Thread(
                target=self._poll, name="model-poller", daemon=True
            ).start()

    def _poll(self) -> None:
        stop = threading.Event()
        unavailable = False
        while not stop.wait(self.poll_interval):
            try:
                self.refresh()
                unavailable = False
            except StoreUnavailable as err:
                if not unavailable:  # once per outage, not four times a second
                    log.warning("cannot watch the active model: %s", err)
                unavailable = True
            except Exception:
                log.exception("could not switch to the active model")
