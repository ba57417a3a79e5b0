"""deploy/Dockerfile, its entrypoint and .dockerignore, checked without a Docker
engine: the instructions are parsed and checked one by one, the entrypoint script and
the HEALTHCHECK command are run for real with stand-ins."""

from __future__ import annotations

import fnmatch
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.data import ROOT

DOCKERFILE = ROOT / "deploy" / "Dockerfile"
ENTRYPOINT = ROOT / "deploy" / "docker-entrypoint.sh"
DOCKERIGNORE = ROOT / ".dockerignore"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments and
    parser directives dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            word, _, rest = full.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages(parsed: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for instruction in parsed:
        if instruction[0] == "FROM":
            out.append([])
        if out:
            out[-1].append(instruction)
    return out


def _args(value: str) -> list[str]:
    """The exec (JSON) form of CMD/ENTRYPOINT/HEALTHCHECK CMD."""
    return json.loads(value)


def _check_final_stage(final: list[tuple[str, str]]) -> list[str]:
    out = []
    users = [v for a, v in final if a == "USER"]
    if not users:
        out.append("the runtime stage sets no USER (it would run as root)")
    elif users[-1].split(":")[0] in ("0", "root", ""):
        out.append("the runtime stage runs as root")
    health = [v for a, v in final if a == "HEALTHCHECK"]
    if not health or "/status" not in health[-1]:
        out.append("no HEALTHCHECK on /status")
    if not any(a == "EXPOSE" and "5005" in v.split() for a, v in final):
        out.append("EXPOSE 5005 is missing")
    entry = [v for a, v in final if a == "ENTRYPOINT"]
    if not entry or "dialogd" not in " ".join(_args(entry[-1])):
        out.append("the ENTRYPOINT is not dialogd")
    cmd = [v for a, v in final if a == "CMD"]
    if not cmd or not {"/models/core", "/models/nlu"} <= set(_args(cmd[-1])):
        out.append("the default CMD does not serve /models/core and /models/nlu")
    for word, value in final:
        if word == "RUN" and re.search(
            r"build-essential|\bgcc\b|apt-get install", value
        ):
            out.append("the runtime stage installs packages (compilers stay in build)")
        if word == "RUN" and "pip install" in value:
            out.append("the runtime stage runs pip (copy the built venv instead)")
    if not any(a == "COPY" and "--from=" in v for a, v in final):
        out.append("the runtime stage copies nothing from the build stage")
    return out


def problems(text: str) -> list[str]:
    parsed = instructions(text)
    out = []
    all_stages = stages(parsed)
    if len(all_stages) < 2:
        out.append("not a multi-stage build")
    base_args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text, re.MULTILINE))
    for stage in all_stages:
        image = stage[0][1].split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: base_args.get(m[1], ""), image)
        if not re.match(r"^python:3\.11(\.\d+)?-slim", image):
            out.append(f"base image {image!r} is not python:3.11-slim")
    out += _check_final_stage(all_stages[-1] if all_stages else [])
    for word, value in parsed:
        if word == "RUN" and re.search(r"\[test\]|pytest|\bruff\b|requests", value):
            out.append(f"test dependencies installed: RUN {value}")
    if re.search(r"gunicorn\.conf|DIALOGD_GUNICORN_CONF", text):
        out.append("a gunicorn config file: the package has its settings")
    return out


def test_the_dockerfile_has_no_problems() -> None:
    assert problems(DOCKERFILE.read_text()) == []


def _replace(old: str, new: str):
    def mutate(text: str) -> str:
        assert old in text, old
        return text.replace(old, new)

    return mutate


MUTATIONS = [
    ("root", _replace("USER 10001:10001", "USER root"), "runs as root"),
    ("no user", _replace("USER 10001:10001", ""), "sets no USER"),
    ("no healthcheck", _replace("HEALTHCHECK", "# HEALTHCHECK"), "HEALTHCHECK"),
    (
        "test extra",
        _replace("/wheels/dialogd-*.whl", "'/wheels/dialogd-*.whl[test]'"),
        "test dependencies",
    ),
    (
        "full base image",
        _replace(
            "ARG PYTHON_IMAGE=python:3.11-slim-bookworm", "ARG PYTHON_IMAGE=python:3.11"
        ),
        "not python:3.11-slim",
    ),
    ("no port", _replace("EXPOSE 5005", "EXPOSE 8000"), "EXPOSE 5005"),
    (
        "other entrypoint",
        _replace('ENTRYPOINT ["dialogd-entrypoint"]', 'ENTRYPOINT ["gunicorn"]'),
        "ENTRYPOINT",
    ),
    (
        "single stage",
        lambda t: re.sub(r"(?s)FROM \$\{PYTHON_IMAGE\} AS build.*?(?=FROM)", "", t),
        "multi-stage",
    ),
    (
        "compiler at run time",
        _replace("USER 10001:10001", "RUN apt-get install -y gcc\nUSER 10001:10001"),
        "installs packages",
    ),
    (
        "a gunicorn conf file",
        _replace("USER 10001:10001", "COPY x/gunicorn.conf.py /etc/\nUSER 10001:10001"),
        "gunicorn config file",
    ),
    (
        "no model in CMD",
        _replace('"-u", "/models/nlu"]', '"-u", "/model/nlu"]'),
        "default CMD",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected"), [pytest.param(m, e, id=n) for n, m, e in MUTATIONS]
)
def test_the_checker_notices(mutate: Any, expected: str) -> None:
    found = problems(mutate(DOCKERFILE.read_text()))
    assert any(expected in p for p in found), found


def test_instructions_parser() -> None:
    parsed = instructions('# c\nFROM a AS b\nRUN x \\\n  # inner\n  && y\nCMD ["z"]\n')
    assert parsed == [("FROM", "a AS b"), ("RUN", "x  && y"), ("CMD", '["z"]')]


# --- what gets copied, what the build context leaves out ---------------------------


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule for a pattern list without exceptions: a path is out when it, or
    a folder above it, matches a pattern."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch.fnmatchcase(prefix, pattern) or fnmatch.fnmatchcase(prefix, pattern[3:])
        if pattern.startswith("**/")
        else fnmatch.fnmatchcase(prefix, pattern)
        for prefix in prefixes
        for pattern in patterns
    )


def _patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    patterns = [p.strip().rstrip("/") for p in lines if p.strip()]
    patterns = [p for p in patterns if not p.startswith("#")]
    assert not [p for p in patterns if p.startswith("!")], "exceptions not handled"
    return patterns


def _copied_sources() -> list[str]:
    sources = []
    for word, value in instructions(DOCKERFILE.read_text()):
        if word != "COPY" or "--from=" in value:
            continue
        parts = [p for p in value.split() if not p.startswith("--")]
        sources += parts[:-1]
    return sources


def test_every_copied_path_exists_and_is_in_the_build_context() -> None:
    patterns = _patterns()
    sources = _copied_sources()
    assert "examples" in sources
    for source in sources:
        path = ROOT / source
        assert path.exists(), f"COPY {source}: missing"
        files = (
            [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        )
        kept = [f for f in files if not _ignored(str(f.relative_to(ROOT)), patterns)]
        assert kept, f"COPY {source}: .dockerignore leaves nothing of it"
        for f in files:
            rel = str(f.relative_to(ROOT))
            if "__pycache__" not in rel and not rel.endswith(".pyc"):
                assert not _ignored(rel, patterns), f"{rel} is needed but ignored"


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        "models/moodbot/core/metadata.json",
        "data/appendonly.aof",
        ".pytest_cache/v/x",
        ".ruff_cache/x",
        "api/__pycache__/app.cpython-311.pyc",
        "tests/conftest.py",
    ],
)
def test_dockerignore_leaves_out(path: str) -> None:
    assert _ignored(path, _patterns())


def test_dockerignore_keeps_the_example_bots_data() -> None:
    """`data` at the root is runtime state; examples/*/data is training data."""
    assert not _ignored("examples/moodbot/data/nlu.md", _patterns())


# --- the entrypoint script ----------------------------------------------------------


@pytest.fixture
def fake_dialogd(tmp_path: Path) -> Path:
    """A `dialogd` that prints its arguments as JSON."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "dialogd"
    fake.write_text(
        f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n"
    )
    fake.chmod(0o755)
    return bin_dir


def _entrypoint(bin_dir: Path, args: list[str], **env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DIALOGD_")}
    clean["PATH"] = f"{bin_dir}:{clean['PATH']}"
    done = subprocess.run(
        ["/bin/sh", str(ENTRYPOINT), *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_entrypoint_without_environment_is_plain_dialogd(fake_dialogd: Path) -> None:
    args = ["serve", "-d", "/models/core", "-u", "/models/nlu"]
    assert _entrypoint(fake_dialogd, args) == args


def test_entrypoint_maps_the_environment_to_flags(fake_dialogd: Path) -> None:
    got = _entrypoint(
        fake_dialogd,
        ["serve", "-d", "/models/core"],
        DIALOGD_REDIS_URL="rediss://:p@r:6380/0",
        DIALOGD_PORT="6000",
        DIALOGD_KEY_PREFIX="-odd-prefix:",
        DIALOGD_TTL="3600",
        DIALOGD_DATA_DIR="/data",
        DIALOGD_MAX_BODY="2048",
        DIALOGD_WORKERS="3",
        DIALOGD_TTL_UNUSED="x",
    )
    assert got[0] == "serve"
    assert got[-2:] == ["-d", "/models/core"]
    assert set(got[1:-2]) == {
        "--redis-url=rediss://:p@r:6380/0",
        "--port=6000",
        "--key-prefix=-odd-prefix:",
        "--ttl=3600",
        "--data-dir=/data",
        "--max-body=2048",
        "--workers=3",
    }


def test_entrypoint_flags_on_the_command_line_win(fake_dialogd: Path) -> None:
    """The environment's flags come first: argparse keeps the last value."""
    got = _entrypoint(
        fake_dialogd,
        ["serve", "--port", "7000"],
        DIALOGD_PORT="6000",
        DIALOGD_KEY_PREFIX="",
    )
    assert got == ["serve", "--port=6000", "--port", "7000"]


def test_entrypoint_leaves_other_commands_alone(fake_dialogd: Path) -> None:
    args = ["train", "--domain", "d.yml", "--out", "/models"]
    assert _entrypoint(fake_dialogd, args, DIALOGD_REDIS_URL="redis://r") == args


def test_entrypoint_flags_are_accepted_by_dialogd_serve() -> None:
    """Every flag the entrypoint adds exists in `dialogd serve`."""
    from api.cli import build_parser

    flags = re.findall(r"[A-Z_]+:(--[a-z-]+)", ENTRYPOINT.read_text())
    assert len(flags) >= 7
    parser = build_parser()
    argv = ["serve", "-d", "m", *[f"{flag}=1" for flag in flags]]
    parsed = parser.parse_args(argv)
    assert parsed.port == 1 and parsed.redis_url == "1" and parsed.workers == 1


# --- the HEALTHCHECK command --------------------------------------------------------


class _Status(http.server.BaseHTTPRequestHandler):
    code = 200

    def do_GET(self) -> None:
        self.send_response(self.code if self.path == "/status" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def status_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Status)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _healthcheck_argv() -> list[str]:
    health = [v for w, v in instructions(DOCKERFILE.read_text()) if w == "HEALTHCHECK"]
    command = health[-1].split(" CMD ", 1)[1]
    argv = json.loads(command)
    assert argv[0] == "python"
    return [sys.executable, *argv[1:]]


@pytest.mark.parametrize(("code", "healthy"), [(200, True), (503, False)])
def test_healthcheck_follows_status(
    status_server: http.server.HTTPServer, code: int, healthy: bool
) -> None:
    _Status.code = code
    port = str(status_server.server_address[1])
    done = subprocess.run(
        _healthcheck_argv(),
        env={**os.environ, "DIALOGD_PORT": port},
        capture_output=True,
        timeout=30,
    )
    assert (done.returncode == 0) is healthy


def test_healthcheck_fails_when_nothing_listens() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    done = subprocess.run(
        _healthcheck_argv(),
        env={**os.environ, "DIALOGD_PORT": port},
        capture_output=True,
        timeout=30,
    )
    assert done.returncode != 0
