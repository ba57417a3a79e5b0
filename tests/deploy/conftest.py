"""Shared by the deployment tests (deploy/, docker-compose.yml): they read files and
run local tools only (docker-compose, nginx, redis-server when installed); only
test_compose_stack.py needs a container engine (and skips without one), none needs
the network."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from tests.data import ROOT

DEPLOY = ROOT / "deploy"


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def find_binary(name: str) -> str | None:
    """``name`` on PATH, or in the sbin folders a non-root PATH lacks."""
    found = shutil.which(name)
    if found:
        return found
    for folder in ("/usr/sbin", "/usr/local/sbin", "/sbin"):
        candidate = Path(folder) / name
        if candidate.is_file():
            return str(candidate)
    return None


@pytest.fixture(scope="session")
def render_nginx() -> ModuleType:
    """deploy/render_nginx.py (deploy/ is not a package)."""
    return _load(DEPLOY / "render_nginx.py", "render_nginx")


@pytest.fixture(scope="session")
def nginx() -> str:
    path = find_binary("nginx")
    if path is None:
        pytest.skip("nginx is not installed (apt-get install nginx): not run")
    return path


@pytest.fixture(scope="session")
def redis_server() -> str:
    path = find_binary("redis-server")
    if path is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    return path


@pytest.fixture(scope="session")
def nginx_version(nginx: str) -> tuple[int, ...]:
    out = subprocess.run([nginx, "-v"], capture_output=True, text=True, timeout=10)
    match = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", out.stderr + out.stdout)
    assert match, f"cannot read the version of {nginx}: {out.stderr!r}"
    return tuple(int(part) for part in match.groups())
