"""Tasks 1-5: the restaurant-booking bot, as a developer would write it.

The developer's knowledge lives here and only here: which user sentences mean what
(intent rules, entity vocabularies read from the training file), which bot sentences
are templates and which are actions in the client's code (the API call from the
slots, proposing restaurants by rating, giving a phone number or an address). Which
action comes next is never written down: the stories are the training dialogues,
and the policy learns from them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from bench.babi.bot import BotFiles
from bench.babi.bot import Gold
from bench.babi.bot import Span
from bench.babi.bot import find_values
from bench.babi.bot import nlu_markdown
from bench.babi.bot import pseudo_words
from bench.babi.bot import render
from bench.babi.bot import substitute
from bench.babi.bot import user_line
from bench.babi.data import Dialogue
from bench.babi.data import Result

#: The API call's arguments, in its order; also the bot's slots and entities.
API_SLOTS = ("cuisine", "location", "people", "price")
_RESULT_SLOT = {
    "R_cuisine": "cuisine",
    "R_location": "location",
    "R_number": "people",
    "R_price": "price",
}
#: Types whose values the NLU data also shows with made-up words (open classes).
OPEN_TYPES = ("cuisine", "location")

INTENT_RULES: tuple[tuple[str, str], ...] = (
    ("silence", r"<SILENCE>"),
    ("greet", r"hi|hello|good morning"),
    ("request_reservation", r".*\b(book a table|may i have a table|reservation)\b.*"),
    ("update", r"(actually i would prefer|instead could it be)\b.*"),
    (
        "reject",
        r"no this does not work for me|do you have something else|no i don't like that",
    ),
    ("deny", r"no"),
    ("bye", r"no thanks|no thank you"),
    ("affirm", r"it's perfect|i love that|let's do it|that looks great"),
    ("ask_phone", r".*\bphone\b.*"),
    ("ask_address", r".*\baddress\b.*"),
    ("thankyou", r"thanks|thank you|you rock"),
)

TEMPLATES = {
    "utter_greet": "hello what can i help you with today",
    "utter_on_it": "i'm on it",
    "utter_ask_cuisine": "any preference on a type of cuisine",
    "utter_ask_location": "where should it be",
    "utter_ask_people": "how many people would be in your party",
    "utter_ask_price": "which price range are looking for",
    "utter_looking": "ok let me look into some options for you",
    "utter_ask_update": "sure is there anything else to update",
    "utter_find_other": "sure let me find an other option for you",
    "utter_reserve": "great let me do the reservation",
    "utter_anything_else": "is there anything i can help you with",
    "utter_welcome": "you're welcome",
}
CUSTOM_ACTIONS: tuple[tuple[str, str], ...] = (
    ("action_api_call", r"api_call( \S+){4}"),
    ("action_suggest", r"what do you think of this option: \S+"),
    ("action_give_phone", r"here it is \S+_phone"),
    ("action_give_address", r"here it is \S+_address"),
)
_BY_TEXT = {text: name for name, text in TEMPLATES.items()}

POLICIES: list[dict[str, Any]] = [
    {"name": "MemoizationPolicy", "max_history": 3},
    {
        "name": "KerasPolicy",
        "max_history": 3,
        "epochs": 40,
        "batch_size": 64,
        "patience": 3,
    },
]


def intent_of(text: str) -> str:
    for intent, pattern in INTENT_RULES:
        if re.fullmatch(pattern, text):
            return intent
    return "inform"


def action_of(bot: str) -> str:
    """The action that says ``bot``; every bot sentence must have one."""
    if bot in _BY_TEXT:
        return _BY_TEXT[bot]
    for name, pattern in CUSTOM_ACTIONS:
        if re.fullmatch(pattern, bot):
            return name
    raise ValueError(f"no action says {bot!r}")


def vocabulary(dialogues: Sequence[Dialogue]) -> dict[str, str]:
    """Entity values (surface -> type) seen in the API calls and results."""
    vocab: dict[str, str] = {}
    for d in dialogues:
        for turn in d.turns:
            if turn.bot.startswith("api_call "):
                for slot, value in zip(API_SLOTS, turn.bot.split()[1:], strict=True):
                    vocab[value] = slot
        for results in d.results_after.values():
            for r in results:
                if r.prop in _RESULT_SLOT:
                    vocab[r.value] = _RESULT_SLOT[r.prop]
    return vocab


class Labeller:
    """A user sentence -> (intent, entity spans), from the rules and vocabulary."""

    def __init__(self, vocab: dict[str, str]):
        self.vocab = vocab

    def __call__(self, text: str) -> tuple[str, list[Span]]:
        intent = intent_of(text)
        spans = [] if intent == "silence" else find_values(text, self.vocab)
        if intent == "inform" and not spans:
            raise ValueError(f"cannot label user sentence {text!r}")
        return intent, spans


def story(dialogue: Dialogue, label: Labeller) -> str:
    lines = [f"## dialogue {dialogue.index + 1}"]
    for turn in dialogue.turns:
        intent, spans = label(turn.user)
        lines += [user_line(intent, spans), f"    - {action_of(turn.bot)}"]
    return "\n".join(lines)


def convert(
    train: Sequence[Dialogue],
    dev: Sequence[Dialogue] = (),
    seed: int = 0,
    variants: int = 6,
) -> BotFiles:
    """The bot files for the training dialogues of one task (``dev``: stories for
    early stopping only)."""
    label = Labeller(vocabulary(train))
    intents: dict[str, None] = {}
    actions: dict[str, None] = {}
    examples: list[tuple[str, str, list[Span]]] = []
    for d in train:
        for turn in d.turns:
            intent, spans = label(turn.user)
            intents[intent] = None
            actions[action_of(turn.bot)] = None
            examples.append((intent, turn.user, spans))
    examples += _made_up_variants(examples, seed, variants, set(label.vocab))
    used = [a for a in actions if a in TEMPLATES]
    domain = {
        "intents": list(intents),
        "entities": list(API_SLOTS),
        "slots": {slot: {"type": "text"} for slot in API_SLOTS},
        "templates": {name: [{"text": TEMPLATES[name]}] for name in used},
        "actions": list(actions),
    }
    config = {"language": "en", "pipeline": _pipeline(), "policies": POLICIES}
    dev_label = Labeller({**vocabulary(dev), **label.vocab})
    return BotFiles(
        domain,
        "\n\n".join(story(d, label) for d in train) + "\n",
        nlu_markdown(examples),
        config,
        "\n\n".join(story(d, dev_label) for d in dev) + "\n",
        gold_turns,
    )


def gold_turns(dialogue: Dialogue) -> list[Gold | None]:
    out: list[Gold | None] = []
    for turn in dialogue.turns:
        action = action_of(turn.bot)
        target = turn.bot.rsplit(" ", 1)[-1] if action == "action_suggest" else None
        out.append(Gold(action, target))
    return out


def _pipeline() -> list[dict[str, Any]]:
    return [
        {"name": "Tokenizer"},
        # NOTE: templated text without typos: words are the evidence, and char
        # n-grams would make an unseen cuisine ("thai") look like "that".
        {"name": "SparseFeaturizer", "max_char_ngram": 0},
        {"name": "SoftmaxIntentClassifier"},
        {"name": "PerceptronEntityExtractor"},
        {"name": "EntitySynonymMapper"},
    ]


def _made_up_variants(
    examples: list[tuple[str, str, list[Span]]],
    seed: int,
    variants: int,
    avoid: set[str],
) -> list[tuple[str, str, list[Span]]]:
    """Copies of each distinct sentence shape with made-up open-class values."""
    shapes: dict[str, tuple[str, str, list[Span]]] = {}
    for intent, text, spans in examples:
        if any(kind in OPEN_TYPES for _, _, kind, _ in spans):
            shape = substitute(
                text, spans, {i: f"<{s[2]}>" for i, s in enumerate(spans)}
            )[0]
            shapes.setdefault(shape, (intent, text, spans))
    words = iter(pseudo_words(len(shapes) * variants * 4, seed, avoid))
    out = []
    for intent, text, spans in shapes.values():
        for _ in range(variants):
            values = {i: next(words) for i, s in enumerate(spans) if s[2] in OPEN_TYPES}
            new_text, new_spans = substitute(text, spans, values)
            out.append((intent, new_text, new_spans))
    return out


class RestaurantActions:
    """The client's action code for one conversation (tasks 1-5)."""

    def __init__(self, templates: dict[str, str]):
        self.templates = templates
        self.restaurants: dict[str, dict[str, str]] = {}
        self.proposed: list[str] = []

    def see(self, results: Sequence[Result], empty: bool = False) -> None:
        """Results that appear in the dialogue (API answers, or given up front)."""
        for r in results:
            self.restaurants.setdefault(r.name, {})[r.prop] = r.value

    def run(
        self,
        action: str,
        slots: dict[str, Any],
        fetched: Sequence[Result] = (),
        empty: bool = False,
        target: str | None = None,
    ) -> tuple[str, list[dict[str, Any]]]:
        """(text the bot says, events to report with ``/continue``); ``target``
        makes a proposal offer that restaurant (the gold history's)."""
        if action in self.templates:
            return render(self.templates[action], slots), []
        if action == "action_api_call":
            # NOTE: a new query's answer replaces what earlier queries returned.
            self.restaurants, self.proposed = {}, []
            self.see(fetched)
            return "api_call " + " ".join(str(slots.get(s)) for s in API_SLOTS), []
        if action == "action_suggest":
            return self._suggest(target), []
        if action in ("action_give_phone", "action_give_address"):
            prop = "R_phone" if action == "action_give_phone" else "R_address"
            current = self._current()
            value = self.restaurants.get(current, {}).get(prop) if current else None
            return f"here it is {value}", []
        return "", []

    def _suggest(self, target: str | None = None) -> str:
        left = [n for n in self.restaurants if n not in self.proposed]
        if not left and target is None:
            return "sorry there are no other options"
        best = target or max(
            left, key=lambda n: int(self.restaurants[n].get("R_rating", 0))
        )
        self.proposed.append(best)
        return f"what do you think of this option: {best}"

    def _current(self) -> str | None:
        """The restaurant last proposed, else the last one the dialogue showed."""
        if self.proposed:
            return self.proposed[-1]
        return next(reversed(self.restaurants), None)


def client_actions(
    templates: dict[str, str], knowledge: dict[str, Any] | None = None
) -> RestaurantActions:
    return RestaurantActions(templates)


def gold_action(bot: str) -> str:
    try:
        return action_of(bot)
    except ValueError:
        return "unknown"
