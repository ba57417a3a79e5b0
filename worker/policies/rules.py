"""Rule policies: fallback and intent mapping (rasa_core 0.x, no training data) and
Rasa 2+'s RulePolicy, which learns the rules of the training data."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from typing import Self

import numpy as np

from worker.domain import ACTION_BACK
from worker.domain import ACTION_DEFAULT_FALLBACK
from worker.domain import ACTION_LISTEN
from worker.domain import ACTION_RESTART
from worker.domain import Domain
from worker.errors import InvalidConfig
from worker.errors import TrainingDataError
from worker.events import ActionExecuted
from worker.events import Form
from worker.events import UserUttered
from worker.policies.base import Policy
from worker.policies.base import own_window
from worker.policies.featurizer import dialogue_examples
from worker.policies.featurizer import story_dialogues
from worker.tracker import State
from worker.tracker import Tracker
from worker.training.generator import TrainingDialogue
from worker.training.generator import is_listen

#: Intents that MappingPolicy maps without a ``triggers`` entry (0.14.x final).
BUILTIN_MAPPINGS = {"restart": ACTION_RESTART, "back": ACTION_BACK}


class FallbackPolicy(Policy):
    """Predicts the fallback action when NLU or every other policy is unsure.

    0.14 semantics: a score of 1.0 on low NLU confidence right after a user message,
    otherwise ``core_threshold``, so it wins only when everything else scores lower.
    """

    max_history = 1
    _metadata_attrs = ("n_actions_",)

    def __init__(
        self,
        nlu_threshold: float = 0.3,
        core_threshold: float = 0.3,
        fallback_action_name: str = ACTION_DEFAULT_FALLBACK,
        priority: int = 3,
    ):
        self.nlu_threshold = nlu_threshold
        self.core_threshold = core_threshold
        self.fallback_action_name = fallback_action_name
        self.priority = priority

    def fit(
        self,
        dialogues: Sequence[TrainingDialogue],
        domain: Domain,
        *,
        validation: Sequence[TrainingDialogue] | None = None,
    ) -> Self:
        if self.fallback_action_name not in domain.action_index:
            raise InvalidConfig(
                f"FallbackPolicy: fallback action '{self.fallback_action_name}' "
                "is not in the domain"
            )
        self.n_actions_ = len(domain.action_names)
        return self

    def fallback_list(self, domain: Domain, score: float = 1.0) -> list[float]:
        """``score`` for the fallback action, 0 for every other one."""
        scores = [0.0] * self._n_actions(domain)
        scores[domain.action_index[self.fallback_action_name]] = float(score)
        return scores

    def predict(self, tracker: Tracker, domain: Domain) -> np.ndarray:
        return np.array(self.predict_scores(tracker, domain, ()))

    def predict_scores(
        self, tracker: Tracker, domain: Domain, states: Sequence[State]
    ) -> list[float]:
        latest = tracker.latest_action_name
        if latest == self.fallback_action_name:
            scores = [0.0] * self._n_actions(domain)
            scores[domain.action_index[ACTION_LISTEN]] = 1.0
            return scores
        confidence = (tracker.latest_message.get("intent") or {}).get("confidence")
        if confidence is None:
            # NOTE: no confidence (a client-built message) counts as certain, as in
            # the original, so it never triggers the NLU fallback.
            confidence = 1.0
        if confidence < self.nlu_threshold and latest == ACTION_LISTEN:
            return self.fallback_list(domain)
        return self.fallback_list(domain, self.core_threshold)


class MappingPolicy(Policy):
    """Maps intents straight to actions: ``triggers``, ``restart``, ``back``.

    After the mapped action ran it predicts ``action_listen``. NOTE: the original
    meant to do so only when it had predicted that action itself, but compared the
    wrong policy name, so the branch never fired; we compare the latest action with
    the latest intent's mapping instead, which is what the branch was for.
    """

    max_history = 1
    _metadata_attrs = ("n_actions_",)

    def __init__(self, priority: int = 5):
        self.priority = priority

    def fit(
        self,
        dialogues: Sequence[TrainingDialogue],
        domain: Domain,
        *,
        validation: Sequence[TrainingDialogue] | None = None,
    ) -> Self:
        self.n_actions_ = len(domain.action_names)
        return self

    @staticmethod
    def mapped_action(intent: str | None, domain: Domain) -> str | None:
        props = domain.intent_by_name.get(intent) if intent else None
        if props is not None and props.triggers:
            return props.triggers
        return BUILTIN_MAPPINGS.get(intent) if intent else None

    def predict(self, tracker: Tracker, domain: Domain) -> np.ndarray:
        return np.array(self.predict_scores(tracker, domain, ()))

    def predict_scores(
        self, tracker: Tracker, domain: Domain, states: Sequence[State]
    ) -> list[float]:
        scores = [0.0] * self._n_actions(domain)
        action = self.mapped_action(tracker.latest_intent, domain)
        if action is None or action not in domain.action_index:
            return scores
        if tracker.latest_action_name == ACTION_LISTEN:
            scores[domain.action_index[action]] = 1.0
        elif tracker.latest_action_name == action:
            scores[domain.action_index[ACTION_LISTEN]] = 1.0
        return scores


class RulePolicy(Policy):
    """Rasa 2+'s rules: predicted with certainty and top priority wherever the last
    states of the conversation contain a rule's states.

    A rule's states hold only what the rule names (its condition, intents,
    entities, slots, loop, previous actions), so "anything else" matches, and a
    rule without ``conversation_start`` may apply anywhere. Training fails on rules
    that contradict each other or a story (naming both), as Rasa's does. While a
    form is active and no rule applies, the form runs after each user message and
    listens after it asked, unless it rejected the message. Without a matching rule
    the fallback action gets ``core_fallback_threshold`` (Rasa's
    ``enable_fallback_prediction``), so it wins only over unsure policies.
    """

    _metadata_attrs = ("n_actions_", "rules_", "max_history_")

    def __init__(
        self,
        priority: int = 6,
        core_fallback_threshold: float = 0.3,
        core_fallback_action_name: str = ACTION_DEFAULT_FALLBACK,
        enable_fallback_prediction: bool = True,
        check_for_contradictions: bool = True,
        restrict_rules: bool = True,
    ):
        self.priority = priority
        self.core_fallback_threshold = core_fallback_threshold
        self.core_fallback_action_name = core_fallback_action_name
        self.enable_fallback_prediction = enable_fallback_prediction
        self.check_for_contradictions = check_for_contradictions
        self.restrict_rules = restrict_rules

    @property
    def max_history(self) -> int:  # type: ignore[override]
        """One state more than the longest rule: enough to tell a conversation's
        start from the middle of it."""
        return getattr(self, "max_history_", 1)

    def fit(
        self,
        dialogues: Sequence[TrainingDialogue],
        domain: Domain,
        *,
        validation: Sequence[TrainingDialogue] | None = None,
    ) -> Self:
        if (
            self.enable_fallback_prediction
            and self.core_fallback_action_name not in domain.action_index
        ):
            raise InvalidConfig(
                f"RulePolicy: fallback action '{self.core_fallback_action_name}' "
                "is not in the domain"
            )
        rules: dict[str, dict[str, Any]] = {}
        for dialogue in dialogues:
            if dialogue.rule is None:
                continue
            users = sum(isinstance(e, UserUttered) for e in dialogue.events)
            if self.restrict_rules and users > 1:
                raise TrainingDataError(
                    f"rule '{dialogue.name}' has {users} user messages; a rule "
                    "holds at most one (write a story, or restrict_rules: false)"
                )
            for window, action in _rule_examples(dialogue, domain):
                key = json.dumps([window, dialogue.rule.conversation_start])
                known = rules.get(key)
                if known is not None and known["action"] != action:
                    raise TrainingDataError(
                        f"rules '{known['name']}' and '{dialogue.name}' predict "
                        f"'{domain.action_names[known['action']]}' and "
                        f"'{domain.action_names[action]}' for the same conversation"
                    )
                rules.setdefault(
                    key,
                    {
                        "states": window,
                        "action": action,
                        "start": dialogue.rule.conversation_start,
                        "name": dialogue.name,
                    },
                )
        self.rules_ = list(rules.values())
        self.n_actions_ = len(domain.action_names)
        self.max_history_ = 1 + max((len(r["states"]) for r in self.rules_), default=0)
        if self.check_for_contradictions:
            self._check_stories(dialogues, domain)
        return self

    def _check_stories(
        self, dialogues: Sequence[TrainingDialogue], domain: Domain
    ) -> None:
        problems = []
        for dialogue in story_dialogues(dialogues):
            if dialogue.is_augmented:
                continue
            for window, action in dialogue_examples(dialogue, domain, _ALL):
                rule = self._match(window, len(window))
                if _form_turn(window[-1], domain.action_names[action]) and not (
                    rule and _overrides_loop(rule, domain)
                ):
                    continue
                if rule is not None and _interrupted(
                    window[-1], domain.action_names[rule["action"]], action, domain
                ):
                    continue
                if rule is not None and rule["action"] != action:
                    problems.append(
                        f"rule '{rule['name']}' predicts "
                        f"'{domain.action_names[rule['action']]}' where story "
                        f"'{dialogue.name}' has '{domain.action_names[action]}'"
                    )
        if problems:
            raise TrainingDataError(
                "rules contradict stories: " + "; ".join(sorted(set(problems)))
            )

    def _match(self, states: Sequence[State], total: int) -> dict[str, Any] | None:
        """The most specific rule whose states the window's last states contain;
        ``total`` is how many states the conversation has (for start rules)."""
        best = None
        best_size = (-1, -1)
        for rule in self.rules_:
            want = rule["states"]
            n = len(want)
            if n > len(states) or (rule["start"] and total != n):
                continue
            have = states[len(states) - n :]
            if all(_state_matches(w, h) for w, h in zip(want, have, strict=True)):
                size = (n, sum(len(w) for w in want))
                if size > best_size:
                    best, best_size = rule, size
        return best

    def predict(self, tracker: Tracker, domain: Domain) -> np.ndarray:
        return np.array(
            self.predict_scores(tracker, domain, tracker.states(self.max_history))
        )

    def predict_scores(
        self, tracker: Tracker, domain: Domain, states: Sequence[State]
    ) -> list[float]:
        scores = [0.0] * self._n_actions(domain)
        window = own_window(states, self.max_history)
        # NOTE: max_history exceeds every rule's length, so a start rule can only
        # match a window that holds the whole conversation.
        rule = self._match(window, len(window))
        form = tracker.active_form
        if (
            rule is not None
            and form.get("rejected")
            and domain.action_names[rule["action"]] == form.get("name")
        ):
            # NOTE: the form refused this message: no rule runs it again now (Rasa's
            # "do not predict the loop action" after a rejection).
            rule = None
        loop = self._loop_action(tracker)
        # NOTE: an active form goes first, as in Rasa (its action after each user
        # message, a listen after it), but for a rule about that form that says
        # otherwise (an unhappy path: the loop in its condition).
        if (
            loop is not None
            and loop in domain.action_index
            and not (rule and _overrides_loop(rule, domain))
        ):
            scores[domain.action_index[loop]] = 1.0
        elif rule is not None:
            scores[rule["action"]] = 1.0
        elif self.enable_fallback_prediction:
            fallback = domain.action_index[self.core_fallback_action_name]
            scores[fallback] = self.core_fallback_threshold
        return scores

    @staticmethod
    def _loop_action(tracker: Tracker) -> str | None:
        form = tracker.active_form
        name = form.get("name")
        if not name or form.get("rejected"):
            return None
        latest = tracker.latest_action_name
        if latest == ACTION_LISTEN:
            return name
        return ACTION_LISTEN if latest == name else None


#: Enough history for every state of a dialogue.
_ALL = 1_000_000


def _rule_examples(
    dialogue: TrainingDialogue, domain: Domain
) -> list[tuple[list[State], int]]:
    """(the rule's states before an action, that action) for each of its actions.
    A rule that opens with a user message starts at that message, not at the
    conversation's initial state, unless it is a ``conversation_start`` rule.

    A state after the rule's ``active_loop: null`` requires that no form is
    active (Rasa's ``should_not_be_set``): without it, a rule that submits a form
    would match every turn of the form that the form action takes."""
    rule = dialogue.rule
    assert rule is not None
    first = dialogue.events[len(rule.condition) : len(rule.condition) + 1]
    opens_with_user = bool(first) and is_listen(first[0])
    skip = 1 if opens_with_user and not rule.conversation_start else 0
    no_loop = _no_loop_states(dialogue)
    return [
        (
            [
                {**s, NO_ACTIVE_LOOP: 1.0}
                if no_loop[i] and not _has_loop(s)
                else dict(s)
                for i, s in enumerate(window)
            ][skip:],
            action,
        )
        for window, action in dialogue_examples(dialogue, domain, _ALL)
    ]


#: A rule state's key: no form may be active (the rule deactivated it).
NO_ACTIVE_LOOP = "!active_form"


def _has_loop(state: State) -> bool:
    return any(k.startswith("active_form_") for k in state)


def _no_loop_states(dialogue: TrainingDialogue) -> list[bool]:
    """For each action of the dialogue (the state before it is the tracker's state
    of that index), whether the rule set ``active_loop: null`` before it (and no
    form since)."""
    flags, deactivated = [], False
    for event in dialogue.events:
        if isinstance(event, Form):
            deactivated = not event.name
        elif isinstance(event, ActionExecuted):
            flags.append(deactivated)
    return flags


def _overrides_loop(rule: dict[str, Any], domain: Domain) -> bool:
    """A rule whose last state has a form active and whose action is neither
    that form nor a listen: an unhappy path, which wins over the form."""
    last = rule["states"][-1] if rule["states"] else {}
    action = domain.action_names[rule["action"]]
    return (
        _has_loop(last)
        and action != ACTION_LISTEN
        and last.get(f"active_form_{action}") is None
    )


def _interrupted(state: State, predicted: str, action: int, domain: Domain) -> bool:
    """A story leaves the active form here (a user message the form would refuse,
    then another action): a rule that runs the form is its happy path, not a
    contradiction. At serving time the form runs, rejects, and then no rule runs
    it again (``predict_scores``)."""
    return (
        state.get(f"active_form_{predicted}") is not None
        and state.get("prev_action_listen") is not None
        and domain.action_names[action] != predicted
    )


def _form_turn(state: State, action: str) -> bool:
    """A story's own form turn (the form's action, or the listen after it, while
    the form is active): the form predicts it, not a rule."""
    return _has_loop(state) and (
        action == ACTION_LISTEN or state.get(f"active_form_{action}") is not None
    )


def _state_matches(want: State, have: State) -> bool:
    """The conversation state has every feature of the rule state (and no active
    form where the rule deactivated it)."""
    for key, value in want.items():
        if key == NO_ACTIVE_LOOP:
            if _has_loop(have):
                return False
        elif have.get(key) != value:
            return False
    return True
