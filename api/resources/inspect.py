"""``/inspect``: the conversation inspector, a static page shipped in the package
(``api/static/inspect/``: HTML, CSS and JavaScript, no build step, nothing from a
CDN). The page holds no data: it reads everything through the API with the
credentials its user types in, so it is served to anyone and the API decides
what they may see (admin only with authentication on)."""

from __future__ import annotations

from importlib import resources

import falcon

STATIC = resources.files("api").joinpath("static", "inspect")
#: the page's files and their types; nothing else is served
FILES = {
    "index.html": "text/html; charset=utf-8",
    "inspect.css": "text/css; charset=utf-8",
    "inspect.js": "text/javascript; charset=utf-8",
}
#: the page may load only its own files and talk only to its own server
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class InspectPage:
    """``GET /inspect`` (the page) and ``GET /inspect/{name}`` (its CSS and JS)."""

    #: ``api.middleware.Auth`` lets anyone fetch the page (not the data)
    AUTH_OPEN = True

    def __init__(self) -> None:
        self.files = {name: STATIC.joinpath(name).read_bytes() for name in FILES}

    def on_get(
        self, req: falcon.Request, resp: falcon.Response, name: str = "index.html"
    ) -> None:
        body = self.files.get(name)
        if body is None:
            raise falcon.HTTPNotFound()
        resp.data = body
        resp.content_type = FILES[name]
        resp.set_header("Content-Security-Policy", POLICY)
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.set_header("Cache-Control", "no-cache")
