"""A seeded simulator of a slot-filling bot, for generalisation tests.

The bot asks for the first missing slot (cuisine, location, people), answers
chitchat and asks again, confirms when all are filled, books on affirm and starts
over on deny. Users are drawn at random; ``orders``, ``interruptions`` and
``restarts`` set how far they stray from the simple path.
"""

from __future__ import annotations

import json
import random

SLOTS = ("cuisine", "location", "people")
VALUES = {
    "cuisine": ("thai", "french", "greek"),
    "location": ("rome", "paris", "oslo"),
    "people": ("two", "four", "six"),
}
DOMAIN = """
intents: [greet, inform, chitchat, affirm, deny, thankyou]
entities: [cuisine, location, people]
slots:
  cuisine: {type: text}
  location: {type: text}
  people: {type: text}
templates:
  utter_greet: [{text: hi}]
  utter_ask_cuisine: [{text: cuisine}]
  utter_ask_location: [{text: where}]
  utter_ask_people: [{text: how many}]
  utter_chitchat: [{text: i am a bot}]
  utter_confirm: [{text: shall i book}]
  utter_booked: [{text: booked}]
  utter_restart: [{text: from the top}]
  utter_welcome: [{text: welcome}]
actions: [utter_greet, utter_ask_cuisine, utter_ask_location, utter_ask_people,
  utter_chitchat, utter_confirm, utter_booked, utter_restart, utter_welcome]
"""


def _next_question(filled: dict[str, str]) -> str:
    missing = [s for s in SLOTS if s not in filled]
    return f"utter_ask_{missing[0]}" if missing else "utter_confirm"


def story(
    rng: random.Random,
    name: str,
    *,
    any_order: bool,
    interruptions: int,
    restarts: int,
) -> str:
    lines = [f"## {name}"]
    filled: dict[str, str] = {}

    def user(intent: str, entities: dict[str, str] | None = None) -> None:
        lines.append(f"* {intent}{json.dumps(entities) if entities else ''}")

    def bot(*actions: str) -> None:
        lines.extend(f"  - {a}" for a in actions)

    if rng.random() < 0.5:
        user("greet")
        bot("utter_greet", _next_question(filled))
    chats = sorted(rng.sample(range(6), interruptions))
    turn = 0
    while True:
        if chats and chats[0] == turn:
            chats.pop(0)
            user("chitchat")
            bot("utter_chitchat", _next_question(filled))
            turn += 1
            continue
        missing = [s for s in SLOTS if s not in filled]
        if not missing:
            if restarts:
                restarts -= 1
                user("deny")
                filled.clear()
                bot("utter_restart")
                lines.append("  - reset_slots")
                bot(_next_question(filled))
                continue
            user("affirm")
            bot("utter_booked")
            if rng.random() < 0.5:
                user("thankyou")
                bot("utter_welcome")
            return "\n".join(lines)
        if any_order:
            given = rng.sample(missing, rng.randint(1, len(missing)))
        else:
            given = missing[: rng.randint(1, 2)]
        entities = {s: rng.choice(VALUES[s]) for s in given}
        filled.update(entities)
        user("inform", entities)
        bot(_next_question(filled))
        turn += 1


def stories(seed: int, n: int, **kwargs) -> str:
    rng = random.Random(seed)
    return "\n\n".join(story(rng, f"story {i}", **kwargs) for i in range(n)) + "\n"
