"""What every request passes before a resource sees it: the URL's encoding, the
path's ids, and how a body without a length may be read.

Ids (``{cid}``, ``{name}``, ``{job}``) are checked here once for all routes: a
conversation id names a Redis key and comes back in every answer, so an empty one,
one with control characters or one of unbounded length is refused. Falcon decodes a
URL's invalid UTF-8 into U+FFFD, which would make ``/conversations/%FF`` and
``/conversations/%FE`` one conversation; the raw URL is read instead.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_to_bytes

import falcon

from api.body import is_chunked
from api.errors import APIError

#: the longest id a path may carry, in characters
MAX_ID_LENGTH = 256
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


class Request(falcon.Request):
    """Falcon's request, whose readers never take a chunked body for an empty one.

    Falcon sizes ``bounded_stream`` by Content-Length, which a chunked body has
    not: it would read nothing, and the request would be answered as if it had no
    body. ``api.body.read_body`` reads chunked bodies itself, within its limit;
    every other reader (multipart forms) gets 411.
    """

    @property
    def bounded_stream(self) -> Any:
        if self.content_length is None and is_chunked(self):
            raise APIError(
                411,
                "LengthRequired",
                "this route needs a Content-Length; a chunked body is not read here",
            )
        return super().bounded_stream


def _raw(text: str) -> bytes:
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:  # a server that decoded it already
        return text.encode()


def _utf8(raw: bytes, where: str) -> None:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise APIError(
            400,
            "InvalidEncoding",
            f"the {where} is not UTF-8 after percent-decoding (byte {err.start})",
            **{"in": where},
        ) from err


class InputCheck:
    """The URL's encoding and the path's ids, for every route."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        # NOTE: WSGI hands the path and query over as latin-1 text of the raw bytes.
        path = req.env.get("PATH_INFO", "")
        if not path.isascii():
            _utf8(_raw(path), "path")
        query = req.env.get("QUERY_STRING", "")
        if "%" in query or not query.isascii():
            _utf8(unquote_to_bytes(_raw(query)), "query")

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict
    ) -> None:
        for name, value in params.items():
            check_id(value, name, "path")


def check_id(value: Any, name: str, where: str = "body") -> str:
    """An id that names a conversation (or a job, a model): the same bounds
    wherever it enters, the path or a body (the REST channel's ``sender``)."""
    problem = None
    if not isinstance(value, str):
        problem = "must be a string"
    elif not value:
        problem = "must not be empty"
    elif len(value) > MAX_ID_LENGTH:
        problem = f"is longer than {MAX_ID_LENGTH} characters"
    elif _CONTROL.search(value):
        problem = "must not contain control characters"
    if problem:
        raise APIError(
            400,
            "InvalidParameter",
            f"the {name} in the {where} {problem}",
            parameter=name,
            **{"in": where},
        )
    return value
