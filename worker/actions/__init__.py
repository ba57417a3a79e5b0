"""What an action does, run by the server: responses (NLG), the action server
client, the built-in actions and forms. Worker layer: no HTTP framework, no store."""

from worker.actions.errors import ActionFailed
from worker.actions.errors import ActionRejected
from worker.actions.http import ActionEndpoint
from worker.actions.http import NLGEndpoint
from worker.actions.runner import ActionRunner

__all__ = [
    "ActionEndpoint",
    "ActionFailed",
    "ActionRejected",
    "ActionRunner",
    "NLGEndpoint",
]
