"""Fixtures shared by every test package."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import data as bench_data
from trackerstore.embedded import EmbeddedRedis

E2E = Path(__file__).resolve().parent / "e2e"
#: the fixtures (tests/e2e/conftest.py) that start dialogd servers
SERVER_FIXTURES = {"pair", "slots_server", "moodbot_server"}


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private Redis for the whole session (never the one on port 6379)."""
    with EmbeddedRedis(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture
def key_prefix() -> str:
    """A key prefix no other test uses, so tests never see each other's data."""
    return f"test:{uuid.uuid4().hex}:"


def _starts_a_server(item: pytest.Item) -> bool:
    """In tests/e2e, or using a server fixture, or in a module that imports the
    ``Server`` helper. A test elsewhere that starts a server by hand (deploy/, the
    bAbI harness) carries ``e2e`` explicitly."""
    if E2E in item.path.parents or SERVER_FIXTURES & set(item.fixturenames):
        return True
    helper = getattr(getattr(item, "module", None), "Server", None)
    return isinstance(helper, type) and hasattr(helper, "start")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``e2e`` on every test that starts a server, so ``-m "not e2e"`` is the quick
    unit run; a ``data`` test whose dataset is not fetched is skipped, saying how
    to fetch it."""
    for item in items:
        if _starts_a_server(item) and item.get_closest_marker("e2e") is None:
            item.add_marker(pytest.mark.e2e)
        for marker in item.iter_markers("data"):
            missing = [n for n in marker.args if not bench_data.available(n)]
            if missing:
                names = " ".join(missing)
                item.add_marker(
                    pytest.mark.skip(
                        reason=f"needs the whole public set(s) {names}, not in "
                        f"{bench_data.data_dir()}: python -m bench.data fetch {names}"
                    )
                )
