"""deploy/'s Prometheus and Grafana files and compose's ``metrics`` profile: the
scrape config is valid for Prometheus (``promtool``, when installed), the dashboard
is a Grafana dashboard whose every query parses and names metrics that dialogd
exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from api.metrics import Metrics
from tests.data import ROOT

DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "dialogd.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "dialogd.yml"
SCRAPE = DEPLOY / "prometheus.yml"
#: PromQL words that are not metric names
PROMQL = {
    "sum",
    "max",
    "by",
    "rate",
    "increase",
    "histogram_quantile",
    "le",
    "route",
    "phase",
    "status",
    "reason",
    "name",
    "fingerprint",
    "job",
    "dialogd",
}


def exported_names(monkeypatch) -> set[str]:
    """The sample names a server's /metrics has once it answered a turn."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    metrics = Metrics()
    metrics.request("/conversations/{cid}/parse", "POST", 200, 0.002, "Conflict")
    metrics.phase("nlu", 0.001)
    metrics.conflict()
    metrics.serving("default", "f")
    text = metrics.render().decode()
    names = {line.split("{")[0].split()[0] for line in text.splitlines() if line}
    return {n for n in names if not n.startswith("#")} | {
        # scrape-time gauges of the training registry (absent without one)
        "dialogd_train_jobs_queued",
        "dialogd_trainers_alive",
        # Prometheus's own, per target
        "up",
    }


def queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]


def test_the_dashboard_is_a_grafana_dashboard() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int)
    uid = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]["uid"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["type"] in {"timeseries", "stat"}
        assert panel["datasource"]["uid"] == uid
        assert panel["targets"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid
            assert target["refId"] and target["expr"]


def test_every_query_names_exported_metrics(monkeypatch) -> None:
    exported = exported_names(monkeypatch)
    for title, expr in queries():
        # drop strings and label matchers' values, keep the identifiers
        bare = re.sub(r'"[^"]*"', "", expr)
        bare = re.sub(r"\[[^\]]*\]", "", bare)
        words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", bare)) - PROMQL
        assert words <= exported, f"{title}: {sorted(words - exported)} not exported"


@pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool is not installed (apt-get install prometheus): queries and "
    "scrape config not checked by Prometheus",
)
def test_promtool_accepts_the_scrape_config_and_every_query(tmp_path) -> None:
    result = subprocess.run(
        ["promtool", "check", "config", str(SCRAPE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query{i}", "expr": expr}
                    for i, (_, expr) in enumerate(queries())
                ],
            }
        ]
    }
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run(
        ["promtool", "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_scrape_config_reaches_every_replica() -> None:
    config = yaml.safe_load(SCRAPE.read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "dialogd")
    assert job["metrics_path"] == "/metrics"
    sd = job["dns_sd_configs"][0]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    command = compose["services"]["dialogd"]["command"]
    assert sd["names"] == ["dialogd"]
    assert str(sd["port"]) == command[command.index("--port") + 1]


def test_the_metrics_profile_is_opt_in() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["metrics"]
    mounts = " ".join(
        services["prometheus"]["volumes"] + services["grafana"]["volumes"]
    )
    for path in (SCRAPE, DASHBOARD.parent, DATASOURCES.parent.parent):
        assert "./" + str(path.relative_to(ROOT)) in mounts
    providers = yaml.safe_load(PROVIDERS.read_text())["providers"]
    assert providers[0]["options"]["path"] in mounts
    for name, service in services.items():
        if name not in ("prometheus", "grafana"):
            assert "profiles" not in service, name
