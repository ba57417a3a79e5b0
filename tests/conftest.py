"""Fixtures shared by every test package."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from trackerstore.embedded import EmbeddedRedis


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private Redis for the whole session (never the one on port 6379)."""
    with EmbeddedRedis(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture
def key_prefix() -> str:
    """A key prefix no other test uses, so tests never see each other's data."""
    return f"test:{uuid.uuid4().hex}:"
