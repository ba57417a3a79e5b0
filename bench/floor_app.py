"""The floor: the least a turn can do. A Falcon app under the same gunicorn settings
whose handler reads the JSON body, does one Redis read and one Redis append, and
answers JSON. dialogd's turn does all of this and more, so it cannot be faster.

    python -m bench.floor_app --redis-url URL -p PORT [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import falcon
import redis
from gunicorn.app.base import BaseApplication

from api.serving.settings import gunicorn_settings


class Turn:
    def __init__(self, url: str):
        self.url = url
        self.pid = -1
        self.client: redis.Redis | None = None

    def redis(self) -> redis.Redis:
        if self.client is None or self.pid != os.getpid():
            self.client, self.pid = redis.Redis.from_url(self.url), os.getpid()
        return self.client

    def on_post(self, req: falcon.Request, resp: falcon.Response, cid: str) -> None:
        body = json.loads(req.bounded_stream.read())
        client = self.redis()
        key = f"floor:{{{cid}}}"
        client.hget(key + ":meta", "s")
        client.rpush(key + ":log", json.dumps({"event": "user", "text": body["query"]}))
        resp.media = {"next_action": "action_listen", "cid": cid}


class _Gunicorn(BaseApplication):
    def __init__(self, app: falcon.App, settings: dict):
        self.app, self.settings = app, settings
        super().__init__()

    def load_config(self) -> None:
        for key, value in {**gunicorn_settings(), **self.settings}.items():
            if value is not None:
                self.cfg.set(key, value)

    def load(self) -> falcon.App:
        return self.app


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("-p", "--port", type=int, default=5006)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    app = falcon.App()
    turn = Turn(args.redis_url)
    for path in ("parse", "continue"):
        app.add_route(f"/conversations/{{cid}}/{path}", turn)
    app.add_route("/status", _Status())
    _Gunicorn(
        app,
        {
            "bind": f"127.0.0.1:{args.port}",
            "workers": args.workers,
            "control_socket_disable": True,
            "accesslog": None,
            "logger_class": "gunicorn.glogging.Logger",
        },
    ).run()
    return 0


class _Status:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"is_ready": True}


if __name__ == "__main__":
    sys.exit(main())
