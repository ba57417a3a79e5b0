"""The Falcon application: ``create_app`` wires it; the server builds the engine."""

from __future__ import annotations

from typing import Any

import falcon
import orjson
from falcon.media import JSONHandler

from api import errors
from api import resources
from api.metrics import PATH as METRICS_PATH
from api.metrics import Metrics
from api.metrics import MetricsMiddleware
from api.metrics import MetricsResource
from api.middleware import REQUEST_ID
from api.middleware import Auth
from api.middleware import RequestContext
from api.request import InputCheck
from api.request import Request
from api.resources import bot as channels
from api.resources import models
from api.resources.conversations import MODEL_HEADER
from api.resources.inspect import InspectPage
from trackerstore.registry import ModelRegistry
from worker.actions.http import Endpoint
from worker.archive import MAX_MODEL_BYTES
from worker.loop import Bot
from worker.turn import Engine

DEFAULT_MAX_BODY = 1024 * 1024
DEFAULT_MAX_UPLOAD = 256 * 1024 * 1024


def dump_json(value: Any) -> bytes:
    """Response JSON. PERF: orjson renders a turn's answer (the tracker with the
    latest parse) in a tenth of the time of ``json``."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def add_route(app: falcon.App, path: str, resource: Any) -> None:
    """``app.add_route`` that also answers ``HEAD`` wherever ``GET`` is a read:
    Falcon adds no HEAD of its own, and drops the body of a HEAD answer itself. A
    resource whose GET writes (the legacy ``GET .../parse``) says so with
    ``GET_WRITES`` and gets no HEAD."""
    if (
        hasattr(resource, "on_get")
        and not hasattr(resource, "on_head")
        and not getattr(resource, "GET_WRITES", False)
    ):
        resource.on_head = resource.on_get
    app.add_route(path, resource)


def create_app(
    engine: Engine,
    *,
    registry: ModelRegistry | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    max_upload: int = DEFAULT_MAX_UPLOAD,
    max_model: int = MAX_MODEL_BYTES,
    auth_token: str | None = None,
    jwt_secret: str | None = None,
    jwt_method: str = "HS256",
    cors_origins: list[str] | tuple[str, ...] | None = None,
    bot: Bot | None = None,
    callback: Endpoint | None = None,
    metrics: Metrics | None = None,
) -> falcon.App:
    """All routes, for one engine. ``/conversation/...`` is the 0.7 docs' spelling;
    training and model routes exist when there is a model ``registry``.

    ``cors_origins`` (``--cors``) lets browser pages of those origins (``*``: any)
    call the API: Falcon answers their preflight ``OPTIONS`` and marks responses.
    ``bot`` runs the server-side loop (its action and NLG servers); without one,
    only the domain's responses and the built-in actions run. ``callback``
    (the credentials' ``callback`` url) mounts Rasa's callback channel.

    With ``metrics``, ``GET /metrics`` serves them (``api.metrics``); the engine
    should report to it too (``Engine(observer=metrics)``)."""
    middleware: list = [RequestContext(), InputCheck()]
    if metrics is not None:
        # NOTE: first, so that its time covers the other middleware too.
        middleware.insert(0, MetricsMiddleware(metrics, engine))
    if cors_origins:
        middleware.append(
            falcon.CORSMiddleware(
                allow_origins="*" if "*" in cors_origins else list(cors_origins),
                expose_headers=[REQUEST_ID, MODEL_HEADER],
            )
        )
    if auth_token or jwt_secret:
        middleware.append(Auth(auth_token, jwt_secret, jwt_method))
    app = falcon.App(middleware=middleware, cors_enable=False, request_type=Request)
    app.req_options.strip_url_path_trailing_slash = True
    app.req_options.keep_blank_qs_values = False
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = JSONHandler(dumps=dump_json)
    errors.install(app)

    add_route(app, "/", resources.Root())
    add_route(app, "/openapi.json", resources.OpenAPI())
    add_route(app, "/version", resources.Version())
    add_route(app, "/status", resources.Status(engine))
    add_route(app, "/domain", resources.DomainResource(engine))
    nlu_parse = resources.NLUParse(engine, max_body)
    add_route(app, "/parse", nlu_parse)
    add_route(app, "/model/parse", nlu_parse)  # Rasa 2+'s name
    add_route(app, "/evaluate", resources.Evaluate(engine, max_body))
    if metrics is not None:
        add_route(app, METRICS_PATH, MetricsResource(metrics))
    inspector = InspectPage()
    add_route(app, "/inspect", inspector)
    add_route(app, "/inspect/{name}", inspector)
    conversations = resources.ConversationList(engine, max_body)
    add_route(app, "/conversations", conversations)
    per_conversation: dict[str, Any] = {
        "parse": resources.Parse(engine, max_body),
        "continue": resources.Continue(engine, max_body),
        "tracker": resources.TrackerResource(engine, max_body),
        "tracker/events": resources.TrackerEvents(engine, max_body),
    }
    bot = bot or Bot(engine)
    per_conversation.update(
        {
            "messages": channels.Messages(bot, max_body),
            "trigger_intent": channels.TriggerIntent(bot, max_body),
            "execute": channels.Execute(bot, max_body),
            "predict": channels.Predict(bot, max_body),
            "respond": channels.Respond(bot, max_body),
            "story": channels.Story(bot, max_body),
        }
    )
    add_route(app, "/webhooks/rest", channels.ChannelStatus())
    add_route(app, "/webhooks/rest/webhook", channels.RestWebhook(bot, max_body))
    if callback is not None:
        add_route(app, "/webhooks/callback", channels.ChannelStatus())
        add_route(
            app,
            "/webhooks/callback/webhook",
            channels.CallbackWebhook(bot, max_body, callback),
        )
    for prefix in ("/conversations", "/conversation"):
        for path, resource in per_conversation.items():
            add_route(app, f"{prefix}/{{cid}}/{path}", resource)
    if registry is not None:
        add_route(app, "/train", models.Train(registry))
        add_route(app, "/train/{job}", models.TrainJob(registry))
        add_route(app, "/models", models.Models(registry))
        add_route(app, "/models/{name}", models.ModelItem(registry))
        add_route(
            app, "/model", models.ActiveModel(engine, registry, max_upload, max_model)
        )
    return app
