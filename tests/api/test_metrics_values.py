"""``api.metrics`` in one process: what a request, a turn and a model switch count."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.metrics import Metrics


def samples(metrics: Metrics) -> dict[tuple, float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
    }


@pytest.fixture
def metrics(monkeypatch) -> Metrics:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    return Metrics()


def test_a_new_model_is_a_switch(metrics):
    metrics.serving("a", "1")
    metrics.serving("a", "1")
    got = samples(metrics)
    assert got[("dialogd_model_switches_total", ())] == 0
    metrics.serving("b", "2")
    got = samples(metrics)
    assert got[("dialogd_model_switches_total", ())] == 1
    assert got[("dialogd_model_active", (("fingerprint", "1"), ("name", "a")))] == 0
    assert got[("dialogd_model_active", (("fingerprint", "2"), ("name", "b")))] == 1


def test_a_method_a_client_made_up_is_other(metrics):
    metrics.request("/x", "BREW", 405, 0.001, "MethodNotAllowed")
    got = samples(metrics)
    key = (("method", "other"), ("route", "/x"), ("status", "405"))
    assert got[("dialogd_http_requests_total", key)] == 1
    assert got[("dialogd_errors_total", (("reason", "MethodNotAllowed"),))] == 1
