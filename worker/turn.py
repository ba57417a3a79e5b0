"""The turn: load a conversation, log events, predict, and append atomically.

Every write is a compare-and-append against the version that was loaded; on a
conflict the whole turn is redone on fresh state (NLU is not: it is a pure
function of the text). No lock in Redis, so any worker may serve any
conversation; within a process the turns of one conversation go one at a time
(``worker.turnqueue``), so a hot conversation's turns stop racing each other.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable
from collections.abc import Sequence
from functools import partial
from time import perf_counter
from typing import Any
from typing import Protocol

from trackerstore import Loaded
from trackerstore import PendingLoad
from trackerstore import StoreUnavailable
from trackerstore import TrackerStore
from trackerstore import VersionConflict
from worker.actions.builtin import session_start_events
from worker.domain import ACTION_LISTEN
from worker.domain import ACTION_SESSION_START
from worker.domain import REQUESTED_SLOT
from worker.domain import Domain
from worker.errors import ConversationConflict
from worker.errors import InvalidEvent
from worker.errors import InvalidInput
from worker.event_codec import event_from_dict
from worker.event_codec import event_to_dict
from worker.event_codec import events_from_dicts
from worker.events import ActionExecuted
from worker.events import ActionExecutionRejected
from worker.events import Event
from worker.events import SlotSet
from worker.events import UserUttered
from worker.model import RESTART_INTENT
from worker.models import FixedModels
from worker.models import ModelSet
from worker.observe import NO_OBSERVER
from worker.observe import TurnObserver
from worker.tracker import NeedsHistory
from worker.tracker import Tracker
from worker.tracker import applied_events
from worker.tracker import events_after_restart
from worker.turnqueue import TurnQueue

log = logging.getLogger(__name__)

PAUSED_INFO = "Bot is currently paused and no restart was received yet."
LISTEN_INFO = (
    "You do not need to call continue after action listen got returned for the "
    "previous continue call. You are expected to call 'parse' with the next user "
    "message."
)
VERBOSITIES = ("ALL", "APPLIED", "AFTER_RESTART", "NONE")
#: an idempotency key: a client's token (a UUID fits), never a document
_KEY = re.compile(r"[A-Za-z0-9._:-]{1,128}")
KEY_HEADER = "Idempotency-Key"


def check_key(key: Any) -> str | None:
    """The client's idempotency key, bounded where it enters the engine."""
    if key is None:
        return None
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise InvalidInput(
            f"'{KEY_HEADER}' must be 1 to 128 letters, digits, '.', '_', ':' or '-'",
            KEY_HEADER,
            "header",
        )
    return key


class Session:
    """One attempt at a turn: the loaded tracker plus the events logged so far."""

    __slots__ = ("cid", "engine", "keys", "new", "snapshot", "tracker", "version")

    def __init__(
        self,
        engine: Turn,
        cid: str,
        pending: PendingLoad | None = None,
        loaded: Loaded | None = None,
    ):
        """From ``loaded`` if given (the state a conflict answer or the turn
        before carried), else from ``pending``'s load, else from a load."""
        self.engine = engine
        self.cid = cid
        self.new: list[Event] = []
        #: the snapshot of the latest commit
        self.snapshot: dict[str, Any] | None = None
        if loaded is None:
            started = perf_counter()
            loaded = engine.store.load(cid) if pending is None else pending.result()
            engine.observer.phase("store_load", perf_counter() - started)
        self.version = loaded.version
        self.keys = loaded.keys
        tracker = None
        if loaded.snapshot is not None:
            tracker = Tracker.from_snapshot(
                cid, engine.domain, loaded.snapshot, engine.history
            )
        if tracker is None and loaded.version:
            # NOTE: a snapshot from another model (or format) is rebuilt from the log
            # once; the next append stores a fresh one.
            tracker = Tracker.from_events(
                cid, engine.domain, engine.read_events(cid), engine.history
            )
        self.tracker = tracker or Tracker(cid, engine.domain, engine.history)
        if tracker is None:
            if engine.domain.session_config is not None:
                self.start_session(engine.clock())
            else:
                self.log(ActionExecuted(name=ACTION_LISTEN, timestamp=engine.clock()))

    def start_session(self, ts: float) -> None:
        """Rasa 2+'s ``action_session_start``, in Rasa 3's order: the action, the
        ``session_started`` that resets the state, the slots carried over (those
        that differ from their initial value), then the listen."""
        events = session_start_events(self.engine.domain, self.tracker.slots, ts)
        self.log(ActionExecuted(name=ACTION_SESSION_START, timestamp=ts))
        for event in events:
            self.log(event)

    def session_expired(self, now: float) -> bool:
        """Rasa's rule: more than ``session_expiration_time`` minutes since the
        latest user message (never without one, never when it is 0)."""
        config = self.engine.domain.session_config
        since = self.tracker.latest_user_time
        return (
            config is not None
            and config.session_expiration_time > 0
            and since is not None
            and now - since > config.session_expiration_time * 60
        )

    def log_message(self, message: UserUttered, mapped_slots: bool = True) -> None:
        """A user message: a new session first if the old one expired, then the
        message and the slots its entities fill (a 0.x slot's own entity; a Rasa 2+
        slot's ``mappings`` unless ``mapped_slots`` is False, when the caller runs
        Rasa's ``action_extract_slots`` for them)."""
        ts = message.timestamp
        if self.session_expired(ts):
            self.start_session(ts)
        self.log(message)
        domain, tracker = self.engine.domain, self.tracker
        fills = domain.auto_fill(
            message.entities,
            intent=message.intent_name,
            active_loop=tracker.active_form_name,
            requested_slot=tracker.slots.get(REQUESTED_SLOT),
            text=message.text,
        )
        for name, value in fills:
            if mapped_slots or not domain.slot_by_name[name].mappings:
                self.log(SlotSet(name=name, value=value, timestamp=ts))

    @property
    def is_new(self) -> bool:
        return self.version == 0

    def log(self, event: Event) -> None:
        try:
            self.tracker.update(event)
        except NeedsHistory:
            stored = self.engine.read_events(self.cid) if self.version else []
            self.tracker = Tracker.from_events(
                self.cid,
                self.engine.domain,
                [*stored, *self.new, event],
                self.engine.history,
            )
        self.new.append(event)

    def commit(self, key: str | None = None, answer: Any = None) -> None:
        """Append the new events; ``key`` is stored with ``answer``, so a retry of
        the request finds it applied (``Turn._run``). Afterwards the session is
        at the new version with nothing new: the server-side loop goes on with
        it, one write per action."""
        snapshot = self.tracker.to_snapshot()
        args = (self.cid, [event_to_dict(e) for e in self.new], self.version, snapshot)
        started = perf_counter()
        try:
            if key is None:
                self.version = self.engine.store.append(*args)
            else:
                self.keys = {**self.keys, key: answer}
                self.version = self.engine.store.append(*args, self.keys)
        finally:
            self.engine.observer.phase("store_write", perf_counter() - started)
        self.new = []
        self.snapshot = snapshot


class Turn:
    """One request's work on conversations, with one model set from start to end."""

    def __init__(self, engine: Engine, models: ModelSet):
        self.models = models
        self.fingerprint = models.fingerprint
        self.core = models.core
        self.interpreter = models.interpreter
        self.domain: Domain = models.core.domain
        #: how many past states a tracker keeps for this model's policies
        self.history: int = models.core.max_history
        self.store = engine.store
        self.clock = engine.clock
        self.max_attempts = engine.max_attempts
        self.observer = engine.observer
        self.queue = engine.queue

    # ---- helpers -----------------------------------------------------------------
    def read_events(self, cid: str, start: int = 0) -> list[Event]:
        return [event_from_dict(d, self.clock) for d in self.store.read_log(cid, start)]

    def _run(
        self,
        cid: str,
        body: Callable[[Session], Any],
        pending: PendingLoad | None = None,
        key: str | None = None,
        replay: Callable[[Session, Any], Any] | None = None,
    ) -> Any:
        """``body`` on fresh state until its write wins; ``pending`` is the first
        attempt's load, asked for earlier.

        The turns of one conversation in this process go one at a time
        (``worker.turnqueue``): a turn that waited starts from the state the turn
        before it wrote, its own load unread. A write that loses to another
        process redoes the turn at once on the state its conflict answer carries;
        from the second conflict on, after a short random pause and a load.

        A request whose idempotency ``key`` a write already carries was applied
        (its answer was lost, or was a 503 after a slow commit): it writes
        nothing and answers what that write answered, with the current tracker.
        The compare-and-append makes this exact: two tries of one key race like
        two turns, and the loser reloads and finds the winner's key.
        """
        ticket = self.queue.enter(cid)
        try:
            loaded = ticket.start()
            if pending is not None and (ticket.waited or loaded is not None):
                pending.cancel()  # sent before the wait: older than what it waited for
                pending = None
            for attempt in range(self.max_attempts):
                session = Session(self, cid, pending, loaded)
                pending = loaded = None
                if key is not None and key in session.keys:
                    log.info("%r: request %r was applied already", cid, key)
                    return (replay or _replay_answer)(session, session.keys[key])
                result = body(session)
                try:
                    session.commit(key, _answer_of(result))
                except VersionConflict as conflict:
                    log.debug("conflict on %r, attempt %d", cid, attempt + 1)
                    self.observer.conflict()
                    if attempt:
                        # NOTE: a short random pause spreads the retries of many
                        # writers to one conversation; the state the conflict
                        # answered is older than the pause: load it again.
                        time.sleep(random.uniform(0, 0.001 * min(attempt, 10)))
                    else:
                        loaded = conflict.current
                    continue
                ticket.wrote(partial(self._written, session))
                return result
        finally:
            ticket.leave()
        raise ConversationConflict(
            f"conversation '{cid}' changed under {self.max_attempts} attempts in a row"
        )

    def _written(self, session: Session) -> Loaded:
        assert session.snapshot is not None
        return self.store.after_write(
            session.cid, session.version, session.snapshot, session.keys
        )

    def _events(self, items: Any) -> list[Event]:
        if not isinstance(items, list):
            raise InvalidInput("'events' must be a list of event objects", "events")
        events = events_from_dicts(items, self.clock)
        for i, event in enumerate(events):
            if (
                isinstance(event, SlotSet)
                and event.name not in self.domain.slot_by_name
            ):
                raise InvalidEvent(
                    f"event {i}: unknown slot '{event.name}'; the domain's slots: "
                    + ", ".join(self.domain.slot_by_name)
                )
        return events

    def _next(self, s: Session) -> dict[str, Any]:
        tracker = s.tracker
        if tracker.paused and tracker.latest_intent != RESTART_INTENT:
            return {"next_action": None, "info": PAUSED_INFO, "tracker": _dump(tracker)}
        started = perf_counter()
        prediction = self.core.next_action(tracker)
        self.observer.phase("policy", perf_counter() - started)
        if prediction.action == ACTION_LISTEN:
            s.log(
                ActionExecuted(
                    name=ACTION_LISTEN,
                    policy=prediction.policy,
                    confidence=prediction.confidence,
                    timestamp=self.clock(),
                )
            )
        return {"next_action": prediction.action, "tracker": _dump(s.tracker)}

    # ---- the remote loop: parse / continue ----------------------------------------
    def parse(self, cid: str, text: str, key: str | None = None) -> dict[str, Any]:
        key = check_key(key)
        # PERF: the conversation is on its way from the store while NLU runs, unless
        # a turn of this process holds it: this one will start from what that writes.
        pending = None if self.queue.busy(cid) else self.store.prefetch(cid)
        started = perf_counter()
        try:
            parse_data = self.interpreter.parse(text)
        except BaseException:
            if pending is not None:
                pending.cancel()
            raise
        self.observer.phase("nlu", perf_counter() - started)

        def body(s: Session) -> dict[str, Any]:
            s.log_message(
                UserUttered(
                    text=parse_data.get("text", text),
                    parse_data=parse_data,
                    timestamp=self.clock(),
                )
            )
            return self._next(s)

        return self._run(cid, body, pending, key)

    def continue_(
        self, cid: str, executed_action: Any, events: Any, key: str | None = None
    ) -> dict[str, Any]:
        key = check_key(key)
        if executed_action is not None:
            if not isinstance(executed_action, str):
                raise InvalidInput(
                    "'executed_action' must be a string or null", "executed_action"
                )
            self.domain.index_of_action(executed_action)
        new_events = self._events(events if events is not None else [])

        # NOTE: an action that rejected its run (a form that cannot use the message)
        # did not happen: its rejection is logged instead of it, as Rasa 2+ does,
        # so the policies see the state before it.
        rejected = any(
            isinstance(e, ActionExecutionRejected) and e.name == executed_action
            for e in new_events
        )

        def body(s: Session) -> dict[str, Any]:
            if executed_action not in (None, ACTION_LISTEN) and not rejected:
                s.log(ActionExecuted(name=executed_action, timestamp=self.clock()))
            for event in new_events:
                s.log(event)
            if executed_action == ACTION_LISTEN:
                return {
                    "next_action": None,
                    "info": LISTEN_INFO,
                    "tracker": _dump(s.tracker),
                }
            return self._next(s)

        return self._run(cid, body, key=key)

    # ---- tracker endpoints ----------------------------------------------------------
    def tracker(
        self,
        cid: str,
        include_events: str = "AFTER_RESTART",
        until: float | None = None,
    ) -> dict[str, Any]:
        """The tracker dump. An unknown conversation answers as a new one (with its
        first ``action_listen``) but is not stored: a read never writes."""
        verbosity = check_verbosity(include_events)
        session = Session(self, cid)
        if verbosity == "NONE" and until is None:
            return _dump(session.tracker)
        events = session.new if session.is_new else self.read_events(cid)
        if until is not None:
            cut = next(
                (i for i, e in enumerate(events) if e.timestamp > until), len(events)
            )
            events = events[:cut]
        return self._dump_events(cid, events, verbosity)

    def append_events(
        self,
        cid: str,
        items: Any,
        include_events: str = "AFTER_RESTART",
        key: str | None = None,
    ) -> dict[str, Any]:
        key = check_key(key)
        verbosity = check_verbosity(include_events)
        events = self._events(items)

        def body(s: Session) -> Tracker:
            for event in events:
                s.log(event)
            return s.tracker

        tracker = self._run(cid, body, key=key, replay=lambda s, _: s.tracker)
        if verbosity == "NONE":
            return _dump(tracker)
        return self._dump_events(cid, self.read_events(cid), verbosity)

    def replace_events(
        self, cid: str, items: Any, include_events: str = "AFTER_RESTART"
    ) -> dict[str, Any]:
        verbosity = check_verbosity(include_events)
        if not isinstance(items, list):
            raise InvalidInput("the body must be a list of event objects")
        # NOTE: as the original, items without an "event" key are skipped.
        events = self._events(
            [i for i in items if not isinstance(i, dict) or "event" in i]
        )
        tracker = Tracker.from_events(cid, self.domain, events, self.history)
        self.store.replace(
            cid, [event_to_dict(e) for e in events], tracker.to_snapshot()
        )
        return _dump(tracker, _select(events, verbosity))

    def _dump_events(self, cid: str, events: list[Event], verbosity: str) -> dict:
        """State and events from one read of the log, so they always agree (a
        snapshot read apart from the log could be a write older or newer)."""
        tracker = Tracker.from_events(cid, self.domain, events, self.history)
        return _dump(tracker, _select(events, verbosity))


class ModelSource(Protocol):
    def current(self) -> ModelSet: ...

    def named(self, name: str) -> ModelSet: ...


class Engine:
    """Everything a request can ask of a conversation, independent of HTTP.

    Each call takes the current model set once (``turn``); the methods below are
    shorthands for ``engine.turn().<method>``.
    """

    def __init__(
        self,
        models: ModelSource,
        store: TrackerStore,
        *,
        clock: Callable[[], float] = time.time,
        max_attempts: int = 30,
        observer: TurnObserver = NO_OBSERVER,
    ):
        self.models = models
        self.store = store
        self.clock = clock
        self.max_attempts = max_attempts
        #: told of each turn's phases and conflicts (``api.metrics``)
        self.observer = observer
        #: the turns of one conversation in this process go one at a time
        self.queue = TurnQueue()

    @classmethod
    def for_model(
        cls, core: Any, interpreter: Any, store: TrackerStore, **kwargs: Any
    ) -> Engine:
        """An engine that always serves one model held in memory."""
        return cls(FixedModels(ModelSet.of(core, interpreter)), store, **kwargs)

    def turn(self) -> Turn:
        return Turn(self, self.models.current())

    @property
    def domain(self) -> Domain:
        return self.models.current().core.domain

    def nlu(self, model: str | None = None) -> ModelSet:
        """The current model set, or a registered one by name (``/parse?model=``)."""
        return self.models.named(model) if model else self.models.current()

    def parse_message(self, text: str, model: str | None = None) -> dict[str, Any]:
        """NLU only; touches no conversation."""
        return self.nlu(model).interpreter.parse(text)

    def parse(self, cid: str, text: str, key: str | None = None) -> dict[str, Any]:
        return self.turn().parse(cid, text, key)

    def continue_(
        self, cid: str, executed_action: Any, events: Any, key: str | None = None
    ) -> dict[str, Any]:
        return self.turn().continue_(cid, executed_action, events, key)

    def tracker(
        self,
        cid: str,
        include_events: str = "AFTER_RESTART",
        until: float | None = None,
    ) -> dict[str, Any]:
        return self.turn().tracker(cid, include_events, until)

    def append_events(
        self,
        cid: str,
        items: Any,
        include_events: str = "AFTER_RESTART",
        key: str | None = None,
    ) -> dict[str, Any]:
        return self.turn().append_events(cid, items, include_events, key)

    def replace_events(
        self, cid: str, items: Any, include_events: str = "AFTER_RESTART"
    ) -> dict[str, Any]:
        return self.turn().replace_events(cid, items, include_events)

    def conversation_ids(self) -> list[str]:
        return sorted(self.store.conversation_ids())

    def conversation_page(self, cursor: str | None, limit: int) -> dict[str, Any]:
        """A page of ids (``GET /conversations?limit=&cursor=``), in the store's
        order, and the cursor of the next one (None after the last)."""
        try:
            ids, after = self.store.conversation_page(cursor, limit)
        except ValueError as err:
            raise InvalidInput(
                "'cursor' must be a next_cursor this server answered", "cursor", "query"
            ) from err
        return {"conversations": ids, "next_cursor": after}

    def status(self) -> dict[str, Any]:
        """Readiness: a model is loaded (always, once we exist) and Redis answers."""
        models = self.models.current()
        status: dict[str, Any] = {
            "model": models.name,
            "model_fingerprint": models.fingerprint,
            "is_ready": True,
            "store": "ok",
        }
        try:
            self.store.ping()
        except StoreUnavailable as err:
            status.update(is_ready=False, store=f"unavailable: {err}")
        return status


def _answer_of(result: Any) -> dict[str, Any]:
    """What a turn's idempotency key keeps of its answer: all but the tracker."""
    if not isinstance(result, dict):
        return {}
    return {k: v for k, v in result.items() if k != "tracker"}


def _replay_answer(session: Session, answer: dict[str, Any]) -> dict[str, Any]:
    return {**answer, "tracker": _dump(session.tracker)}


def check_verbosity(value: str) -> str:
    upper = value.upper() if isinstance(value, str) else ""
    if upper not in VERBOSITIES:
        raise InvalidInput(
            f"invalid include_events {value!r}; use one of {', '.join(VERBOSITIES)}",
            "include_events",
            "query",
        )
    return upper


def _select(events: Sequence[Event], verbosity: str) -> list[Event] | None:
    if verbosity == "ALL":
        return list(events)
    if verbosity == "APPLIED":
        return applied_events(events)
    if verbosity == "AFTER_RESTART":
        return events_after_restart(events)
    return None


def _dump(tracker: Tracker, events: Sequence[Event] | None = None) -> dict[str, Any]:
    out = tracker.dump()
    out["events"] = [event_to_dict(e) for e in events] if events is not None else None
    return out
