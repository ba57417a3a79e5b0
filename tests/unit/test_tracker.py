"""The tracker: event effects, applied-events rules, snapshots equal to replays."""

import random

import msgpack
import pytest

from worker.domain import Domain
from worker.events import ActionExecuted
from worker.events import ActionExecutionRejected
from worker.events import ActionReverted
from worker.events import ActiveLoop
from worker.events import AllSlotsReset
from worker.events import BotUttered
from worker.events import ConversationPaused
from worker.events import ConversationResumed
from worker.events import EntitiesAdded
from worker.events import FollowupAction
from worker.events import Form
from worker.events import FormValidation
from worker.events import LoopInterrupted
from worker.events import Restarted
from worker.events import SessionStarted
from worker.events import SlotSet
from worker.events import UserUtteranceReverted
from worker.events import UserUttered
from worker.tracker import NeedsHistory
from worker.tracker import Tracker
from worker.tracker import applied_events
from worker.tracker import events_after_restart

DOMAIN = Domain.from_yaml(
    """
intents: [greet, goodbye]
entities: [name]
slots:
  name: {type: text, initial_value: nobody}
  mood: {type: categorical, values: [happy, sad]}
actions: [a1, a2, my_action]
forms: [my_form]
"""
)


def user(intent: str, ts: float = 0.0) -> UserUttered:
    return UserUttered(
        f"/{intent}",
        {"intent": {"name": intent, "confidence": 1.0}, "entities": []},
        timestamp=ts,
    )


def act(name: str, ts: float = 0.0) -> ActionExecuted:
    return ActionExecuted(name=name, timestamp=ts)


def replay(events, history=5) -> Tracker:
    return Tracker.from_events("t", DOMAIN, events, history)


def test_undo_removes_the_last_action():
    t = replay(
        [
            act("action_listen"),
            user("greet"),
            act("my_action"),
            act("action_listen"),
            ActionReverted(),
        ]
    )
    assert t.latest_action_name == "my_action"


def test_rewind_removes_the_last_user_message_and_the_listen_before_it():
    events = [
        act("action_listen"),
        user("greet"),
        act("a1"),
        act("action_listen"),
        user("goodbye"),
        act("a2"),
        act("action_listen"),
        UserUtteranceReverted(),
    ]
    t = replay(events)
    assert t.latest_action_name == "a1"
    assert t.latest_intent == "greet"


def test_restart_clears_everything_and_forces_a_listen():
    t = replay(
        [
            act("action_listen"),
            user("greet"),
            SlotSet(name="name", value="x"),
            ConversationPaused(),
            Form(name="my_form"),
            Restarted(),
        ]
    )
    assert t.slots == {"mood": None, "name": "nobody", "requested_slot": None}
    assert not t.paused and t.active_form == {}
    assert t.followup_action == "action_listen"
    assert t.latest_action_name is None


def test_applied_events_rules_of_the_original_test():
    evts = [
        act("action_listen"),
        Restarted(),
        user("greet"),
        act("a1"),
        act("action_listen"),
        user("goodbye"),
        UserUtteranceReverted(),
        act("a2"),
        ActionReverted(),
        act("a2"),
        act("action_listen"),
    ]
    # a restart at index 1, a rewind and an undo later
    assert applied_events(evts) == [evts[2], evts[3], evts[9], evts[10]]
    assert events_after_restart(evts) == evts[2:]


def test_event_effects():
    t = Tracker("t", DOMAIN)
    t.update(act("action_listen"))
    assert t.followup_action is None
    t.update(user("greet", ts=5))
    assert t.latest_message["text"] == "/greet"
    t.update(SlotSet(name="mood", value="happy"))
    t.update(SlotSet(name="unknown", value=1))  # stored logs may have old slots
    t.update(BotUttered(text="hi", data={"buttons": []}))
    t.update(FollowupAction(name="a2"))
    assert t.followup_action == "a2"
    t.update(Form(name="my_form"))
    assert t.active_form["trigger_message"]["text"] == "/greet"
    t.update(FormValidation(validate=False))
    t.update(ActionExecutionRejected(name="my_form"))
    assert t.active_form["validate"] is False and t.active_form["rejected"] is True
    t.update(act("my_form"))
    assert t.active_form["validate"] is True and t.active_form["rejected"] is False
    t.update(ConversationPaused())
    assert t.paused
    t.update(ConversationResumed())
    t.update(AllSlotsReset())
    assert t.slots["mood"] is None and t.slots["name"] == "nobody"
    t.update(Form(name=None))
    assert t.active_form == {}
    assert t.event_count == 14 and t.latest_event_time == 0.0
    with pytest.raises(NeedsHistory):
        t.update(ActionReverted())


def test_states_before_each_action_and_now():
    t = Tracker("t", DOMAIN, history=3)
    t.update(act("action_listen"))
    t.update(user("greet"))
    named = {"slot_name_0": 1.0}  # the slot's initial value counts
    assert t.states(3) == [
        named,
        {**named, "intent_greet": 1.0, "prev_action_listen": 1.0},
    ]
    t.update(act("a1"))
    t.update(act("action_listen"))
    assert len(t.past_states) == 3
    assert t.states(2)[-1] == {**named, "intent_greet": 1.0, "prev_action_listen": 1.0}
    assert t.states(1) == [t.current_state()]


def _random_log(rng: random.Random, n: int) -> list:
    makers = [
        lambda: act(rng.choice(["action_listen", "a1", "a2", "my_form"])),
        lambda: user(rng.choice(["greet", "goodbye"])),
        lambda: SlotSet(
            name=rng.choice(["name", "mood"]),
            value=rng.choice(["happy", "sad", None, "x"]),
        ),
        lambda: Restarted(),
        lambda: ConversationPaused(),
        lambda: ConversationResumed(),
        lambda: Form(name=rng.choice(["my_form", None])),
        lambda: FollowupAction(name="a1"),
        lambda: AllSlotsReset(),
        lambda: BotUttered(text="hi"),
        lambda: ActiveLoop(name=rng.choice(["my_form", None])),
        lambda: LoopInterrupted(is_interrupted=rng.choice([True, False])),
        lambda: SessionStarted(),
        lambda: EntitiesAdded(entities=({"entity": "name", "value": "Ada"},)),
    ]
    weights = [6, 4, 3, 0.3, 0.5, 0.5, 1, 0.5, 0.3, 1, 1, 0.5, 0.3, 0.5]
    return [rng.choices(makers, weights)[0]() for _ in range(n)]


@pytest.mark.parametrize("seed", range(20))
def test_folding_with_snapshots_equals_replaying_the_whole_log(seed):
    """The hot path (snapshot, then events) matches a replay of the log."""
    rng = random.Random(seed)
    log = [act("action_listen"), *_random_log(rng, 60)]
    tracker = Tracker("t", DOMAIN, history=4)
    for i, event in enumerate(log):
        tracker.update(event)
        if i % 7 == 0:  # store and load a snapshot, through msgpack, like a turn
            snap = msgpack.unpackb(msgpack.packb(tracker.to_snapshot()))
            tracker = Tracker.from_snapshot("t", DOMAIN, snap, 4)
    full = replay(log, history=4)
    assert tracker.dump() == full.dump()
    assert list(tracker.past_states) == list(full.past_states)
    assert tracker.window == full.window
    assert tracker.event_count == full.event_count == len(log)


@pytest.mark.parametrize("seed", range(5))
def test_a_tracker_from_a_snapshot_has_every_field_of_the_original(seed):
    """``from_snapshot`` builds through ``__init__`` and sets the snapshot's fields:
    the same attributes and values as the tracker that wrote it."""
    rng = random.Random(seed)
    tracker = Tracker("t", DOMAIN, history=4)
    for event in [act("action_listen"), *_random_log(rng, 30)]:
        tracker.update(event)
    snap = msgpack.unpackb(msgpack.packb(tracker.to_snapshot()))
    restored = Tracker.from_snapshot("t", DOMAIN, snap, 4)
    assert restored is not None
    assert restored.to_snapshot() == snap
    for name in Tracker.__slots__:
        if name != "_window_events":  # a cache, decoded when asked for
            assert getattr(restored, name) == getattr(tracker, name), name


def test_a_snapshot_of_another_model_is_refused():
    t = Tracker("t", DOMAIN)
    other = Domain.from_yaml("intents: [x]")
    assert Tracker.from_snapshot("t", other, t.to_snapshot(), 5) is None
    assert Tracker.from_snapshot("t", DOMAIN, t.to_snapshot(), 3) is None


def test_window_keeps_only_recent_actions():
    t = Tracker("t", DOMAIN, history=2)
    for _ in range(10):
        t.update(act("action_listen"))
        t.update(user("greet"))
        t.update(act("a1"))
    assert sum(isinstance(e, ActionExecuted) for e in t.window) <= 3


def test_rejected_action_is_the_latest_event_only():
    t = Tracker("t", DOMAIN)
    assert t.rejected_action is None
    t.update(ActionExecutionRejected(name="utter_greet", timestamp=1.0))
    assert t.rejected_action == "utter_greet"
    snap = msgpack.unpackb(msgpack.packb(t.to_snapshot()))
    assert Tracker.from_snapshot("t", DOMAIN, snap, 5).rejected_action == "utter_greet"
    t.update(act("action_listen"))
    assert t.rejected_action is None


def test_active_loop_is_the_form_event_of_rasa_2():
    t = replay([act("action_listen"), user("greet"), ActiveLoop(name="my_form")])
    assert t.active_form_name == "my_form"
    assert t.dump()["active_loop"] == {
        "name": "my_form",
        "is_interrupted": False,
        "rejected": False,
        "trigger_message": t.latest_message,
    }
    assert t.current_state()["active_form_my_form"] == 1.0
    form = replay([act("action_listen"), user("greet"), Form(name="my_form")])
    assert form.dump() == t.dump()
    t.update(ActiveLoop(name=None))
    assert t.active_form == {} and t.dump()["active_loop"] == {}


def test_loop_interrupted_lasts_until_the_next_action():
    t = replay([act("action_listen"), ActiveLoop(name="my_form")])
    t.update(LoopInterrupted(is_interrupted=True))
    assert t.dump()["active_loop"]["is_interrupted"] is True
    t.update(act("a1"))
    assert t.dump()["active_loop"]["is_interrupted"] is False


def test_session_started_starts_afresh_like_rasa():
    events = [
        act("action_listen"),
        user("greet"),
        SlotSet(name="mood", value="sad"),
        ActiveLoop(name="my_form"),
        act("a1"),
        act("action_session_start"),
        SessionStarted(),
        SlotSet(name="mood", value="sad"),
        act("action_listen"),
    ]
    t = replay(events)
    assert t.slots == {"name": "nobody", "mood": "sad", "requested_slot": None}
    assert t.active_form == {} and t.latest_intent is None
    assert t.latest_action_name == "action_listen"
    # the policies see a fresh start: one past state, before the listen
    assert len(t.past_states) == 1
    assert applied_events(events) == events[-2:]
    folded = Tracker("t", DOMAIN)
    for event in events:
        folded.update(event)
    assert folded.dump() == t.dump()


def test_entities_event_adds_to_the_latest_message():
    t = replay([act("action_listen"), user("greet")])
    t.update(EntitiesAdded(entities=({"entity": "name", "value": "Ada"},)))
    t.update(EntitiesAdded(entities=({"entity": "name", "value": "Ada"},)))
    assert t.latest_message["entities"] == [{"entity": "name", "value": "Ada"}]
    assert t.current_state()["entity_name"] == 1.0


def test_snapshot_keeps_the_loop_state_and_the_user_time():
    t = Tracker("t", DOMAIN)
    for event in (
        act("action_listen", 1.0),
        user("greet", 2.0),
        ActiveLoop(name="my_form", timestamp=3.0),
        LoopInterrupted(is_interrupted=True, timestamp=4.0),
    ):
        t.update(event)
    snap = msgpack.unpackb(msgpack.packb(t.to_snapshot()))
    again = Tracker.from_snapshot("t", DOMAIN, snap, 5)
    assert again.dump() == t.dump()
    assert again.dump()["active_loop"]["is_interrupted"] is True
    assert again.latest_user_time == 2.0 and again.latest_event_time == 4.0
    # a snapshot of the previous format is rebuilt from the log, not read
    assert Tracker.from_snapshot("t", DOMAIN, {**snap, "v": 2}, 5) is None
