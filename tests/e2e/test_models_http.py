"""Training and switching models over HTTP, on two instances and a trainer process."""

from __future__ import annotations

import io
import json
import tarfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import requests

from tests.data import RASA_EXAMPLES
from tests.e2e.conftest import _servers
from worker.archive import pack
from worker.nlu import NLUPipeline
from worker.nlu import load_nlu_data

MOODBOT = RASA_EXAMPLES / "moodbot"
NLU = {
    "rasa_nlu_data": {
        "common_examples": [
            {"text": "hey", "intent": "greet"},
            {"text": "hello there", "intent": "greet"},
            {
                "text": "show me chinese restaurants",
                "intent": "restaurant_search",
                "entities": [
                    {"start": 8, "end": 15, "value": "chinese", "entity": "cuisine"}
                ],
            },
            {
                "text": "i want indian food",
                "intent": "restaurant_search",
                "entities": [
                    {"start": 7, "end": 13, "value": "indian", "entity": "cuisine"}
                ],
            },
            {"text": "bye", "intent": "goodbye"},
            {"text": "see you later", "intent": "goodbye"},
        ]
    }
}


@pytest.fixture(scope="module")
def cluster(moodbot_model, redis_url, tmp_path_factory):
    """Two instances on one Redis; the first also runs a trainer process."""
    prefix = f"models:{uuid.uuid4().hex[:8]}:"
    logs = tmp_path_factory.mktemp("logs")
    trained = _servers(
        moodbot_model, redis_url, prefix, logs, 1, nlu=True, extra=("--trainer",)
    )
    plain = _servers(moodbot_model, redis_url, prefix, logs, 1, nlu=True)
    first, second = next(trained), next(plain)
    yield [first[0].url, second[0].url]
    for gen in (plain, trained):
        gen.close()


def train(url: str, name: str, body, **params) -> requests.Response:
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return requests.post(
        f"{url}/train", params={"name": name, **params}, data=data, timeout=120
    )


def test_train_nlu_json_then_parse_with_it(cluster):
    r = train(cluster[0], "demo", NLU)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == "demo" and body["fingerprint"] and body["parts"] == ["nlu"]
    assert body["figures"]["examples"] == 6 and body["figures"]["train_seconds"] >= 0
    for url in cluster:  # every instance can use it at once
        parsed = requests.get(
            f"{url}/parse", params={"q": "show me indian food", "model": "demo"}
        )
        assert parsed.headers["X-Model-Fingerprint"] == body["fingerprint"]
        assert parsed.json()["intent"]["name"] == "restaurant_search"
    assert requests.get(f"{cluster[1]}/models/demo").json()["active"] is False


def test_a_bundle_without_waiting_and_as_a_form(cluster):
    bundle = {
        "domain": (MOODBOT / "domain.yml").read_text(),
        "stories": (MOODBOT / "data" / "stories.md").read_text(),
        "nlu": (MOODBOT / "data" / "nlu.md").read_text(),
        "config": "policies:\n  - name: MemoizationPolicy\n",
    }
    r = train(cluster[1], "bundle", bundle, wait="false")
    assert r.status_code == 202
    job = r.json()["job"]
    assert r.headers["Location"] == f"/train/{job}"
    deadline = time.monotonic() + 120
    while (state := requests.get(f"{cluster[0]}/train/{job}").json())["status"] in (
        "queued",
        "running",
    ):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert state["status"] == "succeeded", state
    assert state["result"]["parts"] == ["core", "nlu"]
    form = {k: (f"{k}.txt", v) for k, v in bundle.items()}
    r = requests.post(
        f"{cluster[0]}/train", params={"name": "form"}, files=form, timeout=120
    )
    assert r.status_code == 200, r.text
    assert r.json()["parts"] == ["core", "nlu"]


def test_config_overrides(cluster):
    r = train(cluster[0], "tuned", NLU, epochs="3")
    assert r.status_code == 200, r.text
    pipeline = r.json()["config"]["pipeline"]
    assert [c["epochs"] for c in pipeline if "epochs" in c] and all(
        c["epochs"] == 3 for c in pipeline if "epochs" in c
    )
    bad = train(cluster[0], "tuned", NLU, epochz="3")
    assert bad.status_code == 400 and "valid:" in bad.json()["message"]
    assert "epochs" in bad.json()["message"]


def test_an_override_given_twice_is_refused(cluster):
    """``?epochs=1&epochs=2`` set the parameter to a list of strings, queued a job
    and failed it in the trainer; it is refused where it enters, nothing queued."""
    r = train(cluster[0], "twice", NLU, epochs=["1", "2"])
    assert r.status_code == 400, r.text
    assert r.json()["reason"] == "InvalidParameter", r.json()
    assert "epochs" in r.json()["message"]


def test_bad_training_requests(cluster):
    assert train(cluster[0], "bad name!", NLU).status_code == 400
    assert train(cluster[0], "x", {"rasa_nlu_data": {"nope": []}}).status_code == 400
    assert train(cluster[0], "x", b"\xff\xfe").status_code == 400
    assert train(cluster[0], "x", {"hello": 1}).status_code == 400
    assert requests.get(f"{cluster[0]}/train/nope").status_code == 404


def settled(cluster: list[str], expect: str | None = None, timeout: float = 5.0) -> str:
    """The fingerprint every worker serves, once they all agree (on ``expect``).

    Each request is a new connection, and which worker accepts it is up to the
    kernel: agreement must hold for three rounds in a row, over more than one poll
    interval of the workers, before a worker that was never asked counts as caught
    up."""
    deadline = time.monotonic() + timeout
    agreed = 0
    while agreed < 3:
        seen = {
            requests.get(f"{u}/status").json()["model_fingerprint"] for u in cluster * 6
        }
        agreed = agreed + 1 if len(seen) == 1 and expect in (None, *seen) else 0
        assert time.monotonic() < deadline, seen
        time.sleep(0.15)
    return seen.pop()


def _archive(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def test_upload_refuses_malicious_archives(cluster, tmp_path):
    manifest = json.dumps(
        {"format": 1, "name": "m", "fingerprint": "f", "parts": ["nlu"]}
    ).encode()
    escape = f"dialogd-escape-{uuid.uuid4().hex}.json"
    cases = {
        "traversal": _archive({"model.json": manifest, f"../../{escape}": b"{}"}),
        "absolute": _archive({"model.json": manifest, f"/tmp/{escape}": b"{}"}),
        "no manifest": _archive({"nlu/metadata.json": b"{}"}),
        "garbage": b"this is not a tar file" * 10,
    }
    before = set(Path("/tmp").iterdir())
    for kind, data in cases.items():
        r = requests.post(f"{cluster[0]}/model", params={"name": "evil"}, data=data)
        assert r.status_code == 400, (kind, r.text)
        assert r.json()["reason"] == "InvalidModel", kind
    assert not (Path("/tmp") / escape).exists()
    leftovers = {
        p for p in set(Path("/tmp").iterdir()) - before if p.name.startswith("dialogd-")
    }
    assert leftovers == set()
    assert requests.get(f"{cluster[0]}/models/evil").status_code == 404
    missing = requests.post(
        f"{cluster[0]}/model", params={"name": "evil"}, files={"other": ("x", b"y")}
    )
    assert missing.status_code == 400


def test_upload_a_trained_archive_and_activate_it_everywhere(cluster, tmp_path):
    assert train(cluster[0], "orig", NLU).status_code == 200
    # what a user would upload: an archive made by `pack` from a trained model
    nlu_dir = tmp_path / "m" / "nlu"
    nlu_dir.parent.mkdir()
    NLUPipeline().fit(load_nlu_data(MOODBOT / "data" / "nlu.md")).save(nlu_dir)
    data = pack(tmp_path / "m", name="uploaded", fingerprint="up-1")
    r = requests.post(
        f"{cluster[1]}/model",
        params={"name": "uploaded"},
        files={"model": ("model.tar.gz", data)},
    )
    assert r.status_code == 201, r.text
    assert requests.put(f"{cluster[0]}/model", json={"name": "uploaded"}).ok
    assert settled(cluster, "up-1") == "up-1"  # every worker of both instances
    assert requests.delete(f"{cluster[0]}/models/uploaded").status_code == 409
    assert requests.put(f"{cluster[0]}/model", json={"name": "orig"}).ok
    assert requests.delete(f"{cluster[1]}/models/uploaded").status_code == 204
    assert requests.get(f"{cluster[1]}/models/uploaded").status_code == 404


def test_switching_under_load_fails_no_request(cluster):
    a = train(cluster[0], "switch-a", NLU).json()["fingerprint"]
    b = train(
        cluster[0],
        "switch-b",
        {
            "rasa_nlu_data": {
                "common_examples": [
                    *NLU["rasa_nlu_data"]["common_examples"],
                    {"text": "good morning", "intent": "greet"},
                ]
            }
        },
    ).json()["fingerprint"]
    initial = settled(cluster)
    stop = threading.Event()
    seen: Counter = Counter()
    errors: list[str] = []

    def load(url: str) -> None:
        session = requests.Session()
        i = 0
        while not stop.is_set():
            i += 1
            r = session.post(
                f"{url}/conversations/switch-{i % 7}/parse",
                json={"query": "hello there"},
            )
            if r.status_code != 200:
                errors.append(r.text)
            seen[r.headers.get("X-Model-Fingerprint")] += 1

    threads = [threading.Thread(target=load, args=(u,)) for u in cluster * 2]
    for t in threads:
        t.start()
    for name in ["switch-a", "switch-b"] * 3:
        assert requests.put(f"{cluster[0]}/model", json={"name": name}).ok
        time.sleep(0.6)
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    # every response names the one model it came from
    assert set(seen) <= {initial, a, b} and seen[a] and seen[b]
    final = {
        requests.post(f"{u}/conversations/x/parse", json={"query": "hi"}).headers[
            "X-Model-Fingerprint"
        ]
        for u in cluster * 3
    }
    assert final == {b}
