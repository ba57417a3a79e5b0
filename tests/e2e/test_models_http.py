"""Training and switching models over HTTP, on two instances and a trainer process."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
import threading
import time
import uuid
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.data import RASA_EXAMPLES
from tests.e2e.conftest import _servers
from trackerstore.registry import ModelRegistry
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
    registry = ModelRegistry(redis_url, prefix=prefix)
    deadline = time.monotonic() + 60
    while not registry.trainers_alive():  # its first heartbeat
        assert time.monotonic() < deadline, "the trainer never started"
        time.sleep(0.1)
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
    fingerprint = r.json()["fingerprint"]  # the content's, not the label "up-1"
    assert requests.put(f"{cluster[0]}/model", json={"name": "uploaded"}).ok
    assert settled(cluster, fingerprint) == fingerprint  # every worker of both
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


def test_models_never_change_and_the_startup_model_is_one_switch_away(
    cluster, moodbot_model, tmp_path
):
    r = train(cluster[0], "fixed", NLU)
    assert r.status_code == 200, r.text
    fixed = r.json()["fingerprint"]
    assert requests.put(f"{cluster[0]}/model", json={"name": "fixed"}).ok
    assert settled(cluster, fixed) == fixed
    # neither training nor an upload may replace a registered (here: active) model
    again = train(cluster[0], "fixed", NLU, epochs="2")
    assert again.status_code == 409 and again.json()["reason"] == "ModelExists"
    shutil.copytree(moodbot_model / "nlu", tmp_path / "m" / "nlu")
    archive = pack(tmp_path / "m", name="fixed")
    up = requests.post(f"{cluster[1]}/model", params={"name": "fixed"}, data=archive)
    assert up.status_code == 409, up.text
    assert requests.get(f"{cluster[1]}/models/fixed").json()["fingerprint"] == fixed
    startup = requests.get(f"{cluster[0]}/models/default").json()
    assert startup["startup"] is True
    for name in ("default",):  # the startup model's name is taken too
        assert train(cluster[0], name, NLU).status_code == 409
        assert requests.delete(f"{cluster[0]}/models/{name}").status_code == 409
    assert requests.put(f"{cluster[1]}/model", json={"name": "default"}).ok
    assert settled(cluster, startup["fingerprint"]) == startup["fingerprint"]


def test_multipart_takes_only_its_parts_within_its_limit(cluster):
    r = requests.post(
        f"{cluster[0]}/train",
        params={"name": "form-junk"},
        files={"nlu": ("nlu.json", json.dumps(NLU)), "junk": ("x", b"y" * 100_000)},
    )
    assert r.status_code == 400 and "junk" in r.json()["message"], r.text
    twice = requests.post(
        f"{cluster[0]}/model",
        params={"name": "form-twice"},
        files=[("model", ("a", b"1")), ("model", ("b", b"2"))],
    )
    assert twice.status_code == 400 and "repeated" in twice.json()["message"]
    # two parts of 33 MiB: each under the 64 MiB limit, not both
    big = b"#" * (33 << 20)
    r = requests.post(
        f"{cluster[0]}/train",
        params={"name": "form-big"},
        files={"nlu": ("nlu.md", big), "config": ("config.yml", big)},
    )
    assert r.status_code == 413, r.text[:200]


def _halved(npz: Path) -> None:
    with np.load(npz) as arrays:
        loaded = {k: arrays[k] for k in arrays.files}
    big = max(loaded, key=lambda k: loaded[k].size)
    loaded[big] = loaded[big][: loaded[big].shape[0] // 2]
    np.savez(npz, **loaded)


def test_an_upload_that_cannot_answer_is_refused(cluster, moodbot_model, tmp_path):
    """Weights of the wrong shapes: refused at upload, not a 500 on every parse."""
    shutil.copytree(moodbot_model / "nlu", tmp_path / "m" / "nlu")
    _halved(tmp_path / "m" / "nlu" / "arrays.npz")
    r = requests.post(
        f"{cluster[0]}/model",
        params={"name": "misshapen"},
        data=pack(tmp_path / "m", name="misshapen"),
    )
    assert r.status_code == 400 and r.json()["reason"] == "InvalidModel", r.text
    assert requests.get(f"{cluster[0]}/models/misshapen").status_code == 404


def _npz_bomb() -> bytes:
    """An .npz of one 1 GiB float32 array of zeros, deflated to about 1 MB."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (1 << 28,)}
    )
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as npz,
        npz.open("x.npy", "w", force_zip64=True) as member,
    ):
        member.write(header.getvalue())
        zeros = bytes(1 << 20)
        for _ in range(1024):
            member.write(zeros)
    return buffer.getvalue()


def test_bombs_are_refused_at_upload(cluster, moodbot_model):
    nlu = {f"nlu/{p.name}": p.read_bytes() for p in (moodbot_model / "nlu").iterdir()}
    manifest = json.dumps(
        {"format": 1, "name": "b", "fingerprint": "f", "parts": ["nlu"]}
    ).encode()
    npz_bomb = _archive({"model.json": manifest, **nlu, "nlu/arrays.npz": _npz_bomb()})
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("nlu/big.npz")
        info.size = 500 << 20
        tar.addfile(info, io.BytesIO(bytes(500 << 20)))
    gzip_bomb = gzip.compress(raw.getvalue(), compresslevel=9)
    del raw
    for kind, data in {"npz": npz_bomb, "gzip": gzip_bomb}.items():
        r = requests.post(f"{cluster[0]}/model", params={"name": "bomb"}, data=data)
        assert r.status_code == 400 and "over" in r.json()["message"], (kind, r.text)
    assert requests.get(f"{cluster[0]}/models/bomb").status_code == 404


@pytest.fixture(scope="module")
def lonely(moodbot_model, redis_url, tmp_path_factory):
    """One instance on its own keys, and no trainer anywhere."""
    prefix = f"lonely:{uuid.uuid4().hex[:8]}:"
    logs = tmp_path_factory.mktemp("logs")
    servers = _servers(moodbot_model, redis_url, prefix, logs, 1, nlu=True)
    yield next(servers)[0].url
    servers.close()


def test_training_without_a_trainer_is_refused_at_once(lonely):
    """Four waiting /train requests used to hold every worker thread for up to
    15 minutes; now each is a 503 at once and nothing is queued."""
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(
                lambda i: requests.post(
                    f"{lonely}/train", params={"name": f"t{i}"}, json=NLU, timeout=60
                ),
                range(4),
            )
        )
    assert [r.status_code for r in answers] == [503] * 4
    assert answers[0].json()["reason"] == "NoTrainer"
    assert requests.get(f"{lonely}/status", timeout=10).ok
