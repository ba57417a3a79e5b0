"""Many clients on one conversation through two instances: nothing lost or doubled,
one order for every reader."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import requests


def test_16_clients_appending_to_one_conversation(pair):
    cid = f"append-{uuid.uuid4().hex}"
    per_client = 10

    def client(i: int) -> None:
        session = requests.Session()
        url = pair[i % 2].url
        for j in range(per_client):
            r = session.post(
                f"{url}/conversations/{cid}/tracker/events",
                json={"event": "bot", "text": f"{i}-{j}"},
                params={"include_events": "NONE"},
            )
            assert r.status_code == 200, r.text

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(client, range(16)))

    logs = [
        requests.get(
            f"{s.url}/conversations/{cid}/tracker", params={"include_events": "ALL"}
        ).json()["events"]
        for s in pair
    ]
    assert logs[0] == logs[1]
    texts = [e["text"] for e in logs[0] if e["event"] == "bot"]
    assert sorted(texts) == sorted(
        f"{i}-{j}" for i in range(16) for j in range(per_client)
    )
    assert [e["event"] for e in logs[0]].count("action") == 1  # one initial listen
    for i in range(16):  # each client's events are in its own order
        mine = [t for t in texts if t.startswith(f"{i}-")]
        assert mine == [f"{i}-{j}" for j in range(per_client)]


def test_8_clients_parsing_into_one_conversation(pair):
    cid = f"parse-{uuid.uuid4().hex}"
    per_client = 10

    def client(i: int) -> None:
        session = requests.Session()
        url = pair[i % 2].url
        for j in range(per_client):
            r = session.post(
                f"{url}/conversations/{cid}/parse",
                json={"query": f'/greet{{"name": "{i}-{j}"}}'},
            )
            assert r.status_code == 200, r.text
            assert r.json()["next_action"]

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(client, range(8)))

    logs = [
        requests.get(
            f"{s.url}/conversations/{cid}/tracker", params={"include_events": "ALL"}
        ).json()["events"]
        for s in pair
    ]
    assert logs[0] == logs[1]
    users = [e["text"] for e in logs[0] if e["event"] == "user"]
    assert sorted(users) == sorted(
        f'/greet{{"name": "{i}-{j}"}}' for i in range(8) for j in range(per_client)
    )


def test_a_busy_conversation_through_two_instances_loses_nothing(pair):
    """Two instances, eight clients, one conversation: its turns queue in each
    worker, race across them, and every message is logged once."""
    cid = f"busy-{uuid.uuid4().hex}"

    def client(i: int) -> list[int]:
        session = requests.Session()
        url = pair[i % 2].url
        return [
            session.post(
                f"{url}/conversations/{cid}/parse",
                json={"query": f'/greet{{"name": "{i}-{j}"}}'},
            ).status_code
            for j in range(15)
        ]

    with ThreadPoolExecutor(8) as pool:
        statuses = [s for codes in pool.map(client, range(8)) for s in codes]
    assert statuses == [200] * 120
    events = requests.get(
        f"{pair[0].url}/conversations/{cid}/tracker", params={"include_events": "ALL"}
    ).json()["events"]
    users = [e["text"] for e in events if e["event"] == "user"]
    assert sorted(users) == sorted(
        f'/greet{{"name": "{i}-{j}"}}' for i in range(8) for j in range(15)
    )
