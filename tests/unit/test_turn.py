"""The turn logic against the in-memory store: parse/continue semantics of the
original Rasa Core server, history events, conflicts, a changed model."""

from __future__ import annotations

import itertools

import pytest

from tests.data import RASA_EXAMPLES
from trackerstore import InMemoryStore
from trackerstore import PendingLoad
from trackerstore import VersionConflict
from worker.domain import Domain
from worker.errors import ConversationConflict
from worker.errors import InvalidEvent
from worker.errors import InvalidInput
from worker.errors import UnknownAction
from worker.model import CoreModel
from worker.nlu import Interpreter
from worker.turn import LISTEN_INFO
from worker.turn import PAUSED_INFO
from worker.turn import Engine

FIXTURES = RASA_EXAMPLES / "server_test_fixtures"
CONFIG = {
    "policies": [
        {"name": "AugmentedMemoizationPolicy", "max_history": 3},
        {"name": "MappingPolicy"},
    ]
}


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


def names(engine: Engine, cid: str) -> list[tuple[str, str | None]]:
    events = engine.tracker(cid, "ALL")["events"]
    return [(e["event"], e.get("name") or e.get("text")) for e in events]


def test_parse_logs_the_message_and_only_a_predicted_listen(engine):
    reply = engine.parse("c", '/greet{"name": "Ada"}')
    assert reply["next_action"] == "utter_greet"
    assert reply["tracker"]["events"] is None
    assert reply["tracker"]["slots"] == {"name": "Ada"}
    assert names(engine, "c") == [
        ("action", "action_listen"),
        ("user", '/greet{"name": "Ada"}'),
        ("slot", "name"),
    ]
    reply = engine.continue_("c", "utter_greet", [{"event": "bot", "text": "hi Ada"}])
    assert reply["next_action"] == "action_listen"
    assert names(engine, "c")[-3:] == [
        ("action", "utter_greet"),
        ("bot", "hi Ada"),
        ("action", "action_listen"),
    ]
    listen = engine.tracker("c", "ALL")["events"][-1]
    assert listen["policy"].startswith("policy_0_") and listen["confidence"] == 1.0


def test_continue_after_listen_answers_info_and_keeps_the_events(engine):
    engine.parse("c", "/greet")
    reply = engine.continue_(
        "c", "action_listen", [{"event": "slot", "name": "name", "value": "x"}]
    )
    assert reply["next_action"] is None and reply["info"] == LISTEN_INFO
    assert reply["tracker"]["slots"]["name"] == "x"


def test_a_rejected_action_is_logged_as_its_rejection_only(engine):
    """As Rasa 2+: the action that refused its run did not happen."""
    engine.parse("r", "/greet")
    engine.continue_(
        "r",
        "utter_greet",
        [{"event": "action_execution_rejected", "name": "utter_greet"}],
    )
    logged = names(engine, "r")
    at = logged.index(("user", "/greet"))
    assert logged[at + 1] == ("action_execution_rejected", "utter_greet")
    assert ("action", "utter_greet") not in logged


def test_paused_conversation_predicts_nothing_until_restart(engine):
    engine.parse("c", "/greet")
    engine.continue_("c", "utter_greet", [{"event": "pause"}])
    reply = engine.parse("c", "/greet")
    assert reply["next_action"] is None and reply["info"] == PAUSED_INFO
    reply = engine.parse("c", "/restart")
    assert reply["next_action"] == "action_restart"
    reply = engine.continue_("c", "action_restart", [{"event": "restart"}])
    assert reply["next_action"] == "action_listen"
    assert reply["tracker"]["paused"] is False
    assert engine.tracker("c")["events"] == [
        {
            "event": "action",
            "name": "action_listen",
            "policy": None,
            "confidence": 1.0,
            "timestamp": engine.tracker("c", "ALL")["events"][-1]["timestamp"],
        }
    ]


def test_followup_event_forces_the_next_action(engine):
    engine.parse("c", "/greet")
    reply = engine.continue_(
        "c", "utter_greet", [{"event": "followup", "name": "utter_goodbye"}]
    )
    assert reply["next_action"] == "utter_goodbye"


def test_rewind_in_continue_replays_the_log(engine):
    engine.parse("c", "/greet")
    engine.continue_("c", "utter_greet", [])
    engine.parse("c", "/goodbye")
    reply = engine.continue_("c", "action_default_fallback", [{"event": "rewind"}])
    tracker = reply["tracker"]
    assert tracker["latest_message"]["text"] == "/greet"
    assert reply["next_action"] == "action_listen"


def test_continue_null_on_a_new_conversation(engine):
    reply = engine.continue_("new", None, [])
    assert reply["next_action"] == "action_listen"
    assert names(engine, "new") == [("action", "action_listen")] * 2


def test_bad_input_writes_nothing(engine):
    engine.parse("c", "/greet")
    before = names(engine, "c")
    with pytest.raises(UnknownAction):
        engine.continue_("c", "utter_nope", [])
    with pytest.raises(InvalidInput):
        engine.continue_("c", 3, [])
    with pytest.raises(InvalidInput):
        engine.continue_("c", "utter_greet", {"event": "pause"})
    with pytest.raises(InvalidEvent, match="unknown slot"):
        engine.continue_("c", "utter_greet", [{"event": "slot", "name": "zzz"}])
    with pytest.raises(InvalidEvent):
        engine.append_events("c", [{"event": "pause"}, {"event": "nope"}])
    with pytest.raises(InvalidInput):
        engine.tracker("c", "SOME")
    assert names(engine, "c") == before


def test_a_conflict_redoes_the_turn_on_fresh_state(core):
    store = InMemoryStore()
    engine = Engine.for_model(core, Interpreter(), store)
    engine.parse("c", "/greet")
    real_append = store.append
    sneaked = []

    def append_after_someone_else(cid, events, expected, snapshot):
        if not sneaked:  # another worker writes between our load and our append
            sneaked.append(True)
            other = Engine.for_model(core, Interpreter(), store)
            other.append_events(cid, [{"event": "bot", "text": "from elsewhere"}])
        return real_append(cid, events, expected, snapshot)

    store.append = append_after_someone_else
    engine.continue_("c", "utter_greet", [])
    kinds = names(engine, "c")
    assert kinds.count(("bot", "from elsewhere")) == 1
    assert kinds.count(("action", "utter_greet")) == 1
    assert kinds[-2:] == [("action", "utter_greet"), ("action", "action_listen")]


def test_endless_conflicts_end_in_an_error_and_write_nothing(core):
    store = InMemoryStore()
    engine = Engine.for_model(core, Interpreter(), store, max_attempts=3)

    def always_conflict(cid, events, expected, snapshot):
        raise VersionConflict(cid, expected, expected + 1)

    store.append = always_conflict
    with pytest.raises(ConversationConflict):
        engine.parse("c", "/greet")
    assert store.load("c").version == 0


def test_a_failing_parse_cancels_the_load_it_started(core):
    class Breakable(Interpreter):
        broken = False

        def parse(self, text):
            if self.broken:
                raise RuntimeError("NLU failed")
            return super().parse(text)

    store = InMemoryStore()
    interpreter = Breakable()
    engine = Engine.for_model(core, interpreter, store)
    asked: list[str] = []

    class Pending(PendingLoad):
        def cancel(self) -> None:
            asked.append("cancel")

        def result(self):
            asked.append("result")
            return super().result()

    store.prefetch = lambda cid: Pending(store, cid)
    engine.parse("c", "/greet")
    assert asked == ["result"]

    interpreter.broken = True
    with pytest.raises(RuntimeError, match="NLU failed"):
        engine.parse("c", "/greet")
    assert asked == ["result", "cancel"]


def test_snapshot_of_another_model_is_rebuilt_from_the_log(core):
    store = InMemoryStore()
    Engine.for_model(core, Interpreter(), store).parse("c", "/greet")
    other = CoreModel.train(
        Domain.load(FIXTURES / "default.yml"),
        FIXTURES / "stories_defaultdomain.md",
        CONFIG,
    )
    reply = Engine.for_model(other, Interpreter(), store).continue_(
        "c", "utter_greet", []
    )
    assert reply["next_action"] == "action_listen"
    assert reply["tracker"]["latest_message"]["text"] == "/greet"


def test_replace_builds_from_the_given_events_only(engine):
    body = engine.replace_events(
        "c", [{"event": "slot", "name": "name", "value": "x"}, {"no_event_key": 1}]
    )
    assert [e["event"] for e in body["events"]] == ["slot"]
    assert body["followup_action"] == "action_listen"
    assert body["latest_message"] == {"intent": {}, "entities": [], "text": None}
