"""Playing dialogues through a running server over HTTP, as a client would.

For each user sentence of a dialogue: ``POST /conversations/{id}/parse``, run the
action the server answers in the client's own code, and report it with
``POST /conversations/{id}/continue``. What the bot said is that turn's prediction.

Per-response accuracy, as the bAbI tasks define it, predicts each bot turn from
the *gold* history. So by default the client says what the bot predicted (that is
scored), but then reports the action the logged dialogue took (``/continue`` with
the gold action, undoing a wrongly predicted listen, adding a listen where the
story has one), so the next turn starts from the true conversation. With
``free_running`` the bot's own actions drive the conversation instead.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from typing import Protocol

from api.testing import ACTION_LISTEN
from api.testing import Client as LoopClient
from bench.babi.bot import Gold
from bench.babi.bot import GoldFn
from bench.babi.data import Dialogue
from bench.babi.data import Result

#: More actions than this after one user sentence means the bot is looping.
MAX_ACTIONS_PER_TURN = 5


class Actions(Protocol):
    """The client's action code for one conversation."""

    def see(self, results: Sequence[Result], empty: bool = False) -> None: ...

    def run(
        self,
        action: str,
        slots: dict[str, Any],
        fetched: Sequence[Result] = (),
        empty: bool = False,
        target: str | None = None,
    ) -> tuple[str, list[dict[str, Any]]]: ...


class Client(LoopClient):
    def templates(self) -> dict[str, str]:
        """The first text of each ``utter_*`` template, from ``GET /domain``."""
        return {
            name: variations[0]["text"]
            for name, variations in self.get("/domain")["templates"].items()
        }

    def play(
        self,
        cid: str,
        dialogue: Dialogue,
        actions: Actions,
        gold: Sequence[Gold | None] | None = None,
    ) -> list[str]:
        """The bot's text for every turn; ``gold`` actions keep the history true."""
        actions.see(dialogue.results(-1), -1 in dialogue.empty_after)
        said: list[str] = []
        for i, turn in enumerate(dialogue.turns):
            reply = self.parse(cid, turn.user)
            if gold is None:
                said.append(self._free_turn(cid, i, dialogue, actions, reply))
            else:
                said.append(
                    self._forced_turn(cid, i, dialogue, actions, reply, gold[i])
                )
            actions.see(dialogue.results(i), i in dialogue.empty_after)
        return said

    def _free_turn(
        self,
        cid: str,
        i: int,
        dialogue: Dialogue,
        actions: Actions,
        reply: dict[str, Any],
    ) -> str:
        texts: list[str] = []

        def run(action: str, reply: dict[str, Any]) -> list[dict[str, Any]]:
            text, events = actions.run(
                action,
                reply["tracker"]["slots"],
                dialogue.results(i),
                i in dialogue.empty_after,
            )
            texts.append(text)
            return events

        self.follow(cid, reply, run, MAX_ACTIONS_PER_TURN)
        return "\n".join(texts)

    def _forced_turn(
        self,
        cid: str,
        i: int,
        dialogue: Dialogue,
        actions: Actions,
        reply: dict[str, Any],
        gold: Gold | None,
    ) -> str:
        predicted = reply.get("next_action")
        slots = reply["tracker"]["slots"]
        fetched, empty = dialogue.results(i), i in dialogue.empty_after
        text = ""
        if predicted not in (None, ACTION_LISTEN):
            # NOTE: a dry run on a copy: what the bot would have said.
            text, _ = copy.deepcopy(actions).run(predicted, slots, fetched, empty)
        if gold is None:
            # The logged action is one training never saw: the bot's own goes on.
            if predicted in (None, ACTION_LISTEN):
                return text
            gold = Gold(predicted)
        elif predicted == ACTION_LISTEN:
            self.post(f"/conversations/{cid}/tracker/events", {"event": "undo"})
        _, events = actions.run(gold.action, slots, fetched, empty, gold.target)
        after = self.post(
            f"/conversations/{cid}/continue",
            {"executed_action": gold.action, "events": events},
        )
        if after.get("next_action") != ACTION_LISTEN:
            self.post(
                f"/conversations/{cid}/tracker/events",
                {"event": "action", "name": ACTION_LISTEN},
            )
        return text


def play_all(
    url: str,
    dialogues: Sequence[Dialogue],
    make_actions: Callable[[dict[str, str]], Actions],
    prefix: str,
    threads: int = 2,
    gold: GoldFn | None = None,
) -> list[list[str]]:
    """Every dialogue's predictions, in order; ``threads`` clients in parallel;
    with ``gold`` the conversations follow the logged history."""
    templates = Client(url).templates()
    clients = [Client(url) for _ in range(max(1, threads))]

    def run(chunk: list[tuple[int, Dialogue]], client: Client) -> list[list[str]]:
        return [
            client.play(
                f"{prefix}{d.index}",
                d,
                make_actions(templates),
                gold(d) if gold is not None else None,
            )
            for _, d in chunk
        ]

    # NOTE: each thread has its own client: a client's connection is its own.
    chunks = [
        [(n, d) for n, d in enumerate(dialogues) if n % len(clients) == k]
        for k in range(len(clients))
    ]
    by_index: dict[int, list[str]] = {}
    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        for chunk, results in zip(chunks, pool.map(run, chunks, clients), strict=True):
            for (n, _), said in zip(chunk, results, strict=True):
                by_index[n] = said
    return [by_index[n] for n in range(len(dialogues))]
