"""docker-compose.yml: valid for docker-compose itself (``docker-compose config``,
which needs no Docker engine), and the topology that `docker compose up` needs:
Redis with AOF and a healthcheck, a one-shot training service, three worker replicas
that wait for both, nginx on 5005 pointing at the workers.

The structural checks run everywhere; ``docker-compose config`` runs where the
``docker-compose`` apt package (or the compose plugin of the docker CLI) is installed.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.data import ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"
GUNICORN_GRACEFUL_TIMEOUT = 20  # api/serving/settings.py's default
DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?$")


def load() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def seconds(duration: str) -> int:
    match = DURATION.match(str(duration))
    if not match or not any(match.groups()):
        raise ValueError(f"not a duration: {duration!r}")
    hours, minutes, secs = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + secs


def _volume_parts(volume: Any) -> tuple[str, str, str]:
    """(source, target, mode) of a short or long volume entry."""
    if isinstance(volume, dict):
        mode = "ro" if volume.get("read_only") else "rw"
        return volume.get("source", ""), volume.get("target", ""), mode
    parts = str(volume).split(":")
    mode = parts[2] if len(parts) > 2 else "rw"
    return parts[0], parts[1] if len(parts) > 1 else "", mode


def _healthcheck_text(service: dict) -> str:
    test = (service.get("healthcheck") or {}).get("test") or []
    return " ".join(test) if isinstance(test, list) else str(test)


def _command(service: dict) -> list[str]:
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else [str(c) for c in command]


def _check_volumes(config: dict) -> list[str]:
    out = []
    declared = set(config.get("volumes") or {})
    for name, service in (config.get("services") or {}).items():
        for volume in service.get("volumes") or []:
            source, target, _ = _volume_parts(volume)
            if source.startswith((".", "/")):
                if not (ROOT / source).exists():
                    out.append(f"{name}: bind mount {source} does not exist")
            elif source not in declared:
                out.append(
                    f"{name}: volume {source!r} is not declared at the top level"
                )
            if not target.startswith("/"):
                out.append(f"{name}: volume target {target!r} is not absolute")
    return out


def _check_redis(redis: dict) -> list[str]:
    out = []
    if not str(redis.get("image", "")).startswith("redis:7"):
        out.append("redis: image must be redis:7")
    command = " ".join(_command(redis))
    conf_text = ""
    for volume in redis.get("volumes") or []:
        source, target, _ = _volume_parts(volume)
        if target in command and (ROOT / source).is_file():
            conf_text = (ROOT / source).read_text()
    aof = "--appendonly yes" in command or re.search(
        r"^appendonly\s+yes\b", conf_text, re.MULTILINE
    )
    if not aof:
        out.append("redis: AOF persistence (appendonly yes) is off")
    if not any(_volume_parts(v)[1] == "/data" for v in redis.get("volumes") or []):
        out.append("redis: /data (the AOF) is not on a volume")
    if "redis-cli" not in _healthcheck_text(redis) or "ping" not in _healthcheck_text(
        redis
    ):
        out.append("redis: healthcheck must be redis-cli ping")
    return out


def _check_train(train: dict, workers: dict) -> list[str]:
    out = []
    script = " ".join(_command(train))
    if "dialogd train" not in script or "examples/moodbot" not in script:
        out.append("train: must run dialogd train on examples/moodbot")
    if "metadata.json" not in script:
        out.append("train: must skip training when a model exists")
    if "deploy/Dockerfile" not in str((train.get("build") or {}).get("dockerfile")):
        out.append("train: must build from deploy/Dockerfile")
    if train.get("image") != workers.get("image"):
        out.append("train: must use the workers' image")
    if str(train.get("restart", "no")) != "no":
        out.append("train: a one-shot service must not restart")
    mounts = {_volume_parts(v)[1]: _volume_parts(v) for v in train.get("volumes") or []}
    if "/models" not in mounts or mounts["/models"][2] == "ro":
        out.append("train: must write /models")
    return out


def _check_workers(workers: dict, volumes_of_train: list) -> list[str]:
    out = []
    depends = workers.get("depends_on") or {}
    if not isinstance(depends, dict):
        return ["dialogd: depends_on needs conditions (long form)"]
    if (depends.get("redis") or {}).get("condition") != "service_healthy":
        out.append("dialogd: must wait for redis to be healthy")
    if (depends.get("train") or {}).get("condition") != (
        "service_completed_successfully"
    ):
        out.append("dialogd: must wait for train to complete successfully")
    if ((workers.get("deploy") or {}).get("replicas") or 1) < 3:
        out.append("dialogd: deploy.replicas must be 3")
    if workers.get("ports") or workers.get("container_name"):
        out.append("dialogd: replicas cannot publish ports or have a container_name")
    if "/status" not in _healthcheck_text(workers):
        out.append("dialogd: healthcheck must ask /status")
    command = _command(workers)
    if "serve" not in command or "redis://redis:6379/0" not in " ".join(command):
        out.append("dialogd: must serve with --redis-url redis://redis:6379/0")
    models = [_volume_parts(v) for v in workers.get("volumes") or []]
    shared = {_volume_parts(v)[0] for v in volumes_of_train}
    if not any(t == "/models" and m == "ro" and s in shared for s, t, m in models):
        out.append("dialogd: must mount the trained models volume read-only")
    grace = seconds(workers.get("stop_grace_period", "10s"))
    if grace <= GUNICORN_GRACEFUL_TIMEOUT:
        out.append(
            f"dialogd: stop_grace_period ({grace}s) must exceed gunicorn's graceful "
            f"timeout ({GUNICORN_GRACEFUL_TIMEOUT}s)"
        )
    return out


def _check_nginx(nginx: dict, workers: dict) -> list[str]:
    out = []
    if not str(nginx.get("image", "")).startswith("nginx:1.27"):
        out.append("nginx: image must be nginx:1.27 (upstream `resolve`)")
    ports = [str(p) for p in nginx.get("ports") or []]
    if not any(p.endswith("5005:5005") for p in ports):
        out.append("nginx: must publish 5005")
    conf = None
    for volume in nginx.get("volumes") or []:
        source, target, _ = _volume_parts(volume)
        if target == "/etc/nginx/nginx.conf":
            conf = ROOT / source
    if conf is None or not conf.is_file():
        out.append("nginx: must mount deploy/nginx.conf as /etc/nginx/nginx.conf")
    else:
        command = _command(workers)
        port = command[command.index("--port") + 1] if "--port" in command else "5005"
        if not re.search(rf"^\s*server\s+dialogd:{port}\b", conf.read_text(), re.M):
            out.append(f"nginx: nginx.conf must balance over dialogd:{port}")
    if (nginx.get("depends_on") or {}).get("dialogd", {}).get(
        "condition"
    ) != "service_healthy":
        out.append("nginx: must wait for healthy workers")
    return out


def problems(config: dict) -> list[str]:
    services = config.get("services") or {}
    missing = {"redis", "train", "dialogd", "trainer", "nginx"} - set(services)
    if missing:
        return [f"missing services: {sorted(missing)}"]
    out = _check_volumes(config)
    out += _check_redis(services["redis"])
    out += _check_train(services["train"], services["dialogd"])
    out += _check_workers(services["dialogd"], services["train"].get("volumes") or [])
    out += _check_nginx(services["nginx"], services["dialogd"])
    trainer = services["trainer"]
    if "trainer" not in (trainer.get("command") or []):
        out.append("trainer: must run `dialogd trainer`")
    if (trainer.get("depends_on") or {}).get("redis", {}).get(
        "condition"
    ) != "service_healthy":
        out.append("trainer: must wait for a healthy Redis")
    for name, service in services.items():
        if name not in ("train", "trainer") and "healthcheck" not in service:
            out.append(f"{name}: no healthcheck")
    return out


def _compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, timeout=30
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    return None


def test_docker_compose_config_validates() -> None:
    command = _compose_command()
    if command is None:
        pytest.skip(
            "neither docker-compose (apt-get install docker-compose) nor the docker "
            "compose plugin is installed: docker-compose.yml not validated by compose"
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    result = subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)
    # NOTE: compose v1 renders the services of every profile, v2 only the active
    # ones: those of the opt-in `metrics` profile are told apart by their profile.
    services = rendered["services"]
    assert {n for n, s in services.items() if not s.get("profiles")} == {
        "redis",
        "train",
        "dialogd",
        "trainer",
        "nginx",
    }
    assert {n for n, s in services.items() if s.get("profiles")} <= {
        "prometheus",
        "grafana",
    }
    assert rendered["services"]["dialogd"]["deploy"]["replicas"] == 3


def test_the_topology_has_no_problems() -> None:
    assert problems(load()) == []


def _service(config: dict, name: str) -> dict:
    return config["services"][name]


MUTATIONS: list[tuple[str, Any, str]] = [
    ("no nginx", lambda c: c["services"].pop("nginx"), "missing services"),
    (
        "AOF off",
        lambda c: _service(c, "redis").update(command=["redis-server"]),
        "AOF persistence",
    ),
    (
        "no Redis healthcheck",
        lambda c: _service(c, "redis").pop("healthcheck"),
        "redis-cli ping",
    ),
    (
        "workers start before training ends",
        lambda c: _service(c, "dialogd")["depends_on"]["train"].update(
            condition="service_started"
        ),
        "complete successfully",
    ),
    (
        "workers do not wait for Redis",
        lambda c: _service(c, "dialogd")["depends_on"].pop("redis"),
        "redis to be healthy",
    ),
    (
        "one replica",
        lambda c: _service(c, "dialogd")["deploy"].update(replicas=1),
        "replicas must be 3",
    ),
    (
        "a published worker port",
        lambda c: _service(c, "dialogd").update(ports=["5005:5005"]),
        "cannot publish ports",
    ),
    (
        "models writable by the workers",
        lambda c: _service(c, "dialogd").update(volumes=["models:/models"]),
        "read-only",
    ),
    (
        "an undeclared volume",
        lambda c: c["volumes"].pop("redis-data"),
        "not declared",
    ),
    (
        "a grace period shorter than gunicorn's",
        lambda c: _service(c, "dialogd").update(stop_grace_period="10s"),
        "stop_grace_period",
    ),
    (
        "training every time",
        lambda c: _service(c, "train").update(
            command=["dialogd train --domain examples/moodbot/domain.yml"]
        ),
        "skip training",
    ),
    (
        "a missing nginx.conf",
        lambda c: _service(c, "nginx").update(
            volumes=["./deploy/missing.conf:/etc/nginx/nginx.conf:ro"]
        ),
        "does not exist",
    ),
    (
        "nginx not on 5005",
        lambda c: _service(c, "nginx").update(ports=["8080:5005"]),
        "publish 5005",
    ),
    (
        "workers on another port than nginx expects",
        lambda c: _service(c, "dialogd")["command"].__setitem__(6, "6000"),
        "dialogd:6000",
    ),
    (
        "no worker healthcheck",
        lambda c: _service(c, "dialogd").pop("healthcheck"),
        "dialogd: no healthcheck",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [pytest.param(m, e, id=name) for name, m, e in MUTATIONS],
)
def test_the_checker_notices(mutate: Any, expected: str) -> None:
    config = copy.deepcopy(load())
    mutate(config)
    found = problems(config)
    assert any(expected in p for p in found), found


def test_durations() -> None:
    assert seconds("30s") == 30
    assert seconds("1m30s") == 90
    assert seconds("1h") == 3600
    with pytest.raises(ValueError):
        seconds("30")


def test_the_train_script_is_safe_to_rerun(tmp_path) -> None:
    """Run the train service's script with the paths moved into tmp_path and a fake
    dialogd: the first run trains and moves the model in place, the second skips."""
    script = " ".join(_command(_service(load(), "train")))
    models = tmp_path / "models"
    models.mkdir()
    script = script.replace("/models", str(models))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    fake = bin_dir / "dialogd"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {calls}\n'
        'while [ $# -gt 0 ]; do [ "$1" = --out ] && out=$2; shift; done\n'
        'mkdir -p "$out/core" "$out/nlu"\n'
        'echo {} > "$out/core/metadata.json"; echo {} > "$out/nlu/metadata.json"\n'
    )
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    for _ in range(2):
        done = subprocess.run(
            ["/bin/sh", "-ec", script], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    assert len(calls.read_text().splitlines()) == 1, "trained twice"
    assert sorted(p.name for p in models.iterdir()) == ["core", "nlu"]
    assert (models / "core" / "metadata.json").is_file()
