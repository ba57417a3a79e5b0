"""An example consumer of dialogd's event stream: every logged event into PostgreSQL.

    python examples/event_consumer/postgres_consumer.py --redis-url redis://... \\
        --dsn postgresql://user@host/db [--group postgres] [--consumer NAME]

Run as many as you like (each with its own ``--consumer`` name): a Redis consumer
group hands each stream entry to one of them. The table ends up holding each event
of each conversation once, at its place in the log, whatever crashes:

- a batch is applied in one PostgreSQL transaction and acknowledged after the
  commit: a consumer killed before the ``XACK`` gets the batch again (its pending
  entries, when it restarts under the same name) or another consumer claims it
  once idle for ``--claim-idle-ms``: applied twice, it changes nothing;
- every row keeps the stream id that wrote it, and a row is only written over by a
  later entry: so a late, redelivered entry never undoes a newer one, and the
  order in which consumers apply batches does not matter;
- a ``reset`` entry (the conversation's log was replaced or started anew) deletes
  the conversation's older rows and is remembered, so an older event that comes
  late is not inserted again;
- each transaction locks its conversations (``pg_advisory_xact_lock``, in sorted
  order) so two consumers never interleave on one conversation.

``dialogd_events(sender_id, seq)`` is the event at index ``seq`` of the
conversation's log; ``data`` is the event as Rasa's brokers publish it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
from collections.abc import Sequence

import psycopg

from trackerstore.stream import Entry
from trackerstore.stream import EventStream

SCHEMA = """
CREATE TABLE IF NOT EXISTS dialogd_events (
    sender_id text NOT NULL,
    seq bigint NOT NULL,
    stream_ms bigint NOT NULL,
    stream_seq bigint NOT NULL,
    type_name text NOT NULL,
    timestamp double precision,
    data jsonb NOT NULL,
    PRIMARY KEY (sender_id, seq)
);
CREATE TABLE IF NOT EXISTS dialogd_resets (
    sender_id text PRIMARY KEY,
    stream_ms bigint NOT NULL,
    stream_seq bigint NOT NULL
);
"""

#: the advisory lock key under which consumers create the schema
SCHEMA_LOCK = 0x6469616C6F6764  # "dialogd"

RESET = """
INSERT INTO dialogd_resets (sender_id, stream_ms, stream_seq) VALUES (%s, %s, %s)
ON CONFLICT (sender_id) DO UPDATE
    SET stream_ms = excluded.stream_ms, stream_seq = excluded.stream_seq
    WHERE (dialogd_resets.stream_ms, dialogd_resets.stream_seq)
        < (excluded.stream_ms, excluded.stream_seq)
"""
DROP_OLDER = """
DELETE FROM dialogd_events
WHERE sender_id = %s AND (stream_ms, stream_seq) < (%s, %s)
"""
UPSERT = """
INSERT INTO dialogd_events
    (sender_id, seq, stream_ms, stream_seq, type_name, timestamp, data)
SELECT %(sender)s, %(seq)s, %(ms)s, %(n)s, %(type)s, %(ts)s, %(data)s
WHERE NOT EXISTS (
    SELECT 1 FROM dialogd_resets r
    WHERE r.sender_id = %(sender)s AND (r.stream_ms, r.stream_seq) > (%(ms)s, %(n)s)
)
ON CONFLICT (sender_id, seq) DO UPDATE
    SET stream_ms = excluded.stream_ms, stream_seq = excluded.stream_seq,
        type_name = excluded.type_name, timestamp = excluded.timestamp,
        data = excluded.data
    WHERE (dialogd_events.stream_ms, dialogd_events.stream_seq)
        < (excluded.stream_ms, excluded.stream_seq)
"""


def _id(entry: Entry) -> tuple[int, int]:
    ms, _, n = entry.id.partition("-")
    return int(ms), int(n)


def apply(db: psycopg.Connection, entries: Sequence[Entry]) -> None:
    """Write a batch in one transaction (see the module's docstring)."""
    senders = sorted({e.sender_id for e in entries if e.type != "trimmed"})
    with db.transaction(), db.cursor() as cur:
        for sender in senders:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (sender,))
        for entry in entries:
            ms, n = _id(entry)
            if entry.type == "reset":
                cur.execute(RESET, (entry.sender_id, ms, n))
                cur.execute(DROP_OLDER, (entry.sender_id, ms, n))
            elif entry.type == "event" and entry.event is not None:
                cur.execute(
                    UPSERT,
                    {
                        "sender": entry.sender_id,
                        "seq": entry.seq,
                        "ms": ms,
                        "n": n,
                        "type": entry.event.get("event", ""),
                        "ts": entry.event.get("timestamp"),
                        "data": json.dumps(entry.event),
                    },
                )


def run(args: argparse.Namespace) -> int:
    stop = False

    def stopping(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, stopping)
    signal.signal(signal.SIGINT, stopping)
    stream = EventStream(args.redis_url, prefix=args.key_prefix)
    stream.create_group(args.group, "0")
    with psycopg.connect(args.dsn, autocommit=True) as db:
        # NOTE: CREATE ... IF NOT EXISTS is not safe against a concurrent one
        # (both may insert the type: UniqueViolation); consumers starting
        # together take turns on a transaction-scoped advisory lock.
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            db.execute(SCHEMA)
        # what this consumer was given before it stopped (or was killed)
        while batch := stream.pending_of(args.group, args.consumer, args.batch):
            apply(db, batch)
            stream.ack(args.group, [e.id for e in batch])
        while not stop:
            batch = stream.claim_stale(
                args.group, args.consumer, args.claim_idle_ms, args.batch
            ) or stream.read_group(args.group, args.consumer, args.batch, args.block_ms)
            if not batch:
                if args.exit_when_idle:
                    break
                continue
            apply(db, batch)
            stream.ack(args.group, [e.id for e in batch])
    stream.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--redis-url", default=os.environ.get("DIALOGD_REDIS_URL"), required=False
    )
    parser.add_argument(
        "--key-prefix", default=os.environ.get("DIALOGD_KEY_PREFIX", "")
    )
    parser.add_argument("--dsn", required=True, help="PostgreSQL connection string")
    parser.add_argument("--group", default="postgres", help="consumer group")
    parser.add_argument(
        "--consumer",
        default=f"{socket.gethostname()}-{os.getpid()}",
        help="this consumer's name; restarted under it, it first applies what it "
        "was given and had not acknowledged (default: host-pid)",
    )
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--block-ms", type=int, default=1000)
    parser.add_argument(
        "--claim-idle-ms",
        type=int,
        default=30_000,
        help="take over entries another consumer has held this long unacknowledged",
    )
    parser.add_argument(
        "--exit-when-idle",
        action="store_true",
        help="stop once nothing new came in --block-ms (a batch job, the tests)",
    )
    args = parser.parse_args(argv)
    if not args.redis_url:
        parser.error("give --redis-url (or set DIALOGD_REDIS_URL)")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
