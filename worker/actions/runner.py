"""``ActionRunner``: runs any action of one model's domain, as Rasa 3.6 would.

Built-ins first (unless the domain lists an action of that name: a team's own
``action_session_start``), then retrieval actions (``utter_faq``), ``utter_*``
responses, forms (unless an action of the form's name overrides it), and every
other action on the action server.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

from worker.actions.builtin import BUILTINS
from worker.actions.context import Context
from worker.actions.errors import ActionFailed
from worker.actions.errors import RemoteError
from worker.actions.forms import FormLoop
from worker.actions.http import ActionEndpoint
from worker.actions.http import HttpClient
from worker.actions.http import NLGEndpoint
from worker.actions.nlg import NLG
from worker.actions.nlg import RemoteNLG
from worker.actions.nlg import TemplateNLG
from worker.actions.nlg import bot_uttered
from worker.actions.remote import RemoteActions
from worker.domain import Domain
from worker.errors import UnknownAction
from worker.events import Event
from worker.nlu.response_selector import DEFAULT_SELECTOR
from worker.tracker import Tracker

log = logging.getLogger(__name__)


class ActionRunner:
    """Runs any action of one model's domain; thread-safe, one per model set.

    ``run`` raises ``ActionRejected`` (the loop logs the rejection instead of the
    action) or ``ActionFailed`` (the loop logs the action without events), and
    ``UnknownAction`` for a name the domain does not have; nothing else for a
    remote server's fault.
    """

    def __init__(
        self,
        domain: Domain,
        action_endpoint: ActionEndpoint | None = None,
        nlg_endpoint: NLGEndpoint | None = None,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.domain = domain
        self.clock = clock
        self.client = HttpClient()
        self.nlg: NLG = (
            RemoteNLG(nlg_endpoint, self.client)
            if nlg_endpoint is not None
            else TemplateNLG(domain.templates, rng or random.Random())
        )
        self.actions = RemoteActions(domain, action_endpoint, self.client, self.nlg)
        self.forms = {
            name: FormLoop(name, domain, self.run_in)
            for name in domain.forms
            if name not in domain.user_actions
        }

    def run(
        self,
        name: str,
        tracker: Tracker,
        events: Callable[[], list[Event]],
        channel: str | None = None,
    ) -> list[Event]:
        """The events of action ``name`` (not its own ``action`` event), run on
        ``tracker``, the state before it; ``events()`` reads the whole log, and is
        called only by the actions that need it (custom actions, history)."""
        # NOTE: rejections and failures are logged by the message loop, which
        # knows the conversation.
        return self.run_in(name, Context(tracker, events, channel, self.clock))

    def run_in(self, name: str, context: Context) -> list[Event]:
        """Any action in a given context (forms run their questions and their
        validation this way, on a temporary tracker)."""
        builtin = BUILTINS.get(name)
        if builtin is not None and name not in self.domain.user_actions:
            return builtin(self, context)
        known = name in self.domain.action_index
        if known and name.removeprefix("utter_") in self.domain.retrieval_intents:
            return self.retrieve(name, context)
        if name.startswith("utter_") and (known or name in self.domain.templates):
            # NOTE: as Rasa: a response, also one only an NLG server knows
            return self.utter(name, context)
        form = self.forms.get(name)
        if form is not None:
            return form.run(context)
        if not known:
            raise UnknownAction(f"action '{name}' is not in the domain")
        return self.remote(name, context)

    def utter(self, name: str, context: Context, silent: bool = False) -> list[Event]:
        """Response ``name`` as a bot event; none if it has no variation that fits
        (logged unless ``silent``, as Rasa's built-ins that utter if they can)."""
        try:
            message = self.nlg.generate(name, context, {})
        except RemoteError as err:
            raise ActionFailed(name, f"response {name!r}: {err}") from None
        if message is None:
            if not silent:
                log.error("no response %r (or none fits); nothing sent", name)
            return []
        message["utter_action"] = name
        return [bot_uttered(message, context.clock())]

    def retrieve(self, name: str, context: Context) -> list[Event]:
        """A retrieval action (``utter_faq``): the response the NLU's response
        selector chose for the latest message (``utter_faq/ask_name``), read from
        the intent's own selector, else the one for all retrieval intents."""
        selector = context.tracker.latest_message.get("response_selector")
        intent = name.removeprefix("utter_")
        chosen = None
        if isinstance(selector, dict):
            chosen = selector.get(intent) or selector.get(DEFAULT_SELECTOR)
        response = chosen.get("response") if isinstance(chosen, dict) else None
        full = response.get("utter_action") if isinstance(response, dict) else None
        if not isinstance(full, str) or not full.startswith(f"{name}/"):
            log.error("%s: the latest message has no response selection for it", name)
            return []
        return self.utter(full, context)

    def remote(self, name: str, context: Context) -> list[Event]:
        try:
            return self.actions.run(name, context)
        except RemoteError as err:  # an NLG server's, rendering the answer
            raise ActionFailed(name, str(err)) from None

    def close(self) -> None:
        """Close the kept-alive connections."""
        self.client.close()
