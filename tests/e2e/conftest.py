"""Real servers for end-to-end tests: models trained by ``dialogd train``, served by
gunicorn (:class:`api.testing.Server`, 2 workers each), sharing the session's Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.cli import main as dialogd
from api.testing import Server
from tests.data import RASA_EXAMPLES
from tests.data import ROOT

FIXTURES = RASA_EXAMPLES / "server_test_fixtures"
MOODBOT = ROOT / "examples" / "moodbot"


def train(
    out: Path, domain: Path, stories: Path, config: str, nlu: Path | None = None
) -> Path:
    config_file = out / "config.yml"
    config_file.write_text(config)
    args = [
        "train",
        "--domain",
        str(domain),
        "--stories",
        str(stories),
        "--config",
        str(config_file),
        "--out",
        str(out),
    ]
    if nlu is not None:
        args += ["--nlu", str(nlu)]
    assert dialogd(args) == 0
    return out


AUGMENTED_MEMO = """
policies:
  - name: AugmentedMemoizationPolicy
    max_history: 3
"""


@pytest.fixture(scope="session")
def fixture_model(tmp_path_factory) -> Path:
    """The original server tests' model: default.yml, its stories, augmented memo."""
    return train(
        tmp_path_factory.mktemp("fixture-model"),
        FIXTURES / "default.yml",
        FIXTURES / "stories_defaultdomain.md",
        AUGMENTED_MEMO,
    )


@pytest.fixture(scope="session")
def slots_model(tmp_path_factory) -> Path:
    """The 'default agent' of the remote-client tests: default_with_slots.yml."""
    config = "policies:\n  - name: MemoizationPolicy\n    max_history: 3\n"
    return train(
        tmp_path_factory.mktemp("slots-model"),
        FIXTURES / "default_with_slots.yml",
        FIXTURES / "stories_defaultdomain.md",
        config,
    )


@pytest.fixture(scope="session")
def moodbot_model(tmp_path_factory) -> Path:
    return train(
        tmp_path_factory.mktemp("moodbot-model"),
        MOODBOT / "domain.yml",
        MOODBOT / "data" / "stories.md",
        (MOODBOT / "config.yml").read_text(),
        nlu=MOODBOT / "data" / "nlu.md",
    )


@pytest.fixture(scope="session")
def session_prefix() -> str:
    return f"e2e:{uuid.uuid4().hex[:8]}:"


def _servers(
    model: Path, redis_url: str, prefix: str, log_dir: Path, n: int, **kwargs
) -> Iterator[list[Server]]:
    servers = [Server(model, redis_url, prefix, log_dir, **kwargs) for _ in range(n)]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="session")
def pair(fixture_model, redis_url, session_prefix, tmp_path_factory) -> Iterator:
    """Two instances of the fixture model on one Redis: any request may go to either."""
    yield from _servers(
        fixture_model, redis_url, session_prefix, tmp_path_factory.mktemp("logs"), 2
    )


@pytest.fixture(scope="session")
def slots_server(slots_model, redis_url, tmp_path_factory) -> Iterator:
    yield from _servers(
        slots_model,
        redis_url,
        f"slots:{uuid.uuid4().hex[:8]}:",
        tmp_path_factory.mktemp("logs"),
        1,
    )


@pytest.fixture(scope="session")
def moodbot_server(moodbot_model, redis_url, tmp_path_factory) -> Iterator:
    yield from _servers(
        moodbot_model,
        redis_url,
        f"mood:{uuid.uuid4().hex[:8]}:",
        tmp_path_factory.mktemp("logs"),
        1,
        nlu=True,
    )
