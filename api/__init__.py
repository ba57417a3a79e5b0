"""HTTP layer of dialogd: the Falcon app, its resources, the CLI and the server."""

from api.app import create_app

__all__ = ["create_app"]
