"""Write a native copy of deploy/nginx.conf: the same load balancer, in front of
workers on known addresses (127.0.0.1:PORT) instead of the compose service's DNS name,
with its pid file, logs and temp files in one directory, for an unprivileged nginx.

    python deploy/render_nginx.py --listen 127.0.0.1:5005 --dir /tmp/lb \\
        --upstream 127.0.0.1:5101 --upstream 127.0.0.1:5102 > /tmp/lb/nginx.conf
    nginx -p /tmp/lb -e /tmp/lb/error.log -c /tmp/lb/nginx.conf -g 'daemon off;'

Tests import ``render`` from this file. Every substitution must match exactly once: a
change to nginx.conf that breaks one fails loudly here instead of rendering a config
that silently differs.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

NGINX_CONF = Path(__file__).resolve().parent / "nginx.conf"

_SERVERS = re.compile(
    r"^(?P<indent>[ \t]*)# @servers-begin.*?^[ \t]*# @servers-end[^\n]*\n",
    re.MULTILINE | re.DOTALL,
)
_SERVER_LINE = re.compile(r"^\s*server\s+\S+\s+(?P<params>[^;]*);", re.MULTILINE)
_TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def _sub_once(pattern: str, replacement: str, text: str, what: str) -> str:
    """``pattern`` replaced by ``replacement``, taken literally except ``{indent}``:
    the whitespace that the pattern's ``indent`` group matched."""
    new, count = re.subn(
        pattern,
        lambda m: replacement.replace("{indent}", m.groupdict().get("indent") or ""),
        text,
        flags=re.MULTILINE,
    )
    if count != 1:
        raise ValueError(f"nginx.conf: expected one {what}, found {count}")
    return new


def server_parameters(conf: str) -> str:
    """The parameters of the compose ``server`` line, less ``resolve`` (which only
    makes sense for a DNS name): the native servers get the same failure rules."""
    block = _SERVERS.search(conf)
    if block is None:
        raise ValueError("nginx.conf: no @servers-begin ... @servers-end block")
    lines = list(_SERVER_LINE.finditer(block.group(0)))
    if len(lines) != 1:
        raise ValueError(f"nginx.conf: expected one server line, found {len(lines)}")
    return " ".join(p for p in lines[0]["params"].split() if p != "resolve")


def render(
    upstreams: list[str],
    *,
    listen: str,
    run_dir: str | Path,
    conf: str | None = None,
    params: str | None = None,
    keep_servers: bool = False,
    worker_processes: int | None = None,
) -> str:
    """nginx.conf with ``upstreams`` (``host:port`` or ``unix:/path``) as the workers,
    listening on ``listen``, with pid, logs and temp files under ``run_dir``.

    ``params`` replaces the servers' parameters (default: those of nginx.conf, e.g.
    ``max_fails=1 fail_timeout=5s``). ``keep_servers`` keeps the compose block as it
    is (only paths and the listen address change): for ``nginx -t`` of the file as
    compose runs it, on an nginx new enough for ``resolve``. ``worker_processes``
    replaces ``auto`` (tests use 1, so connection reuse is predictable).
    """
    text = NGINX_CONF.read_text() if conf is None else conf
    run = Path(run_dir)
    if not keep_servers:
        if not upstreams:
            raise ValueError("at least one upstream is needed")
        if params is None:
            params = server_parameters(text)
        block = _SERVERS.search(text)
        if block is None:
            raise ValueError("nginx.conf: no @servers-begin ... @servers-end block")
        indent = block["indent"]
        servers = "".join(
            f"{indent}server {address} {params};\n".replace(" ;", ";")
            for address in upstreams
        )
        text = text[: block.start()] + servers + text[block.end() :]
    text = _sub_once(r"^pid\s+\S+;", f"pid {run / 'nginx.pid'};", text, "pid")
    text = _sub_once(
        r"^error_log\s+\S+", f"error_log {run / 'error.log'}", text, "error_log"
    )
    text = _sub_once(
        r"^(?P<indent>[ \t]*)access_log\s+/dev/stdout\s",
        f"{{indent}}access_log {run / 'access.log'} ",
        text,
        "access_log to /dev/stdout",
    )
    temp_paths = "".join(
        f"    {name}_temp_path {run / ('temp-' + name)};\n" for name in _TEMP_DIRS
    )
    text = _sub_once(r"^http \{\n", "http {\n" + temp_paths, text, "http block")
    text = _sub_once(
        r"^(?P<indent>[ \t]*)listen\s+5005;",
        f"{{indent}}listen {listen};",
        text,
        "listen 5005",
    )
    if worker_processes is not None:
        text = _sub_once(
            r"^worker_processes\s+\S+;",
            f"worker_processes {int(worker_processes)};",
            text,
            "worker_processes",
        )
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--upstream",
        action="append",
        default=[],
        help="a worker's address, host:port or unix:/path (repeat)",
    )
    parser.add_argument("--listen", default="127.0.0.1:5005")
    parser.add_argument("--dir", required=True, help="pid, logs and temp files")
    parser.add_argument("--params", help="server parameters instead of nginx.conf's")
    parser.add_argument("--worker-processes", type=int, help="instead of auto")
    parser.add_argument("-o", "--out", help="output file (default: stdout)")
    args = parser.parse_args(argv)
    text = render(
        args.upstream, listen=args.listen, run_dir=args.dir, params=args.params
    )
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
