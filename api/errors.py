"""The one place where exceptions become HTTP responses.

Every error body has one shape:
``{"version", "status": "failure", "reason", "message", "details", "help", "code"}``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import falcon

from api.http_errors import status_reason
from trackerstore import CorruptRecord
from trackerstore import StoreError
from trackerstore import StoreFull
from trackerstore import StoreUnavailable
from trackerstore import UnstorableValue
from trackerstore.registry import JobNotFound
from trackerstore.registry import ModelExists
from trackerstore.registry import ModelInUse
from trackerstore.registry import ModelNotFound
from trackerstore.registry import NoTrainer
from worker.archive import InvalidArchive
from worker.errors import ConversationBusy
from worker.errors import ConversationConflict
from worker.errors import DialogdError
from worker.errors import InvalidConfig
from worker.errors import InvalidEvent
from worker.errors import InvalidInput
from worker.errors import ModelError
from worker.errors import TrainingDataError
from worker.errors import UnknownAction
from worker.errors import public_message
from worker.version import __version__

log = logging.getLogger("dialogd.api")

#: exception class -> (HTTP status, reason); the most specific class wins.
ERROR_MAP: dict[type[Exception], tuple[int, str]] = {
    InvalidInput: (400, "InvalidParameter"),
    InvalidEvent: (400, "InvalidEvent"),
    UnknownAction: (400, "UnknownAction"),
    TrainingDataError: (400, "InvalidTrainingData"),
    InvalidConfig: (400, "InvalidConfig"),
    ConversationConflict: (409, "Conflict"),
    ConversationBusy: (409, "ConversationBusy"),
    InvalidArchive: (400, "InvalidModel"),
    ModelError: (500, "ModelError"),
    DialogdError: (500, "ServerError"),
    StoreFull: (503, "StoreFull"),
    StoreUnavailable: (503, "StoreUnavailable"),
    UnstorableValue: (400, "InvalidEvent"),
    CorruptRecord: (500, "CorruptRecord"),
    ModelNotFound: (404, "ModelNotFound"),
    JobNotFound: (404, "JobNotFound"),
    ModelInUse: (409, "ModelInUse"),
    ModelExists: (409, "ModelExists"),
    NoTrainer: (503, "NoTrainer"),
    StoreError: (500, "StoreError"),
}


class APIError(falcon.HTTPError):
    """An HTTP error raised by the API layer itself (bad body, wrong header)."""

    def __init__(self, status: int, reason: str, message: str, **details: Any):
        super().__init__(
            falcon.code_to_http_status(status), title=reason, description=message
        )
        self.reason = reason
        self.details = details


def log_context(req: falcon.Request) -> dict[str, Any]:
    """The fields an error log line about ``req`` carries (set by
    ``api.middleware.RequestContext``)."""
    return {
        "request_id": getattr(req.context, "request_id", None),
        "cid": getattr(req.context, "cid", None),
        "method": req.method,
        "path": req.path,
    }


def error_body(code: int, reason: str, message: str, details: Any = None) -> dict:
    """The one error shape; the message never names a server path."""
    return {
        "version": __version__,
        "status": "failure",
        "reason": reason,
        "message": public_message(message),
        "details": details or {},
        "help": None,
        "code": code,
    }


#: Falcon's errors whose reason is not their status's (most specific first)
FALCON_REASONS: tuple[tuple[type[falcon.HTTPError], str], ...] = (
    (falcon.HTTPInvalidParam, "InvalidParameter"),
    (falcon.HTTPMissingParam, "InvalidParameter"),
    (falcon.HTTPInvalidHeader, "InvalidHeader"),
    (falcon.HTTPMissingHeader, "InvalidHeader"),
    (falcon.MediaMalformedError, "MalformedBody"),
)


def reason_of(exc: falcon.HTTPError) -> str:
    """Ours name their reason; Falcon's get one stable spelling, not their title."""
    reason = getattr(exc, "reason", None)
    if reason:
        return reason
    for cls, name in FALCON_REASONS:
        if isinstance(exc, cls):
            return name
    return status_reason(exc.status_code)


def _serialize(
    req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError
) -> None:
    """Falcon's own errors (404, 405, ...) in our shape too."""
    code = exc.status_code
    reason = reason_of(exc)
    req.context.error_reason = reason  # counted by api.metrics
    message = exc.description or exc.title or ""
    resp.content_type = falcon.MEDIA_JSON
    resp.text = json.dumps(
        error_body(code, reason, message, getattr(exc, "details", None))
    )
    resp.status = exc.status


def _handle_domain_error(req, resp, exc: Exception, params) -> None:
    code, reason = next(
        (v for cls, v in ERROR_MAP.items() if isinstance(exc, cls)),
        (500, "ServerError"),
    )
    details = None
    if isinstance(exc, InvalidInput):
        details = {"parameter": exc.parameter, "in": exc.where}
    if code >= 500:
        log.error(
            "request failed: %s %s: %s",
            req.method,
            req.path,
            exc,
            exc_info=not isinstance(exc, StoreUnavailable),
        )
    req.context.error_reason = reason  # counted by api.metrics
    resp.status = falcon.code_to_http_status(code)
    resp.media = error_body(code, reason, str(exc), details)


def _handle_unexpected(req, resp, exc: Exception, params) -> None:
    if isinstance(exc, falcon.HTTPError):
        raise exc
    log.exception("unhandled error", extra=log_context(req))
    resp.status = falcon.HTTP_500
    resp.media = error_body(500, "ServerError", "internal server error; see the log")


def install(app: falcon.App) -> None:
    """Register the handlers; ``ERROR_MAP`` order matters only within one MRO."""
    app.add_error_handler(Exception, _handle_unexpected)
    app.add_error_handler(DialogdError, _handle_domain_error)
    app.add_error_handler(StoreError, _handle_domain_error)
    app.set_error_serializer(_serialize)
