"""What gunicorn answers itself, in the JSON error shape (``api.http_errors``)."""

import json

from gunicorn import util
from gunicorn.http.errors import LimitRequestLine

from api.http_errors import JsonErrors
from api.http_errors import status_reason


class FakeSocket:
    def __init__(self):
        self.sent = b""
        self.timeout = None

    def gettimeout(self):
        return self.timeout

    def setblocking(self, flag):
        self.timeout = None if flag else 0.0

    def sendall(self, data):
        self.sent += data


class StockWorker:
    """gunicorn's part of ``handle_error``: it decides the status and writes HTML."""

    def handle_error(self, req, client, addr, exc):
        util.write_error(client, 414, "URI Too Long", str(exc))


class Worker(JsonErrors, StockWorker):
    pass


def test_gunicorns_decision_is_written_as_json():
    client = FakeSocket()
    Worker().handle_error(None, client, ("1.2.3.4", 5), LimitRequestLine(9000, 8190))
    head, _, body = client.sent.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 414 ")
    assert b"Content-Type: application/json" in head
    assert b"Connection: close" in head
    error = json.loads(body)
    assert error["code"] == 414 and error["status"] == "failure"
    assert error["reason"] == "RequestURITooLong"
    assert "8190" in error["message"]
    assert b"<html>" not in client.sent


def test_reasons_are_camel_case_status_phrases():
    assert status_reason(404) == "NotFound"
    assert status_reason(405) == "MethodNotAllowed"
    assert status_reason(411) == "LengthRequired"
    assert status_reason(413) == "PayloadTooLarge"
    assert status_reason(500) == "ServerError"
    assert status_reason(599) == "Error"
