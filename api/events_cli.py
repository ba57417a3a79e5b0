"""``dialogd events tail``: print the event stream (``trackerstore.stream``), one
JSON object a line, oldest first; ``--follow`` waits for new entries."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from itertools import islice
from typing import Any

import orjson

from trackerstore.stream import Entry
from trackerstore.stream import EventStream
from trackerstore.stream import id_after
from worker.errors import InvalidConfig


def add_events_parser(sub: Any) -> None:
    events = sub.add_parser("events", help="read the event stream (--event-stream)")
    events_sub = events.add_subparsers(dest="action", required=True)
    tail = events_sub.add_parser(
        "tail", help="print the stream's entries as JSON lines, oldest first"
    )
    tail.add_argument(
        "--redis-url",
        default=os.environ.get("DIALOGD_REDIS_URL") or None,
        help="the servers' Redis (default: $DIALOGD_REDIS_URL)",
    )
    tail.add_argument(
        "--key-prefix",
        default=os.environ.get("DIALOGD_KEY_PREFIX", ""),
        help="the servers' key prefix (default: $DIALOGD_KEY_PREFIX)",
    )
    tail.add_argument(
        "-f", "--follow", action="store_true", help="wait for new entries"
    )
    tail.add_argument(
        "--from",
        dest="after",
        metavar="ID",
        help="the entries after this stream id (0: all of them; default: 0, or "
        "with --follow only new ones)",
    )
    tail.add_argument("-n", "--count", type=int, help="stop after this many entries")
    tail.set_defaults(func=cmd_events_tail)


def _entries(stream: EventStream, args: argparse.Namespace) -> Iterator[Entry]:
    after = args.after
    if args.follow:
        return stream.follow(after or "$")
    start = "-" if after in (None, "0", "0-0") else id_after(after)
    return stream.entries(start)


def cmd_events_tail(args: argparse.Namespace) -> int:
    if not args.redis_url:
        raise InvalidConfig("give --redis-url (or set DIALOGD_REDIS_URL)")
    if args.count is not None and args.count < 1:
        raise InvalidConfig("--count must be at least 1")
    try:
        stream = EventStream(args.redis_url, prefix=args.key_prefix)
    except ValueError as err:
        raise InvalidConfig(str(err)) from err
    out = sys.stdout.buffer
    try:
        for entry in islice(_entries(stream, args), args.count):
            out.write(orjson.dumps(entry.as_dict()) + b"\n")
            if args.follow:
                out.flush()
        out.flush()
    except BrokenPipeError:
        # `dialogd events tail | head`: the reader has gone; as Python's docs
        # advise, the exit's flush goes to /dev/null instead of failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        stream.close()
    return 0
