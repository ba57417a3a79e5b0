"""The server runs the bot: a message is parsed, then predict → run → log until the
bot listens (Rasa's ``handle_message``), with the actions run here.

Ordering. A conversation's message loops never interleave: a loop holds the
conversation's lease in the store (``acquire_lease``) from its first write to its
last, and a second message for the same conversation, on any worker, waits for it
(up to ``lease_wait`` seconds, then ``ConversationBusy``). Every step is still a
compare-and-append, so a writer outside the loops (``/parse``, ``/continue``,
``/tracker/events``) or a loop whose lease ran out can never be overwritten:

- a batch of steps without side effects (the message, responses, built-ins) is
  redone on a conflict: nothing outside the conversation has happened;
- the step of an action that calls out, written alone, is dropped when it loses
  (its call has happened, its events are not logged; a warning names it) and the
  loop goes on from the state that won, or stops if its lease is gone. With one
  sender per conversation no step ever conflicts, so no action is called twice.

A worker that dies mid-loop leaves every step that called out logged, and the
conversation simply continues from there with the next message.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import threading
import time
from collections.abc import Callable
from collections.abc import Generator
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from time import perf_counter
from types import TracebackType
from typing import Any

from trackerstore import StoreError
from trackerstore import TrackerStore
from trackerstore import VersionConflict
from worker.actions import ActionEndpoint
from worker.actions import ActionFailed
from worker.actions import ActionRejected
from worker.actions import ActionRunner
from worker.actions import NLGEndpoint
from worker.domain import ACTION_LISTEN
from worker.errors import ConversationBusy
from worker.errors import ConversationConflict
from worker.errors import InvalidInput
from worker.events import ActionExecuted
from worker.events import ActionExecutionRejected
from worker.events import BotUttered
from worker.events import Event
from worker.events import LoopInterrupted
from worker.events import SlotSet
from worker.events import UserUttered
from worker.model import RESTART_INTENT
from worker.models import ModelSet
from worker.policies.ensemble import Prediction
from worker.tracker import Tracker
from worker.turn import Engine
from worker.turn import Session
from worker.turn import Turn

log = logging.getLogger(__name__)

#: Rasa's circuit breaker: actions per message before the loop gives up
MAX_PREDICTIONS = int(os.environ.get("MAX_NUMBER_OF_PREDICTIONS", "10"))
#: the text Rasa gives a message injected by ``trigger_intent``
EXTERNAL_PREFIX = "EXTERNAL: "


@dataclass(frozen=True)
class LoopSettings:
    """``lease_ttl`` must outlast one step (an action server's timeout); the lease
    is renewed before every action."""

    lease_ttl: float = 30.0
    lease_wait: float = 30.0
    max_predictions: int = MAX_PREDICTIONS


class Lease:
    """The conversation's lease, held for one message loop (``with``)."""

    def __init__(self, store: TrackerStore, cid: str, settings: LoopSettings):
        self.store = store
        self.cid = cid
        self.ttl = settings.lease_ttl
        self.wait = settings.lease_wait
        self.token = secrets.token_hex(16)

    def __enter__(self) -> Lease:
        deadline = time.monotonic() + self.wait
        pause = 0.002
        while not self.store.acquire_lease(self.cid, self.token, self.ttl):
            if time.monotonic() >= deadline:
                raise ConversationBusy(
                    f"conversation '{self.cid}' is busy with another message "
                    f"for more than {self.wait:g} s"
                )
            time.sleep(random.uniform(pause / 2, pause))
            pause = min(pause * 2, 0.1)
        return self

    def renew(self) -> bool:
        """Still ours (extended for another ``ttl``)? False once another holds it."""
        return self.store.acquire_lease(self.cid, self.token, self.ttl)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.store.release_lease(self.cid, self.token)
        except StoreError as err:
            # NOTE: the lease runs out by itself; the answer is not lost for it.
            log.warning("%r: lease not released (%s); it runs out", self.cid, err)


@dataclass
class LoopResult:
    """What a request gets back: the bot's messages (a channel's shape) and the
    conversation as it ended."""

    cid: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    session: Session | None = None


class MessageLoop:
    """One request's server-side work on a conversation, with one model set."""

    def __init__(self, turn: Turn, runner: ActionRunner, settings: LoopSettings):
        self.turn = turn
        self.runner = runner
        self.settings = settings

    # ---- entry points ---------------------------------------------------------------
    def handle_message(
        self,
        cid: str,
        text: str,
        *,
        parse_data: dict[str, Any] | None = None,
        channel: str | None = None,
        metadata: dict[str, Any] | None = None,
        message_id: str | None = None,
    ) -> LoopResult:
        """``/webhooks/rest/webhook``, ``/respond``: the whole loop, all at once."""
        with self.start(
            cid,
            text,
            parse_data=parse_data,
            channel=channel,
            metadata=metadata,
            message_id=message_id,
        ) as running:
            for messages in running:
                running.result.messages += messages
        return running.result

    def start(
        self,
        cid: str,
        text: str,
        *,
        parse_data: dict[str, Any] | None = None,
        channel: str | None = None,
        metadata: dict[str, Any] | None = None,
        message_id: str | None = None,
    ) -> Running:
        """Log the message under the conversation's lease, now (so its errors are
        the request's); iterating the answer runs the actions, each step's
        messages as soon as it is logged (``?stream=true``)."""
        if parse_data is None:
            started = perf_counter()
            parse_data = self.turn.interpreter.parse(text)
            self.turn.observer.phase("nlu", perf_counter() - started)
        lease = Lease(self.turn.store, cid, self.settings).__enter__()
        # NOTE: a message whose slot extraction calls out is written at once;
        # else it is written with the first steps of the loop, and logged again
        # if that write loses a race.
        pure = not self._extraction_calls_out()

        def log_user(commit: bool) -> tuple[Session, list[Event]]:
            return self._log_user(
                cid, text, parse_data, channel, metadata, message_id, commit=commit
            )

        try:
            session, extracted = log_user(not pure)
        except BaseException:
            lease.__exit__(None, None, None)
            raise
        return Running(
            self,
            lease,
            LoopResult(cid, [], session),
            channel,
            first=_messages(cid, extracted),
            redo=(lambda: log_user(False)[0]) if pure else None,
        )

    def trigger_intent(
        self,
        cid: str,
        intent: str,
        entities: list[dict[str, Any]],
        channel: str | None = None,
    ) -> LoopResult:
        """An intent from outside (a reminder, another system): the loop, as if
        the user had said it, with Rasa's ``EXTERNAL: <intent>`` text."""
        text = f"{EXTERNAL_PREFIX}{intent}"
        parse_data = {
            "intent": {"name": intent, "confidence": 1.0},
            "entities": entities,
            "text": text,
        }
        return self.handle_message(cid, text, parse_data=parse_data, channel=channel)

    def execute(
        self,
        cid: str,
        action: str,
        policy: str | None = None,
        confidence: float | None = None,
        channel: str | None = None,
    ) -> LoopResult:
        """One named action, logged with the given policy and confidence; no
        prediction follows (Rasa's ``execute_action``)."""
        self.turn.domain.index_of_action(action)
        prediction = _Chosen(action, policy, confidence)
        with Lease(self.turn.store, cid, self.settings):
            session = Session(self.turn, cid)
            events = self._run_action(session, prediction, channel)
            _log_all(session, events)
            try:
                session.commit()
            except VersionConflict:
                # NOTE: a writer outside the loops won; the action ran and is not
                # called again: the client asked for one call.
                log.warning(
                    "%r: the step of '%s' lost a conflict; its events are dropped",
                    cid,
                    action,
                )
                return LoopResult(cid, [], Session(self.turn, cid))
        return LoopResult(cid, _messages(cid, events), session)

    def log_message(
        self, cid: str, text: str, parse_data: dict[str, Any] | None
    ) -> Session:
        """``/messages``: the user's message and its slots, no prediction."""
        if parse_data is None:
            parse_data = self.turn.interpreter.parse(text)
        with Lease(self.turn.store, cid, self.settings):
            session, _ = self._log_user(
                cid, text, parse_data, None, None, None, extract=False
            )
            return session

    # ---- the steps ------------------------------------------------------------------
    def _log_user(
        self,
        cid: str,
        text: str,
        parse_data: dict[str, Any],
        channel: str | None,
        metadata: dict[str, Any] | None,
        message_id: str | None,
        extract: bool = True,
        commit: bool = True,
    ) -> tuple[Session, list[Event]]:
        """Log the message and the slots it fills; redone on a conflict (with the
        lease held, only a writer outside the loops causes one). Slots with Rasa
        2+ ``mappings`` are filled by ``action_extract_slots`` when ``extract``
        (its custom mappings call the action server, and what they say is
        answered); 0.x slots by their entity. Without ``commit`` the message is
        left for the first write of the loop (``_predict_and_run``'s batch)."""
        turn = self.turn
        domain = turn.domain
        mapped = extract and any(slot.mappings for slot in domain.slots)
        for attempt in range(turn.max_attempts):
            session = Session(turn, cid)
            session.log_message(
                UserUttered(
                    text=parse_data.get("text", text),
                    parse_data=parse_data,
                    input_channel=channel,
                    message_id=message_id,
                    metadata=metadata,
                    timestamp=turn.clock(),
                ),
                mapped_slots=not mapped,
            )
            extracted = self._extract_slots(session, channel) if mapped else []
            _log_all(session, extracted)
            if not commit:
                return session, extracted
            try:
                session.commit()
            except VersionConflict:
                turn.observer.conflict()
                time.sleep(random.uniform(0, 0.001 * min(attempt + 1, 10)))
                continue
            return session, extracted
        raise ConversationConflict(
            f"conversation '{cid}' changed under {turn.max_attempts} attempts in a row"
        )

    def _extract_slots(self, session: Session, channel: str | None) -> list[Event]:
        """Rasa 3's ``action_extract_slots``: its events, without an ``action``
        event of its own; a failure of a custom mapping's server fills nothing."""

        def history() -> list[Event]:
            return [*self.turn.read_events(session.cid), *session.new]

        try:
            events = self.runner.run(
                "action_extract_slots", session.tracker, history, channel
            )
        except (ActionFailed, ActionRejected) as err:
            log.error("%r: slot extraction failed: %s", session.cid, err)
            return []
        return self._known(session.cid, "action_extract_slots", events)

    def _predict_and_run(
        self,
        lease: Lease,
        session: Session,
        result: LoopResult,
        channel: str | None,
        redo: Callable[[], Session] | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Predict and run until the bot listens (``_Steps``)."""
        return _Steps(self, lease, session, result, channel, redo).run()

    def _call_out(
        self,
        lease: Lease,
        session: Session,
        prediction: Prediction,
        channel: str | None,
    ) -> tuple[Session, list[dict[str, Any]] | None]:
        """One action that may call out, written alone: the session to go on
        with, and the step's messages (None: the loop must stop)."""
        cid, action = session.cid, prediction.action
        if not lease.renew():
            log.warning(
                "%r: the message loop lost its lease before '%s'; it stops", cid, action
            )
            return session, None
        events = self._run_action(session, prediction, channel)
        _log_all(session, events)
        try:
            session.commit()
        except VersionConflict:
            self.turn.observer.conflict()
            log.warning(
                "%r: the step of '%s' lost a conflict; its events are dropped",
                cid,
                action,
            )
            if not lease.renew():
                return session, None
            return Session(self.turn, cid), []
        except StoreError as err:
            # NOTE: the earlier steps are logged and answered; this one is not, and
            # the next message goes on from the logged state.
            log.error("%r: '%s' not logged: %s", cid, action, err)
            return session, None
        return session, _messages(cid, events)

    def _extraction_calls_out(self) -> bool:
        """Slot extraction calls the action server: custom mappings with an
        action, or ``action_validate_slot_mappings`` in the domain."""
        domain = self.turn.domain
        return "action_validate_slot_mappings" in domain.user_actions or any(
            m.get("type") == "custom" and m.get("action")
            for slot in domain.slots
            for m in slot.mappings
        )

    def _pure(self, action: str) -> bool:
        """An action without side effects outside the conversation: a response
        or a built-in (not a custom action, not a form, which may call its
        validation action)."""
        domain = self.turn.domain
        if action in domain.forms:
            return False
        if action in domain.user_actions:
            return action.startswith("utter_") and action in domain.templates
        return True

    def _run_action(
        self, session: Session, prediction: Prediction | _Chosen, channel: str | None
    ) -> list[Event]:
        """The events to log for one action: its ``action`` event and what it
        returned; only its rejection if it rejected; no events of its own if it
        failed (Rasa 3 logs it as run and goes on)."""
        turn, name = self.turn, prediction.action
        ts = turn.clock()
        executed = ActionExecuted(
            name=name,
            policy=prediction.policy,
            confidence=prediction.confidence,
            timestamp=ts,
        )
        if name == ACTION_LISTEN:
            return [executed]
        # NOTE: Rasa's rule policy marks a loop taken up again after an unhappy
        # path as interrupted (``LoopInterrupted``, logged before the action):
        # the form asks its question again instead of validating the message
        # that brought the conversation back to it.
        if _returns_from_unhappy_path(session.tracker, name):
            session.log(LoopInterrupted(is_interrupted=True, timestamp=ts))

        def history() -> list[Event]:
            return [*turn.read_events(session.cid), *session.new]

        started = perf_counter()
        try:
            produced = self.runner.run(name, session.tracker, history, channel)
        except ActionRejected as err:
            log.info("%r: action '%s' rejected its run: %s", session.cid, name, err)
            return [
                ActionExecutionRejected(
                    name=name,
                    policy=prediction.policy,
                    confidence=prediction.confidence,
                    timestamp=ts,
                )
            ]
        except ActionFailed as err:
            log.error(
                "%r: action '%s' failed (%s); the bot goes on without its events",
                session.cid,
                name,
                err.reason,
            )
            return [executed]
        finally:
            turn.observer.phase("action", perf_counter() - started)
        produced = self._known(session.cid, name, produced)
        if any(isinstance(e, ActionExecutionRejected) for e in produced):
            return produced
        return [executed, *produced]

    def _known(self, cid: str, action: str, events: list[Event]) -> list[Event]:
        """Drop slots the domain does not have (Rasa logs and ignores them too):
        an action server cannot grow the conversation's state."""
        slots = self.turn.domain.slot_by_name
        kept = []
        for event in events:
            if isinstance(event, SlotSet) and event.name not in slots:
                log.warning(
                    "%r: action '%s' set unknown slot '%s'; ignored",
                    cid,
                    action,
                    event.name,
                )
                continue
            kept.append(event)
        return kept


class _Steps:
    """The actions of one message, predicted and run until the bot listens.

    PERF: steps of actions without side effects (responses, built-ins) are written
    together, with the user's message when ``redo`` can log it again: one write for
    a turn of responses. A batch that loses a race is redone from the state that
    won; before an action that calls out, the batch is written, and the action's
    own step is written alone (``MessageLoop._call_out``)."""

    def __init__(
        self,
        loop: MessageLoop,
        lease: Lease,
        session: Session,
        result: LoopResult,
        channel: str | None,
        redo: Callable[[], Session] | None,
    ):
        self.loop = loop
        self.turn = loop.turn
        self.lease = lease
        self.session = session
        self.result = result
        self.channel = channel
        #: logs the message again while it is not written; None once it is
        self.redo = redo
        #: the messages of the batch not written yet
        self.pending: list[dict[str, Any]] = []
        self.action = ""

    def run(self) -> Iterator[list[dict[str, Any]]]:
        attempts = 0
        while True:
            outcome = yield from self.round()
            if outcome == "stop":
                return
            attempts += 1
            state = self.flush() if self.session.new else "ok"
            if state == "stop":
                return
            if state == "ok":
                break
            if attempts >= self.turn.max_attempts:
                raise ConversationConflict(
                    f"conversation '{self.result.cid}' changed under {attempts} "
                    "attempts in a row"
                )
            # NOTE: the batch had no side effects: it is redone from the state
            # that won, with the actions it may still run.
        if self.pending:
            yield self.pending

    def round(self) -> Generator[list[dict[str, Any]], None, str]:
        """Predictions until the bot listens (``end``) or the loop must ``stop``."""
        turn, cid, limit = (
            self.turn,
            self.result.cid,
            self.loop.settings.max_predictions,
        )
        for _ in range(limit):
            tracker = self.session.tracker
            if tracker.paused and tracker.latest_intent != RESTART_INTENT:
                return "end"
            started = perf_counter()
            prediction = turn.core.next_action(tracker)
            turn.observer.phase("policy", perf_counter() - started)
            self.action = prediction.action
            if self.loop._pure(self.action):
                events = self.loop._run_action(self.session, prediction, self.channel)
                _log_all(self.session, events)
                self.pending += _messages(cid, events)
                if self.action == ACTION_LISTEN:
                    return "end"
                continue
            state = self.flush() if self.session.new else "ok"
            if state != "ok":
                if state == "stop":
                    return "stop"
                continue
            self.redo = None
            if self.pending:
                yield self.pending
                self.pending = []
            self.session, messages = self.loop._call_out(
                self.lease, self.session, prediction, self.channel
            )
            self.result.session = self.session
            if messages is None:
                return "stop"
            yield messages
        log.warning(
            "%r: circuit breaker tripped after %d actions without listening", cid, limit
        )
        return "end"

    def flush(self) -> str:
        """Write the batch: ``ok``; ``redo`` (with a fresh session) if it lost a
        race; ``stop`` if the store failed after part of this message was written
        (``redo`` is gone then): what was written is answered, never an error for
        it."""
        cid = self.result.cid
        try:
            self.session.commit()
        except VersionConflict:
            self.turn.observer.conflict()
            log.info("%r: steps up to '%s' redone after a conflict", cid, self.action)
            self.session = self.redo() if self.redo else Session(self.turn, cid)
            self.result.session = self.session
            self.pending = []
            return "redo"
        except StoreError as err:
            if self.redo is not None:
                raise
            log.error("%r: steps up to '%s' not logged: %s", cid, self.action, err)
            self.pending = []
            return "stop"
        return "ok"


class Running:
    """A message loop under way: its message is logged and the lease held until
    the actions are run (iterate) or the loop is dropped (``close``)."""

    def __init__(
        self,
        loop: MessageLoop,
        lease: Lease,
        result: LoopResult,
        channel: str | None,
        first: list[dict[str, Any]],
        redo: Callable[[], Session] | None,
    ):
        self.loop = loop
        self.lease: Lease | None = lease
        self.result = result
        self.channel = channel
        #: what the message's slot extraction said (custom mappings' actions)
        self.first = first
        #: logs the message again on a fresh load, while it is not written yet
        self.redo = redo

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        lease, session = self.lease, self.result.session
        if lease is None or session is None:
            return
        try:
            if self.first:
                yield self.first
            yield from self.loop._predict_and_run(
                lease, session, self.result, self.channel, self.redo
            )
        finally:
            self.close()

    def close(self) -> None:
        """Free the conversation; a loop dropped midway keeps its logged steps."""
        lease, self.lease = self.lease, None
        if lease is not None:
            lease.__exit__(None, None, None)

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _log_all(session: Session, events: list[Event]) -> None:
    for event in events:
        session.log(event)


def _returns_from_unhappy_path(tracker: Tracker, action: str) -> bool:
    """The active loop runs after a user message, and the last action before that
    message was another one than the loop (the unhappy path's)."""
    if (
        action != tracker.active_form_name
        or tracker.latest_action_name != ACTION_LISTEN
    ):
        return False
    for event in reversed(tracker.window):
        if isinstance(event, ActionExecuted) and event.name != ACTION_LISTEN:
            return event.name != action
    return False


@dataclass(frozen=True)
class _Chosen:
    """An action chosen by the client (``/execute``), shaped like a prediction."""

    action: str
    policy: str | None
    confidence: float | None


def _messages(recipient: str, events: list[Event]) -> list[dict[str, Any]]:
    """The channel messages of the bot events, as Rasa's collecting output
    channel (the REST channel) renders them."""
    out: list[dict[str, Any]] = []
    for event in events:
        if isinstance(event, BotUttered):
            out += channel_messages(recipient, event)
    return out


def channel_messages(recipient: str, event: BotUttered) -> list[dict[str, Any]]:
    """One bot message as Rasa's ``OutputChannel.send_response`` sends it to a
    ``CollectingOutputChannel``: quick replies or buttons with their text, else
    the text split on blank lines; then custom, image, attachment and elements,
    each a message of its own."""
    data = event.data if isinstance(event.data, dict) else {}
    text = event.text
    out: list[dict[str, Any]] = []

    def emit(**parts: Any) -> None:
        out.append(
            {"recipient_id": recipient}
            | {k: v for k, v in parts.items() if v is not None}
        )

    if data.get("quick_replies"):
        emit(text=text, buttons=data["quick_replies"])
    elif data.get("buttons"):
        emit(text=text, buttons=data["buttons"])
    elif text:
        for part in text.strip().split("\n\n"):
            emit(text=part)
    if data.get("custom"):
        emit(custom=data["custom"])
    if data.get("image"):
        emit(image=data["image"])
    # NOTE: Rasa logs an image as the attachment too (a legacy it keeps for
    # stored events) and drops that copy when it sends (``BotUttered.message``).
    if data.get("attachment") and data.get("attachment") != data.get("image"):
        emit(attachment=data["attachment"])
    for element in data.get("elements") or ():
        if isinstance(element, dict):
            title = f"{element.get('title', '')} : {element.get('subtitle', '')}"
            emit(text=title, buttons=element.get("buttons") or [])
    return out


def check_entities(value: Any) -> list[dict[str, Any]]:
    """``trigger_intent``'s entities: Rasa's ``{"name": value}`` map or a list of
    entity objects with a string ``entity``."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [{"entity": str(k), "value": v} for k, v in value.items()]
    if not isinstance(value, list) or not all(
        isinstance(e, dict) and isinstance(e.get("entity"), str) for e in value
    ):
        raise InvalidInput(
            "'entities' must be an object of entity values or a list of entity "
            "objects with an 'entity' name",
            "entities",
        )
    return value


class Bot:
    """The server-side loop for whichever model set is current: one action runner
    per model set (its domain and connection pool), shared by the threads."""

    #: runners kept for recent model sets (a switch back reuses its pool)
    KEEP = 4

    def __init__(
        self,
        engine: Engine,
        action_endpoint: ActionEndpoint | None = None,
        nlg_endpoint: NLGEndpoint | None = None,
        settings: LoopSettings | None = None,
    ):
        self.engine = engine
        self.action_endpoint = action_endpoint
        self.nlg_endpoint = nlg_endpoint
        self.settings = settings or LoopSettings()
        self._runners: dict[str, ActionRunner] = {}
        self._lock = threading.Lock()

    def loop(self, turn: Turn | None = None) -> MessageLoop:
        turn = turn or self.engine.turn()
        return MessageLoop(turn, self.runner(turn.models), self.settings)

    def runner(self, models: ModelSet) -> ActionRunner:
        with self._lock:
            runner = self._runners.pop(models.fingerprint, None)
            if runner is None:
                runner = ActionRunner(
                    models.core.domain, self.action_endpoint, self.nlg_endpoint
                )
            self._runners[models.fingerprint] = runner  # the newest last
            while len(self._runners) > self.KEEP:
                # NOTE: not closed: a request may still be using it; its pool goes
                # with it when the last reference does.
                self._runners.pop(next(iter(self._runners)))
            return runner
