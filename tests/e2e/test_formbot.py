"""Rasa's formbot (its Rasa 2.0 files, tests/fixtures/formbot) served by a real
gunicorn on the session's Redis, with the client running the form, as the
parse/continue protocol has it: the server fills the form's slots from each message
(the domain's mappings) and predicts; the client asks, and reports the form's state
with Rasa 2+ events (``active_loop``, ``requested_slot``)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from api.testing import Client
from api.testing import Server
from tests.actions.servers import ActionServer
from tests.data import ROOT
from worker.domain import Domain
from worker.train import read_config
from worker.train import train_models

FORMBOT = ROOT / "tests" / "fixtures" / "formbot"
DOMAIN = Domain.load(FORMBOT / "domain.yml")
FORM = "restaurant_form"
SLOTS = ("cuisine", "num_people", "outdoor_seating", "preferences", "feedback")


@pytest.fixture(scope="module")
def formbot_model(tmp_path_factory) -> Path:
    out: Path = tmp_path_factory.mktemp("formbot-model")
    # formbot's own config.yml, unchanged: Duckling's number dimension is our
    # NumberExtractor, CountVectorsFeaturizer's token_pattern the tokenizer's
    train_models(
        out,
        read_config(FORMBOT / "config.yml"),
        nlu=FORMBOT / "data" / "nlu.yml",
        domain=FORMBOT / "domain.yml",
        stories=FORMBOT / "data",
        augmentation_factor=0,
    )
    return out


@pytest.fixture(scope="module")
def formbot(formbot_model, redis_url, tmp_path_factory) -> Iterator[Server]:
    server = Server(
        formbot_model,
        redis_url,
        f"formbot:{uuid.uuid4().hex[:8]}:",
        tmp_path_factory.mktemp("logs"),
        nlu=True,
        workers=1,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


class FormClient(Client):
    """Plays the client's side and keeps the transcript."""

    def __init__(self, url: str):
        super().__init__(url)
        self.cid = f"formbot-{uuid.uuid4().hex}"
        self.transcript: list[str] = []

    def say(self, text: str) -> dict[str, Any]:
        reply = self.parse(self.cid, text)
        self.transcript.append(f"parse {text!r} -> {reply['next_action']}")
        return reply

    def done(self, action: str, events: list[dict[str, Any]]) -> dict[str, Any]:
        reply = self.post(
            f"/conversations/{self.cid}/continue",
            {"executed_action": action, "events": events},
        )
        shown = ", ".join(_short(e) for e in events)
        self.transcript.append(f"continue {action} [{shown}] -> {reply['next_action']}")
        return reply

    def ask(self, slot: str, first: bool = False) -> dict[str, Any]:
        """The form ran: it asks for ``slot`` (activating itself the first time)."""
        events = [{"event": "active_loop", "name": FORM}] if first else []
        events += [
            {"event": "slot", "name": "requested_slot", "value": slot},
            {"event": "bot", "text": DOMAIN.templates[f"utter_ask_{slot}"][0]["text"]},
        ]
        return self.done(FORM, events)

    def tracker(self) -> dict[str, Any]:
        return self.get(f"/conversations/{self.cid}/tracker?include_events=ALL")


def _short(event: dict[str, Any]) -> str:
    if event["event"] == "bot":
        return f"bot {event['text']!r}"
    if event["event"] == "slot":
        return f"{event['name']}={event['value']}"
    return f"{event['event']}={event.get('name')}"


def test_the_form_loop_over_http(formbot):
    client = FormClient(formbot.url)
    assert client.say("im looking for a restaurant")["next_action"] == FORM
    # a Rasa 3 conversation starts with a session
    events = [(e["event"], e.get("name")) for e in client.tracker()["events"]]
    assert events[:3] == [
        ("action", "action_session_start"),
        ("session_started", None),
        ("action", "action_listen"),
    ]
    reply = client.ask("cuisine", first=True)
    assert reply["next_action"] == "action_listen"
    tracker = reply["tracker"]
    assert tracker["active_loop"]["name"] == FORM
    assert tracker["active_form"]["name"] == FORM  # the 0.x key stays
    assert tracker["slots"]["requested_slot"] == "cuisine"

    answers = [
        ("italian food", "cuisine", "italian", "num_people"),
        ('/inform{"number": 2}', "num_people", 2, "outdoor_seating"),
        ("yes", "outdoor_seating", True, "preferences"),
        ("no", "preferences", "no additional preferences", "feedback"),
    ]
    for text, slot, value, following in answers:
        reply = client.say(text)
        assert reply["next_action"] == FORM, client.transcript
        # the server's own slot-mapping step filled the requested slot
        assert reply["tracker"]["slots"][slot] == value
        assert client.ask(following)["next_action"] == "action_listen"
    # a slot the form did not ask for is not filled from the text
    assert reply["tracker"]["slots"]["feedback"] is None

    reply = client.say("my feedback is great")
    assert reply["next_action"] == FORM
    # every slot is filled: the form ends itself
    reply = client.done(
        FORM,
        [
            {"event": "slot", "name": "requested_slot", "value": None},
            {"event": "active_loop", "name": None},
        ],
    )
    assert reply["next_action"] == "utter_submit"  # formbot's rule 'submit form'
    reply = client.done("utter_submit", [{"event": "bot", "text": "All done!"}])
    assert reply["next_action"] == "utter_slots_values"
    reply = client.done("utter_slots_values", [])
    assert reply["next_action"] == "action_listen"

    tracker = client.tracker()
    assert tracker["active_loop"] == {} and tracker["active_form"] == {}
    assert tracker["slots"]["requested_slot"] is None
    assert tracker["slots"]["cuisine"] == "italian"
    assert tracker["latest_action"] == {"action_name": "action_listen"}
    print("\n".join(client.transcript))


def test_stop_in_the_form_is_an_unhappy_path(formbot):
    """formbot's 'stop form' stories: the form runs on 'stop', cannot use it and
    rejects it; then the story's question, not the form again (no rule runs a form
    that refused the message), and 'yes' takes the form up again."""
    client = FormClient(formbot.url)
    assert client.say("im looking for a restaurant")["next_action"] == FORM
    assert client.ask("cuisine", first=True)["next_action"] == "action_listen"
    assert client.say("/stop")["next_action"] == FORM
    reply = client.done(FORM, [{"event": "action_execution_rejected", "name": FORM}])
    assert reply["next_action"] == "utter_ask_continue", client.transcript
    reply = client.done("utter_ask_continue", [{"event": "bot", "text": "Go on?"}])
    assert reply["next_action"] == "action_listen"
    assert client.say("/affirm")["next_action"] == FORM, client.transcript


# ---- the server runs the form ------------------------------------------------------
@pytest.fixture(scope="module", params=["rasa_sdk", "node"])
def formbot_served(
    request, formbot_model, redis_url, tmp_path_factory
) -> Iterator[Server]:
    """formbot with its validation action on rasa_sdk's own action server, and
    on one in Node.js with its standard library only (the protocol is JSON over
    HTTP, not Python)."""
    if request.param == "node" and shutil.which("node") is None:
        pytest.skip("node is not installed: the Node.js action server cannot run")
    logs = tmp_path_factory.mktemp("logs")
    with ActionServer(request.param) as actions:
        endpoints = logs / "endpoints.yml"
        endpoints.write_text(f"action_endpoint:\n  url: {actions.url}\n")
        server = Server(
            formbot_model,
            redis_url,
            f"formbot:{uuid.uuid4().hex[:8]}:",
            logs,
            nlu=True,
            workers=1,
            extra=["--endpoints", str(endpoints)],
        )
        with server:
            yield server


def say(server: Server, sender: str, text: str) -> list[str]:
    reply = requests.post(
        f"{server.url}/webhooks/rest/webhook",
        json={"sender": sender, "message": text},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    return [m.get("text") for m in reply.json()]


def test_the_server_runs_the_form_with_its_validation_action(formbot_served):
    """formbot through the REST channel: the server activates the form, asks
    each slot, has rasa_sdk's FormValidationAction validate it, asks again for a
    refused value, and submits, as Rasa 3.6 runs formbot."""
    sender = f"served-{uuid.uuid4().hex}"
    ask = {s: DOMAIN.templates[f"utter_ask_{s}"][0]["text"] for s in SLOTS}
    wrong = DOMAIN.templates["utter_wrong_cuisine"][0]["text"]
    assert say(formbot_served, sender, "im looking for a restaurant") == [
        ask["cuisine"]
    ]
    assert say(formbot_served, sender, '/inform{"cuisine": "klingon"}') == [
        wrong,
        ask["cuisine"],
    ]
    assert say(formbot_served, sender, "italian food") == [ask["num_people"]]
    assert say(formbot_served, sender, '/inform{"number": 2}') == [
        ask["outdoor_seating"]
    ]
    assert say(formbot_served, sender, "yes") == [ask["preferences"]]
    assert say(formbot_served, sender, "no") == [ask["feedback"]]
    done = say(formbot_served, sender, "my feedback is great")
    assert done[0] == "All done!"
    assert done[1].splitlines() == [
        "I am going to run a restaurant search using the following parameters:",
        " - cuisine: italian",
        " - num_people: 2",
        " - outdoor_seating: True",
        " - preferences: no additional preferences",
        " - feedback: great",
    ]
    tracker = requests.get(
        f"{formbot_served.url}/conversations/{sender}/tracker", timeout=30
    ).json()
    assert tracker["active_loop"] == {} and tracker["slots"]["requested_slot"] is None


def test_the_served_form_hands_over_on_stop(formbot_served):
    """formbot's unhappy path: 'stop' is refused by the form, the story asks
    whether to continue, 'yes' takes the form up again at the same slot."""
    sender = f"stop-{uuid.uuid4().hex}"
    say(formbot_served, sender, "im looking for a restaurant")
    assert say(formbot_served, sender, "/stop") == ["Do you want to continue?"]
    assert say(formbot_served, sender, "/affirm") == [
        DOMAIN.templates["utter_ask_cuisine"][0]["text"]
    ]
