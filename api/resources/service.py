"""Service endpoints: health, version, status, domain and NLU-only parsing."""

from __future__ import annotations

import json
from pathlib import Path

import falcon

from api.body import json_object
from api.body import read_json
from api.errors import APIError
from api.resources.conversations import MODEL_HEADER
from api.resources.conversations import query_text
from worker.turn import Engine
from worker.version import __version__
from worker.yamlfile import read_yaml

MINIMUM_COMPATIBLE_VERSION = "0.1.0"
OPENAPI_DOCUMENT = Path(__file__).resolve().parent.parent / "openapi.yaml"


class Root:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = f"hello from dialogd: {__version__}"


class Version:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {
            "version": __version__,
            "minimum_compatible_version": MINIMUM_COMPATIBLE_VERSION,
        }


class Status:
    """Readiness: 200 when the model is loaded and Redis answers, else 503. With
    authentication on, only an admin sees more than ``is_ready`` (the model's name
    and the store's error are not for anonymous probes)."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        status = self.engine.status()
        privileged = getattr(req.context, "privileged", True)
        resp.media = status if privileged else {"is_ready": status["is_ready"]}
        if not status["is_ready"]:
            resp.status = falcon.HTTP_503


class OpenAPI:
    """The API's contract (``api/openapi.yaml``, shipped in the package), as JSON."""

    def __init__(self) -> None:
        # NOTE: the strict loader: a key given twice (a merge's leftover) fails.
        document = read_yaml(OPENAPI_DOCUMENT).data
        document["info"]["version"] = __version__
        self.body = json.dumps(document).encode()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_JSON
        resp.data = self.body


class DomainResource:
    """JSON or YAML by ``Accept``; ``*/*`` (curl's default) gets JSON."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        accept = (req.get_header("Accept") or "*/*").split(";")[0].strip().lower()
        if accept.endswith(("yml", "yaml")):
            resp.content_type = "application/x-yml"
            resp.text = self.engine.domain.to_yaml()
        elif accept.endswith("json") or accept in ("*/*", "application/*", ""):
            resp.media = self.engine.domain.as_dict()
        else:
            raise APIError(
                406,
                "InvalidHeader",
                "Accept must ask for JSON (application/json) or YAML "
                "(application/x-yml)",
                parameter="Accept",
                **{"in": "header"},
            )


class NLUParse:
    """NLU only (0.14's ``POST /parse``); touches no conversation."""

    def __init__(self, engine: Engine, max_body: int):
        self.engine = engine
        self.max_body = max_body

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        text = req.get_param("q") or req.get_param("query")
        self._parse(req, resp, query_text(text, "q"))

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_object(read_json(req, self.max_body))
        text = body.get("q", body.get("text", body.get("query")))
        self._parse(req, resp, query_text(text, "q"))

    def _parse(self, req: falcon.Request, resp: falcon.Response, text: str) -> None:
        models = self.engine.nlu(req.get_param("model"))
        resp.set_header(MODEL_HEADER, models.fingerprint)
        resp.media = models.interpreter.parse(text)
