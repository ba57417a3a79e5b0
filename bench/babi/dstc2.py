"""Task 6 (DSTC2 restaurant search in Cambridge): the bot a developer would write.

Unlike tasks 1-5 this is real, noisy data (speech recognition transcripts, and the
logged system's own choices). The developer's knowledge here, as in HCN:

* the values (foods, areas, price ranges, "don't care" phrases) and rules that label
  user sentences with intents, for the NLU data and the stories;
* every bot sentence is made a template by putting placeholders where slot values
  (``{food}``, ``{area}``, ``{price}``) or the properties of the restaurant under
  discussion (``{name}``, ``{phone}``, ``{r_area}``, ...) stand; templates about a
  restaurant are said by client actions: ``action_propose_N`` offers the best-rated
  restaurant not offered yet, ``action_about_N`` talks about the current one;
* the client's API call reports whether it found anything (``has_results``) and a
  proposal whether more are left (``more_options``);
* entity tracking: the client reports each question as ``requested_slot``, and a
  bare "don't care" fills the slot asked for (a slot mapping's condition); the
  constraints are featurized as none / "don't care" / some value; the ``style``
  slot tells whose wording (of the logged systems) the conversation has shown.

Which action comes next is learned from the training dialogues.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from bench.babi.bot import BotFiles
from bench.babi.bot import Gold
from bench.babi.bot import Span
from bench.babi.bot import find_values
from bench.babi.bot import nlu_markdown
from bench.babi.bot import render
from bench.babi.bot import user_line
from bench.babi.data import SILENCE
from bench.babi.data import Dialogue
from bench.babi.data import Result

SLOTS = ("food", "area", "price")
_PROP_SLOT = {"R_cuisine": "food", "R_location": "area", "R_price": "price"}
_PLACEHOLDER_OF_PROP = {
    "R_phone": "phone",
    "R_address": "address",
    "R_post_code": "postcode",
    "R_location": "r_area",
    "R_price": "r_price",
    "R_cuisine": "r_food",
}
DONTCARE = "dontcare"
#: Phrases meaning "any value" for one slot, and for whatever was asked.
DONTCARE_PHRASES = {
    "any part of town": "area",
    "any area": "area",
    "anywhere": "area",
    "any kind of food": "food",
    "any type of food": "food",
    "any food": "food",
    "any kind": "food",
    "any price range": "price",
    "any price": "price",
    "i dont care": DONTCARE,
    "dont care": DONTCARE,
    "doesnt matter": DONTCARE,
    "it doesnt matter": DONTCARE,
    "any": DONTCARE,
}
#: What a bot question asks for: a "don't care" answer then means that slot.
ASKS: tuple[tuple[str, str], ...] = (
    ("food", r"(kind|type) of food would you like"),
    ("area", r"part of town do you have in mind|area (would you like|do you want)"),
    ("price", r"price range\?$|would you like something in the .*price range"),
)
REQUESTED = "requested_slot"
#: The logged dialogues come from (at least) two systems, each with its own wording
#: (read off the training dialogues: each of these sentences occurs with one
#: system's offers only). The client remembers whose wording the conversation
#: has shown last, as the ``style`` slot, so the policy can answer in it.
STYLE = "style"
STYLES: tuple[tuple[str, str], ...] = (
    ("a", r" is a nice restaurant |^Sorry there is no | part of town \.$"),
    (
        "b",
        r" is a (nice place|great restaurant)|^I'?m sorry but there is no"
        r"|^I am sorry but there is no|^Sorry but there is no other|^Did you say"
        r"|^Let me confirm|^Ok , a restaurant|^You are looking for a .+ right\?$",
    ),
)
SYNONYMS = {
    "center": "area:centre",
    "moderately": "price:moderate",
    "moderately priced": "price:moderate",
}

POLICIES: list[dict[str, Any]] = [
    {"name": "MemoizationPolicy", "max_history": 4},
    {
        "name": "KerasPolicy",
        "max_history": 4,
        "epochs": 60,
        "batch_size": 64,
        "patience": 5,
        "hidden_layers_sizes": [128],
    },
]


# ---- the user's side -------------------------------------------------------------
def vocabulary(dialogues: Sequence[Dialogue]) -> dict[str, str]:
    """surface -> "type:value" for foods, areas, prices and "don't care" phrases."""
    vocab: dict[str, str] = {}
    for d in dialogues:
        for turn in d.turns:
            if turn.bot.startswith("api_call "):
                for slot, value in zip(SLOTS, turn.bot.split()[1:4], strict=False):
                    if not value.startswith("R_"):
                        vocab[value.replace("_", " ")] = f"{slot}:{value}"
        for results in d.results_after.values():
            for r in results:
                if r.prop in _PROP_SLOT:
                    vocab[r.value.replace("_", " ")] = f"{_PROP_SLOT[r.prop]}:{r.value}"
    for phrase, slot in DONTCARE_PHRASES.items():
        vocab[phrase] = f"{slot}:{DONTCARE}"
    vocab.update(SYNONYMS)
    return vocab


#: (intent, pattern), first match wins; ``None`` marks where sentences that carry
#: a value stop being requests ("what price range" vs "a cheap restaurant").
_INTENT_RULES: tuple[tuple[str, str] | None, ...] = (
    ("bye", r"\b(good ?bye|bye)\b"),
    ("thankyou", r"\bthank"),
    ("request_phone", r"\b(phone|number)\b"),
    ("request_address", r"\baddress\b"),
    ("request_postcode", r"\bpost ?code\b|\bpostal\b"),
    ("reqalts", r"\b(else|another|different|other|next)\b"),
    None,
    ("request_area", r"\b(area|part of town|where)\b"),
    ("request_price", r"\b(price|cost|expensive)\b"),
    ("request_food", r"\b(food|type|kind|serve)\b"),
)
_OTHER_RULES: tuple[tuple[str, str], ...] = (
    ("affirm", r"^(yes|yeah|yea|yep|right|correct|uh huh|ok|okay|sure)\b"),
    ("negate", r"^(no|nope|wrong|not)\b"),
    ("repeat", r"\b(repeat|again|say that)\b"),
    ("hello", r"^(hi|hello|hey)\b"),
    ("startover", r"\b(start over|reset)\b"),
)


def intent_of(text: str, has_values: bool) -> str:
    """The developer's rules; the NLU model learns them from the labelled data."""
    t = text.lower()
    if t == SILENCE.lower():
        return "silence"
    requests_allowed = True
    for rule in _INTENT_RULES:
        if rule is None:
            requests_allowed = not has_values
        elif requests_allowed and re.search(rule[1], t):
            return rule[0]
    for intent, pattern in _OTHER_RULES:
        if re.search(pattern, t):
            return intent
    return "inform" if has_values else "unknown"


class Labeller:
    def __init__(self, vocab: dict[str, str]):
        self.vocab = vocab

    def __call__(self, text: str) -> tuple[str, list[Span]]:
        if text == SILENCE:
            return "silence", []
        spans = find_values(text, self.vocab)
        return intent_of(text, bool(spans)), spans


# ---- the bot's side --------------------------------------------------------------
class KB:
    """Restaurant properties from the result lines of the training dialogues."""

    def __init__(self, dialogues: Sequence[Dialogue]):
        self.props: dict[str, dict[str, str]] = {}
        for d in dialogues:
            for results in d.results_after.values():
                for r in results:
                    self.props.setdefault(r.name, {})[r.prop] = r.value
        # NOTE: longest first, so "pizza_hut_city_centre" wins over "pizza_hut".
        names = sorted(self.props, key=len, reverse=True)
        self._pattern = re.compile(
            r"(?<![\w])(" + "|".join(map(re.escape, names)) + r")(?![\w])"
        )

    def name_in(self, text: str) -> str | None:
        if not self.props:  # NOTE: the empty pattern would match everywhere
            return None
        for m in self._pattern.finditer(text):
            # NOTE: "ask" is a restaurant, and also the greeting's verb.
            if not (m[1] == "ask" and text[m.end() :].startswith(" for")):
                return m[1]
        return None


def _slot_values(vocab: dict[str, str]) -> dict[str, str]:
    """The vocabulary's real values (no "don't care", no synonyms), in both the
    spoken and the underscored form."""
    out = {}
    for surface, label in vocab.items():
        kind, _, value = label.partition(":")
        if kind in SLOTS and value != DONTCARE and surface == value.replace("_", " "):
            out[surface] = label
            out[value] = label
    return out


def _ph(name: str) -> str:
    return "{" + name + "}"


def _sub_word(text: str, value: str, placeholder: str) -> str:
    return re.sub(rf"(?<![\w]){re.escape(value)}(?![\w])", placeholder, text)


def delexicalise(bot: str, kb: KB, vocab: dict[str, str]) -> tuple[str | None, str]:
    """(restaurant named, template): values become placeholders."""
    name = kb.name_in(bot)
    template = bot
    if name is not None:
        props = kb.props[name]
        # Longer values first: an address contains the name.
        for prop in ("R_phone", "R_address", "R_post_code"):
            if prop in props:
                template = template.replace(
                    props[prop], _ph(_PLACEHOLDER_OF_PROP[prop])
                )
        template = _sub_word(template, name, "{name}")
        for prop in ("R_cuisine", "R_location", "R_price"):
            if prop in props:
                surface = props[prop].replace("_", " ")
                for form in dict.fromkeys((props[prop], surface)):
                    template = _sub_word(
                        template, form, _ph(_PLACEHOLDER_OF_PROP[prop])
                    )
        return name, template
    matches = find_values(template, _slot_values(vocab))
    kinds = Counter(kind for _, _, kind, _ in matches)
    for start, end, kind, _ in reversed(matches):
        # NOTE: a list of values ("cheap , moderate , or expensive") is text.
        if kinds[kind] == 1:
            template = template[:start] + _ph(kind) + template[end:]
    return None, template


class _Converter:
    """Turns dialogues into stories, collecting templates and actions on the way.

    It replays the client's own logic (which restaurant a proposal offers, whether
    the API found anything) to write the slot events the client will report.
    """

    def __init__(self, train: Sequence[Dialogue]):
        self.kb = KB(train)
        self.vocab = vocabulary(train)
        self.templates: dict[str, str] = {}  # template text -> template name
        self.texts: dict[str, str] = {}  # template name -> template text
        self.intents: dict[str, None] = {}
        self.actions: dict[str, None] = {}
        self.examples: list[tuple[str, str, list[Span]]] = []

    def text_of(self, action: str) -> str:
        """The template an action says ("" for the API call)."""
        number = action.rsplit("_", 1)[-1]
        return self.texts.get(f"utter_{number}", "")

    def template_name(self, text: str, learn: bool) -> str | None:
        if text not in self.templates:
            if not learn:
                return None
            self.templates[text] = f"utter_{len(self.templates):03d}"
            self.texts[self.templates[text]] = text
        return self.templates[text]

    def turns(self, dialogue: Dialogue, label: Labeller, learn: bool) -> list:
        """Per turn: (intent, spans, gold action or None, slot events, target)."""
        out = []
        state = _ClientState()
        for i, turn in enumerate(dialogue.turns):
            intent, spans = label(turn.user)
            if learn and turn.user:
                self.examples.append((intent, turn.user, spans))
            action = self.action(turn.bot, state.current, learn)
            events: dict[str, bool | str | None] = {}
            target = None
            if action is not None:
                events.update(state.said(self.text_of(action)))
            if action == "action_api_call":
                found = state.api_call(dialogue.results(i), i in dialogue.empty_after)
                events["has_results"] = found
            elif action is not None and action.startswith("action_propose_"):
                target = self.kb.name_in(turn.bot) or ""
                events["more_options"] = state.offered(target)
            out.append((intent, spans, action, events, target))
        return out

    def story(self, dialogue: Dialogue, label: Labeller, learn: bool) -> str | None:
        """The dialogue as a story; None if it needs an action training never had."""
        lines = [f"## dialogue {dialogue.index + 1}"]
        for intent, spans, action, events, _ in self.turns(dialogue, label, learn):
            if action is None or not (learn or action in self.actions):
                return None
            if learn:
                self.intents[intent] = None
                self.actions[action] = None
            lines += [user_line(intent, spans), f"    - {action}"]
            lines += [f'    - slot{{"{k}": {_json(v)}}}' for k, v in events.items()]
        return "\n".join(lines)

    def gold(self, dialogue: Dialogue) -> list[Gold | None]:
        """What the logged system did, as our actions (None: an unknown template)."""
        label = Labeller(self.vocab)
        return [
            Gold(action, target) if action in self.actions else None
            for _, _, action, _, target in self.turns(dialogue, label, learn=False)
        ]

    def action(self, bot: str, current: str | None, learn: bool) -> str | None:
        if bot.startswith("api_call "):
            return "action_api_call"
        name, template = delexicalise(bot, self.kb, self.vocab)
        key = self.template_name(template, learn)
        if key is None:
            return None
        if name is None:
            return key
        kind = "about" if name == current else "propose"
        return f"action_{kind}_{key[len('utter_') :]}"


def _json(value: bool | str | None) -> str:
    return json.dumps(value)


def style_of(template: str) -> str | None:
    """Whose wording a bot sentence has, if it tells."""
    return next((style for style, p in STYLES if re.search(p, template)), None)


def asked_slot(template: str) -> str | None:
    """The slot a bot sentence asks the user for, if it asks for one."""
    return next((slot for slot, p in ASKS if re.search(p, template)), None)


class _ClientState:
    """What the client remembers of a conversation: the latest API answer, the
    restaurants offered from it, and the one under discussion."""

    def __init__(self) -> None:
        self.latest: dict[str, dict[str, str]] = {}
        self.proposed: list[str] = []
        self.current: str | None = None
        self.requested: str | None = None
        self.style: str | None = None

    def said(self, template: str) -> dict[str, str | None]:
        """Record what a bot sentence asked for and whose wording it has; the slots
        that changed (``requested_slot``, ``style``)."""
        changed: dict[str, str | None] = {}
        asked = asked_slot(template)
        if asked != self.requested:
            self.requested = changed[REQUESTED] = asked
        style = style_of(template)
        if style is not None and style != self.style:
            self.style = changed[STYLE] = style
        return changed

    def api_call(self, results: Sequence[Result], empty: bool) -> bool:
        self.latest = {}
        for r in results:
            self.latest.setdefault(r.name, {})[r.prop] = r.value
        self.proposed = []
        return bool(self.latest) and not empty

    def best_left(self) -> str | None:
        left = [n for n in self.latest if n not in self.proposed]
        if not left:
            return None
        return max(left, key=lambda n: int(self.latest[n].get("R_rating", 0)))

    def offered(self, name: str) -> bool:
        """Record an offer; whether more restaurants are left to offer."""
        self.current = name
        self.proposed.append(name)
        return self.best_left() is not None


def convert(
    train: Sequence[Dialogue], dev: Sequence[Dialogue] = (), seed: int = 0
) -> BotFiles:
    """The bot files for task 6 (``dev``: stories for early stopping only)."""
    conv = _Converter(train)
    label = Labeller(conv.vocab)
    stories = [conv.story(d, label, learn=True) for d in train]
    validation = [s for d in dev if (s := conv.story(d, label, learn=False))]
    templates = {name: [{"text": text}] for text, name in conv.templates.items()}
    domain = {
        "intents": list(conv.intents),
        "entities": [*SLOTS, DONTCARE],
        "slots": {
            **{slot: _slot(slot) for slot in SLOTS},
            REQUESTED: {"type": "unfeaturized"},
            STYLE: {"type": "categorical", "values": [s for s, _ in STYLES]},
            "has_results": {"type": "bool"},
            "more_options": {"type": "bool"},
        },
        "templates": templates,
        "actions": list(conv.actions),
    }
    config = {"language": "en", "pipeline": _pipeline(), "policies": POLICIES}
    return BotFiles(
        domain,
        "\n\n".join(s for s in stories if s) + "\n",
        nlu_markdown(conv.examples),
        config,
        "\n\n".join(validation) + "\n",
        conv.gold,
        {"restaurants": conv.kb.props},
    )


def _slot(name: str) -> dict[str, Any]:
    """A constraint: featurized as none, "don't care" or some value; filled by its
    entity, or by a bare "don't care" when the bot has just asked for it."""
    return {
        "type": "categorical",
        "values": [DONTCARE, "__other__"],
        "mappings": [
            {"type": "from_entity", "entity": name},
            {
                "type": "from_entity",
                "entity": DONTCARE,
                "conditions": [{"requested_slot": name}],
            },
        ],
    }


def _pipeline() -> list[dict[str, Any]]:
    return [
        {"name": "Tokenizer"},
        {"name": "SparseFeaturizer"},
        {"name": "SoftmaxIntentClassifier"},
        {"name": "PerceptronEntityExtractor"},
        {"name": "EntitySynonymMapper"},
    ]


# ---- the client's actions --------------------------------------------------------
class DstcActions:
    """The client's action code for one conversation (task 6).

    Offers come from the API's answers; facts about the restaurant under
    discussion come from that answer, else from the client's restaurant database.
    """

    def __init__(self, templates: dict[str, str], restaurants: dict[str, Any]):
        self.templates = templates
        self.restaurants = restaurants
        self.state = _ClientState()

    def see(self, results: Sequence[Result], empty: bool = False) -> None:
        """Results reach the client only through its API call."""

    def run(
        self,
        action: str,
        slots: dict[str, Any],
        fetched: Sequence[Result] = (),
        empty: bool = False,
        target: str | None = None,
    ) -> tuple[str, list[dict[str, Any]]]:
        """(text, events); ``target`` makes a proposal offer that restaurant."""
        text, events = self._run(action, slots, fetched, empty, target)
        template = self.templates.get(f"utter_{action.rsplit('_', 1)[-1]}", "")
        events += [
            {"event": "slot", "name": name, "value": value}
            for name, value in self.state.said(template).items()
        ]
        return text, events

    def _run(
        self,
        action: str,
        slots: dict[str, Any],
        fetched: Sequence[Result],
        empty: bool,
        target: str | None,
    ) -> tuple[str, list[dict[str, Any]]]:
        if action in self.templates:
            return render(self.templates[action], slots), []
        if action == "action_api_call":
            found = self.state.api_call(fetched, empty)
            args = [
                slots.get(s) if slots.get(s) not in (None, DONTCARE) else f"R_{r}"
                for s, r in zip(SLOTS, ("cuisine", "location", "price"), strict=True)
            ]
            text = "api_call " + " ".join(str(a) for a in args)
            return text, [{"event": "slot", "name": "has_results", "value": found}]
        kind, _, number = action.removeprefix("action_").partition("_")
        template = self.templates.get(f"utter_{number}")
        if template is None or kind not in ("propose", "about"):
            return "", []
        events = []
        if kind == "propose":
            name = target or self.state.best_left() or self.state.current
            if name is not None:
                more = self.state.offered(name)
                events.append({"event": "slot", "name": "more_options", "value": more})
        name = self.state.current
        props = (
            self.state.latest.get(name) or self.restaurants.get(name, {})
            if name
            else {}
        )
        values = dict(slots)
        values["name"] = name or ""
        values.update(
            {ph: props.get(prop, "") for prop, ph in _PLACEHOLDER_OF_PROP.items()}
        )
        return render(template, values), events


def client_actions(
    templates: dict[str, str], knowledge: dict[str, Any] | None = None
) -> DstcActions:
    return DstcActions(templates, (knowledge or {}).get("restaurants", {}))


#: (turn type, pattern of the gold sentence), first match wins: the error breakdown.
_TURN_TYPES: tuple[tuple[str, str], ...] = (
    ("api_call", r"^api_call "),
    ("greeting", r"^Hello , welcome"),
    ("goodbye", r"^you are welcome"),
    ("no result", r"there is no "),
    ("ask slot", r"^(What kind of food|What part of town|(Sorry )?[Ww]ould you like)"),
    ("confirm", r"^(You are looking for|Did you say|Let me confirm|Ok , a restaurant)"),
    ("offer", r" is a (nice|great) (restaurant|place)"),
    (
        "restaurant fact",
        r"_(phone|address|post_code)\b| serves | is in the |price range at",
    ),
)


def gold_action(bot: str) -> str:
    """The type of a gold sentence, for the error breakdown by turn type."""
    for kind, pattern in _TURN_TYPES:
        if re.search(pattern, bot):
            return kind
    return "other"
