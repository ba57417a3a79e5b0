"""A conversation written as a story (``GET /conversations/{id}/story``): what a
team copies from a real conversation into its training data."""

from __future__ import annotations

from collections.abc import Sequence

from worker.convert import stories_to_markdown
from worker.convert import stories_to_yaml
from worker.domain import ACTION_LISTEN
from worker.domain import ACTION_SESSION_START
from worker.events import ActionExecuted
from worker.events import Event
from worker.events import Form
from worker.events import SessionStarted
from worker.events import SlotSet
from worker.events import UserUttered
from worker.tracker import applied_events
from worker.training.stories import STORY_START
from worker.training.stories import Checkpoint
from worker.training.stories import StoryStep


def conversation_story(
    cid: str,
    events: Sequence[Event],
    markdown: bool = False,
    all_sessions: bool = False,
) -> str:
    """The applied events a story can hold (messages, actions but the listens,
    slots, loops), as one story named by the conversation id; by default the
    latest session only, as Rasa 3."""
    applied = applied_events(events)
    if not all_sessions:
        starts = [i for i, e in enumerate(applied) if isinstance(e, SessionStarted)]
        if starts:
            applied = applied[starts[-1] + 1 :]
    kept = tuple(e for e in applied if _in_story(e))
    step = StoryStep(cid, (Checkpoint(STORY_START),), kept, ())
    return stories_to_markdown([step]) if markdown else stories_to_yaml([step])


def _in_story(event: Event) -> bool:
    if isinstance(event, ActionExecuted):
        return event.name not in (ACTION_LISTEN, ACTION_SESSION_START)
    return isinstance(event, UserUttered | SlotSet | Form)
