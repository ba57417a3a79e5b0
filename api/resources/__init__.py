"""HTTP resources: each parses the request, calls one engine method, sets the body."""

from api.resources.conversations import Continue
from api.resources.conversations import ConversationList
from api.resources.conversations import Parse
from api.resources.conversations import TrackerEvents
from api.resources.conversations import TrackerResource
from api.resources.evaluate import Evaluate
from api.resources.service import DomainResource
from api.resources.service import NLUParse
from api.resources.service import OpenAPI
from api.resources.service import Root
from api.resources.service import Status
from api.resources.service import Version

__all__ = [
    "Continue",
    "ConversationList",
    "DomainResource",
    "Evaluate",
    "NLUParse",
    "OpenAPI",
    "Parse",
    "Root",
    "Status",
    "TrackerEvents",
    "TrackerResource",
    "Version",
]
