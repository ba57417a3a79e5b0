"""The server-side message loop against the in-memory store: Rasa's
``handle_message`` steps, its circuit breaker, rejections and failures of
actions, the lease, and steps that lose a conflict."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

from tests.data import RASA_EXAMPLES
from trackerstore import InMemoryStore
from trackerstore import StoreUnavailable
from worker.actions import ActionFailed
from worker.actions import ActionRejected
from worker.domain import Domain
from worker.errors import ConversationBusy
from worker.errors import InvalidInput
from worker.errors import UnknownAction
from worker.events import BotUttered
from worker.events import ConversationPaused
from worker.events import Event
from worker.events import FollowupAction
from worker.events import SlotSet
from worker.loop import EXTERNAL_PREFIX
from worker.loop import LoopSettings
from worker.loop import MessageLoop
from worker.loop import channel_messages
from worker.loop import check_entities
from worker.model import CoreModel
from worker.nlu import Interpreter
from worker.tracker import Tracker
from worker.turn import Engine

FIXTURES = RASA_EXAMPLES / "server_test_fixtures"
CONFIG = {
    "policies": [
        {"name": "AugmentedMemoizationPolicy", "max_history": 3},
        {"name": "MappingPolicy"},
    ]
}
Handler = Callable[[str, Tracker], list[Event]]


class Runner:
    """Runs actions by ``handlers`` (default: a text bot message per ``utter_``),
    and records every call, as an action server would see them."""

    def __init__(self, handlers: dict[str, Handler] | None = None):
        self.handlers = handlers or {}
        self.calls: list[str] = []

    def run(
        self,
        name: str,
        tracker: Tracker,
        events: Callable[[], list[Event]],
        channel: str | None = None,
    ) -> list[Event]:
        self.calls.append(name)
        if name in self.handlers:
            return self.handlers[name](name, tracker)
        return [BotUttered(text=f"said {name}", data={})]


@pytest.fixture(scope="module")
def core() -> CoreModel:
    domain = Domain.load(FIXTURES / "default_with_slots.yml")
    return CoreModel.train(domain, FIXTURES / "stories_defaultdomain.md", CONFIG)


@pytest.fixture
def engine(core) -> Engine:
    ticks = itertools.count(1000)
    return Engine.for_model(
        core, Interpreter(), InMemoryStore(), clock=lambda: float(next(ticks))
    )


def loop_of(engine: Engine, runner: Any, **settings: Any) -> MessageLoop:
    return MessageLoop(engine.turn(), runner, LoopSettings(**settings))


def names(engine: Engine, cid: str) -> list[tuple[str, Any]]:
    events = engine.tracker(cid, "ALL")["events"]
    return [(e["event"], e.get("name") or e.get("text")) for e in events]


def test_a_message_runs_actions_until_the_bot_listens(engine):
    runner = Runner()
    result = loop_of(engine, runner).handle_message("c", '/greet{"name": "Ada"}')

    assert result.messages == [{"recipient_id": "c", "text": "said utter_greet"}]
    assert runner.calls == ["utter_greet"]
    assert names(engine, "c") == [
        ("action", "action_listen"),
        ("user", '/greet{"name": "Ada"}'),
        ("slot", "name"),
        ("action", "utter_greet"),
        ("bot", "said utter_greet"),
        ("action", "action_listen"),
    ]
    events = engine.tracker("c", "ALL")["events"]
    assert events[3]["policy"].startswith("policy_") and events[3]["confidence"]
    assert result.session is not None
    assert result.session.tracker.slots == {"name": "Ada"}


def test_the_circuit_breaker_stops_an_endless_loop(engine):
    def again(name: str, tracker: Tracker) -> list[Event]:
        return [FollowupAction(name="utter_default")]

    runner = Runner({"utter_default": again, "utter_greet": again})
    loop_of(engine, runner, max_predictions=4).handle_message("c", "/greet")

    assert runner.calls == ["utter_greet"] + ["utter_default"] * 3
    # NOTE: as Rasa: the breaker logs no listen.
    assert names(engine, "c")[-1] == ("followup", "utter_default")


def test_a_rejected_action_is_logged_as_rejected_only(engine):
    calls = []

    def reject(name: str, tracker: Tracker) -> list[Event]:
        calls.append(name)
        raise ActionRejected(name, "the form cannot use this")

    runner = Runner({"utter_greet": reject})
    result = loop_of(engine, runner, max_predictions=2).handle_message("c", "/greet")

    assert result.messages == []
    events = names(engine, "c")
    assert ("action_execution_rejected", "utter_greet") in events
    assert ("action", "utter_greet") not in events


def test_a_failed_action_is_logged_without_its_events_and_the_bot_goes_on(
    engine, caplog
):
    def fail(name: str, tracker: Tracker) -> list[Event]:
        raise ActionFailed(name, "action server answered 500")

    runner = Runner({"utter_greet": fail})
    result = loop_of(engine, runner).handle_message("c", "/greet")

    assert result.messages == []
    assert names(engine, "c")[-2:] == [
        ("action", "utter_greet"),
        ("action", "action_listen"),
    ]
    assert "answered 500" in caplog.text


def test_unknown_slots_of_an_action_are_dropped(engine, caplog):
    def set_slots(name: str, tracker: Tracker) -> list[Event]:
        return [SlotSet(name="nope", value=1), SlotSet(name="name", value="Bo")]

    loop_of(engine, Runner({"utter_greet": set_slots})).handle_message("c", "/greet")

    assert ("slot", "nope") not in names(engine, "c")
    assert engine.tracker("c")["slots"] == {"name": "Bo"}
    assert "unknown slot 'nope'" in caplog.text


def test_a_paused_conversation_logs_the_message_and_runs_nothing(engine):
    engine.append_events("c", [{"event": "pause"}])
    runner = Runner()
    result = loop_of(engine, runner).handle_message("c", "/greet")
    assert result.messages == [] and runner.calls == []
    assert names(engine, "c")[-1] == ("user", "/greet")


def test_a_second_message_waits_for_the_first_loop(engine):
    """The second message's loop starts after the first one's last write, never
    between its steps."""
    inside = threading.Event()
    release = threading.Event()

    def slow(name: str, tracker: Tracker) -> list[Event]:
        inside.set()
        assert release.wait(10)
        return [BotUttered(text="first", data={})]

    first = threading.Thread(
        target=loop_of(engine, Runner({"utter_greet": slow})).handle_message,
        args=("c", "/greet"),
    )
    first.start()
    assert inside.wait(10)
    second = threading.Thread(
        target=loop_of(engine, Runner()).handle_message, args=("c", "/default")
    )
    second.start()
    second.join(0.2)
    assert second.is_alive(), "the second loop ran inside the first"
    release.set()
    first.join(10)
    second.join(10)

    texts = [n for kind, n in names(engine, "c") if kind in ("user", "bot")]
    assert texts == ["/greet", "first", "/default", "said utter_default"]


def test_a_message_gives_up_on_a_conversation_held_too_long(engine):
    engine.store.acquire_lease("c", "someone-else", 60)
    with pytest.raises(ConversationBusy, match="busy"):
        loop_of(engine, Runner(), lease_wait=0.05).handle_message("c", "/greet")
    assert engine.store.log_length("c") == 0


def test_a_step_that_loses_a_conflict_is_dropped_and_the_loop_goes_on(
    engine, caplog, monkeypatch
):
    """A writer outside the loops (the client's own ``/tracker/events``) wins the
    race against the step of an action that calls out: the action was called
    once, its events are not logged, and the loop predicts again from the state
    that won."""
    monkeypatch.setattr(MessageLoop, "_pure", lambda self, a: a == "action_listen")

    def raced(name: str, tracker: Tracker) -> list[Event]:
        engine.append_events("c", [{"event": "slot", "name": "name", "value": "X"}])
        return [BotUttered(text="lost", data={})]

    runner = Runner({"utter_greet": raced, "utter_default": raced})
    loop_of(engine, runner, max_predictions=3).handle_message("c", "/greet")

    events = names(engine, "c")
    assert ("bot", "lost") not in events
    assert events.count(("slot", "name")) == len(runner.calls)
    assert "lost a conflict" in caplog.text


def test_execute_runs_one_action_and_predicts_nothing(engine):
    runner = Runner()
    result = loop_of(engine, runner).execute("c", "utter_default", "manual", 0.5)
    assert runner.calls == ["utter_default"]
    assert result.messages == [{"recipient_id": "c", "text": "said utter_default"}]
    events = engine.tracker("c", "ALL")["events"]
    assert [e["event"] for e in events] == ["action", "action", "bot"]
    assert events[1]["policy"] == "manual" and events[1]["confidence"] == 0.5
    with pytest.raises(UnknownAction):
        loop_of(engine, runner).execute("c", "utter_nothing")


def test_trigger_intent_is_a_message_from_outside(engine):
    result = loop_of(engine, Runner()).trigger_intent(
        "c", "greet", check_entities({"name": "Ada"})
    )
    assert result.messages == [{"recipient_id": "c", "text": "said utter_greet"}]
    latest = engine.tracker("c")["latest_message"]
    assert latest["text"] == f"{EXTERNAL_PREFIX}greet"
    assert latest["intent"] == {"name": "greet", "confidence": 1.0}
    assert engine.tracker("c")["slots"] == {"name": "Ada"}


@pytest.mark.parametrize("bad", ["x", [1], [{"value": 1}], [{"entity": 3}]])
def test_trigger_intent_entities_are_checked(bad):
    with pytest.raises(InvalidInput):
        check_entities(bad)


def test_log_message_predicts_nothing(engine):
    runner = Runner()
    session = loop_of(engine, runner).log_message("c", "/greet", None)
    assert runner.calls == [] and session.tracker.latest_intent == "greet"
    assert names(engine, "c")[-1] == ("user", "/greet")


def test_the_user_event_carries_channel_and_metadata(engine):
    loop_of(engine, Runner()).handle_message(
        "c", "/greet", channel="rest", metadata={"device": "web"}, message_id="m1"
    )
    user = engine.tracker("c", "ALL")["events"][1]
    assert user["input_channel"] == "rest" and user["message_id"] == "m1"
    assert user["metadata"] == {"device": "web"}
    assert engine.tracker("c")["latest_message"]["metadata"] == {"device": "web"}


@pytest.mark.parametrize(
    ("text", "data", "expected"),
    [
        ("a\n\nb", {}, [{"text": "a"}, {"text": "b"}]),
        (
            "pick",
            {"buttons": [{"title": "y"}]},
            [{"text": "pick", "buttons": [{"title": "y"}]}],
        ),
        (
            "pick",
            {"quick_replies": [{"title": "q"}]},
            [{"text": "pick", "buttons": [{"title": "q"}]}],
        ),
        (None, {"image": "http://i/x.png"}, [{"image": "http://i/x.png"}]),
        ("t", {"custom": {"k": 1}}, [{"text": "t"}, {"custom": {"k": 1}}]),
        (None, {"attachment": "f.pdf"}, [{"attachment": "f.pdf"}]),
        (None, {"image": "i.png", "attachment": "i.png"}, [{"image": "i.png"}]),
        (
            None,
            {"elements": [{"title": "T", "subtitle": "S", "buttons": [1]}]},
            [{"text": "T : S", "buttons": [1]}],
        ),
        (None, None, []),
    ],
)
def test_channel_messages_are_rasas_collecting_channel(text, data, expected):
    out = channel_messages("r", BotUttered(text=text, data=data))
    assert out == [{"recipient_id": "r", **m} for m in expected]


def test_a_pause_from_an_action_stops_the_loop(engine):
    runner = Runner({"utter_greet": lambda n, t: [ConversationPaused()]})
    loop_of(engine, runner).handle_message("c", "/greet")
    assert runner.calls == ["utter_greet"]
    assert names(engine, "c")[-1] == ("pause", None)


class CountingStore(InMemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def _write(self, *args: Any, **kwargs: Any) -> int:
        self.writes += 1
        return super()._write(*args, **kwargs)


def test_a_turn_of_responses_is_one_write(core):
    store = CountingStore()
    engine = Engine.for_model(core, Interpreter(), store)
    result = loop_of(engine, Runner()).handle_message("c", "/greet")
    assert result.messages == [{"recipient_id": "c", "text": "said utter_greet"}]
    assert store.writes == 1
    assert names(engine, "c")[-3:] == [
        ("action", "utter_greet"),
        ("bot", "said utter_greet"),
        ("action", "action_listen"),
    ]


def test_a_batch_of_responses_that_loses_a_conflict_is_redone(engine, caplog):
    """Responses have no side effects: when an outside write wins against the
    batch (message and responses), the whole batch is logged again on top of it."""
    raced = []

    def once(name: str, tracker: Tracker) -> list[Event]:
        if not raced:
            raced.append(name)
            engine.append_events("c", [{"event": "bot", "text": "from outside"}])
        return [BotUttered(text="hi", data={})]

    caplog.set_level(logging.INFO, logger="worker.loop")
    result = loop_of(engine, Runner({"utter_greet": once})).handle_message(
        "c", "/greet"
    )
    assert result.messages == [{"recipient_id": "c", "text": "hi"}]
    assert names(engine, "c") == [
        ("action", "action_listen"),
        ("bot", "from outside"),
        ("user", "/greet"),
        ("action", "utter_greet"),
        ("bot", "hi"),
        ("action", "action_listen"),
    ]
    assert "redone after a conflict" in caplog.text


class FailingStore(CountingStore):
    """Refuses every write from the ``fail_at``-th on, as a Redis gone down."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at = fail_at

    def _write(self, *args: Any, **kwargs: Any) -> int:
        if self.writes + 1 >= self.fail_at:
            raise StoreUnavailable("redis is down")
        return super()._write(*args, **kwargs)


def test_a_store_failure_after_a_written_step_answers_what_was_written(
    core, monkeypatch, caplog
):
    """Never an error for something written: the message and the action's step
    are logged, the final listen cannot be; the answer is the action's messages."""
    monkeypatch.setattr(MessageLoop, "_pure", lambda self, a: a == "action_listen")
    store = FailingStore(fail_at=3)
    engine = Engine.for_model(core, Interpreter(), store)
    result = loop_of(engine, Runner()).handle_message("c", "/greet")
    assert result.messages == [{"recipient_id": "c", "text": "said utter_greet"}]
    assert "not logged" in caplog.text
    store.fail_at = 10**6
    assert names(engine, "c")[-2:] == [
        ("action", "utter_greet"),
        ("bot", "said utter_greet"),
    ]


def test_a_store_failure_before_anything_is_written_is_the_error(core):
    engine = Engine.for_model(core, Interpreter(), FailingStore(fail_at=1))
    with pytest.raises(StoreUnavailable):
        loop_of(engine, Runner()).handle_message("c", "/greet")
