"""Slow clients on a bare ``dialogd serve``: 200 sockets that send nothing, or their
headers or body a byte at a time, must not keep a normal client from its answers."""

from __future__ import annotations

import uuid

from api.testing import Client
from api.testing import Server
from bench.slow_clients import SlowClients


def test_a_normal_client_is_answered_while_200_slow_clients_hold_connections(
    moodbot_model, redis_url, tmp_path
):
    server = Server(
        moodbot_model, redis_url, f"slow:{uuid.uuid4().hex[:8]}:", tmp_path, nlu=True
    ).start()
    try:
        with SlowClients(server.port, n=200, interval=0.5, seconds=60) as attack:
            failures = []
            for i in range(20):
                # a new connection each time, as a new client would open
                client = Client(server.url, timeout=8)
                try:
                    reply = client.parse(f"normal-{i}", "/greet")
                    assert reply["next_action"] == "utter_greet"
                except OSError as err:
                    failures.append(repr(err))
                    if len(failures) >= 3:
                        break
                finally:
                    client.close()
            assert attack.opened >= 200
        assert failures == []
        assert server.proc is not None and server.proc.poll() is None
    finally:
        server.stop()
