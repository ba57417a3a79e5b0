"""deploy/k8s: every manifest parses, and nothing in it would be rejected by an API
server or break at run time (selectors, ports, probes, quantities, references between
objects, the shutdown timings).

``problems`` is the checker; the mutation tests at the end break one thing at a time in
a copy of the manifests and make sure the checker notices, so none of its checks can
silently pass."""

from __future__ import annotations

import copy
import re
from collections import defaultdict
from typing import Any

import falcon.testing
import pytest
import yaml

from api.app import create_app
from tests.data import ROOT

K8S = ROOT / "deploy" / "k8s"
MANIFESTS = sorted(K8S.glob("*.yaml"))

KINDS = {
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("batch/v1", "Job"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
}
KUSTOMIZATION = ("kustomize.config.k8s.io/v1beta1", "Kustomization")

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
PORT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$"
)
SUFFIXES = {
    "": 1.0,
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}
# The app's health endpoints (api/app.py): liveness must not depend on Redis.
READINESS_PATH = "/status"
LIVENESS_PATHS = {"/", "/version"}
# gunicorn's default graceful_timeout (api/serving/settings.py), when the ConfigMap
# does not set DIALOGD_GRACEFUL_TIMEOUT.
DEFAULT_GRACEFUL_TIMEOUT = 20


def load_manifests() -> list[dict[str, Any]]:
    docs = []
    for path in MANIFESTS:
        if path.name == "kustomization.yaml":
            continue
        docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return docs


def quantity(value: Any) -> float:
    """A Kubernetes resource quantity as a number; ValueError if malformed."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"not a quantity: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    match = QUANTITY.match(str(value))
    if match is None:
        raise ValueError(f"not a quantity: {value!r}")
    suffix = match["suffix"] or ""
    if suffix[:1] in ("e", "E"):
        return float(match["number"] + suffix)
    return float(match["number"]) * SUFFIXES[suffix]


# --- checks of one object -------------------------------------------------------------


def _check_labels(labels: Any, where: str) -> list[str]:
    out = []
    if labels is None:
        return out
    if not isinstance(labels, dict):
        return [f"{where}: labels must be a mapping"]
    for key, value in labels.items():
        prefix, _, name = str(key).rpartition("/")
        if prefix and not DNS1123_SUBDOMAIN.match(prefix):
            out.append(f"{where}: label key {key!r} has an invalid prefix")
        if not (LABEL_NAME.match(name) and len(name) <= 63):
            out.append(f"{where}: invalid label key {key!r}")
        if not isinstance(value, str):
            out.append(f"{where}: label {key!r} must be a string, not {value!r}")
        elif not (LABEL_VALUE.match(value) and len(value) <= 63):
            out.append(f"{where}: invalid label value {value!r}")
    return out


def _check_name(doc: dict, where: str) -> list[str]:
    name = (doc.get("metadata") or {}).get("name")
    if not isinstance(name, str):
        return [f"{where}: metadata.name is missing"]
    if doc["kind"] == "Service":
        if not (DNS1035_LABEL.match(name) and len(name) <= 63):
            return [f"{where}: a Service name must be a DNS-1035 label: {name!r}"]
    elif not (DNS1123_SUBDOMAIN.match(name) and len(name) <= 253):
        return [f"{where}: metadata.name is not a DNS-1123 subdomain: {name!r}"]
    return []


def _check_resources(container: dict, where: str) -> list[str]:
    resources = container.get("resources") or {}
    requests = resources.get("requests") or {}
    limits = resources.get("limits") or {}
    out = []
    if not requests or not limits:
        out.append(f"{where}: resources.requests and resources.limits are required")
    parsed: dict[str, dict[str, float]] = {"requests": {}, "limits": {}}
    for section, values in (("requests", requests), ("limits", limits)):
        for resource, value in values.items():
            try:
                parsed[section][resource] = quantity(value)
            except ValueError:
                out.append(
                    f"{where}: {section}.{resource}: malformed quantity {value!r}"
                )
    for resource, request in parsed["requests"].items():
        limit = parsed["limits"].get(resource)
        if limit is not None and request > limit:
            out.append(f"{where}: {resource} request exceeds its limit")
    return out


def _check_probe(probe: dict, kind: str, ports: dict, where: str) -> list[str]:
    out = []
    http = probe.get("httpGet")
    if http is None:
        return [f"{where}: {kind} must be an httpGet probe"]
    port = http.get("port")
    if isinstance(port, str):
        if port not in ports:
            out.append(f"{where}: {kind} probe port {port!r} is not a container port")
    elif port not in ports.values():
        out.append(f"{where}: {kind} probe port {port!r} is not a container port")
    path = http.get("path", "")
    if not str(path).startswith("/"):
        out.append(f"{where}: {kind} path must start with '/': {path!r}")
    for field in ("periodSeconds", "timeoutSeconds", "failureThreshold"):
        value = probe.get(field, 1)
        if not isinstance(value, int) or value < 1:
            out.append(f"{where}: {kind}.{field} must be a positive integer")
    return out


def _check_env(container: dict, names: set[str], where: str) -> list[str]:
    out = []
    seen = set()
    for var in container.get("env") or []:
        name = var.get("name", "")
        if not ENV_NAME.match(name):
            out.append(f"{where}: invalid environment variable name {name!r}")
        if name in seen:
            out.append(f"{where}: environment variable {name} is set twice")
        seen.add(name)
        source = var.get("valueFrom")
        if source is None:
            if not isinstance(var.get("value", ""), str):
                out.append(f"{where}: env {name} value must be a string")
            continue
        if len(source) != 1:
            out.append(f"{where}: env {name} valueFrom needs exactly one source")
        field = source.get("resourceFieldRef")
        if field is not None and field.get("containerName", "") not in names:
            out.append(f"{where}: env {name} resourceFieldRef names no container")
    return out


def _check_ports(container: dict, where: str) -> tuple[list[str], dict[str, int]]:
    out = []
    ports: dict[str, int] = {}
    for port in container.get("ports") or []:
        number = port.get("containerPort")
        if not isinstance(number, int) or not 1 <= number <= 65535:
            out.append(f"{where}: containerPort {number!r} is not in 1-65535")
        port_name = port.get("name")
        if port_name is None:
            ports[f"#{number}"] = number
        else:
            valid = (
                PORT_NAME.match(port_name)
                and len(port_name) <= 15
                and "--" not in port_name
                and re.search("[a-z]", port_name)
            )
            if not valid:
                out.append(f"{where}: invalid port name {port_name!r}")
            if port_name in ports:
                out.append(f"{where}: port name {port_name!r} is used twice")
            ports[port_name] = number
        if port.get("protocol", "TCP") not in ("TCP", "UDP", "SCTP"):
            out.append(f"{where}: invalid protocol {port.get('protocol')!r}")
    return out, ports


def _check_mounts_and_security(container: dict, volumes: set, where: str) -> list[str]:
    out = []
    for mount in container.get("volumeMounts") or []:
        if mount.get("name") not in volumes:
            out.append(f"{where}: volumeMount {mount.get('name')!r} names no volume")
        if not str(mount.get("mountPath", "")).startswith("/"):
            out.append(f"{where}: mountPath must be absolute")
    context = container.get("securityContext") or {}
    if context.get("readOnlyRootFilesystem") is not True:
        out.append(f"{where}: readOnlyRootFilesystem must be true")
    if context.get("allowPrivilegeEscalation") is not False:
        out.append(f"{where}: allowPrivilegeEscalation must be false")
    mounts = {m.get("mountPath") for m in container.get("volumeMounts") or []}
    if "/tmp" not in mounts:
        out.append(f"{where}: a read-only root needs a writable /tmp volume")
    return out


def _check_container(container: dict, volumes: set, names: set, where: str) -> list:
    out = []
    name = container.get("name", "")
    where = f"{where} container {name!r}"
    if not (DNS1123_LABEL.match(name) and len(name) <= 63):
        out.append(f"{where}: container name is not a DNS-1123 label")
    if not container.get("image"):
        out.append(f"{where}: no image")
    port_problems, ports = _check_ports(container, where)
    out += port_problems
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        if kind in container:
            out += _check_probe(container[kind], kind, ports, where)
    out += _check_resources(container, where)
    out += _check_env(container, names, where)
    out += _check_mounts_and_security(container, volumes, where)
    return out


def _check_serving_container(container: dict, where: str) -> list[str]:
    """dialogd's own rules for the serving container."""
    out = []
    where = f"{where} container {container.get('name')!r}"
    readiness = ((container.get("readinessProbe") or {}).get("httpGet")) or {}
    liveness = ((container.get("livenessProbe") or {}).get("httpGet")) or {}
    if readiness.get("path") != READINESS_PATH:
        out.append(f"{where}: readinessProbe must GET {READINESS_PATH}")
    if liveness.get("path") not in LIVENESS_PATHS:
        out.append(
            f"{where}: livenessProbe must GET one of {sorted(LIVENESS_PATHS)} "
            "(not /status: a Redis outage would restart every pod)"
        )
    if not ((container.get("lifecycle") or {}).get("preStop")):
        out.append(f"{where}: a preStop drain is required")
    return out


def check_deployment(doc: dict, where: str) -> list[str]:
    out = []
    spec = doc.get("spec") or {}
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    out += _check_labels(labels, f"{where} template")
    if not selector:
        out.append(f"{where}: spec.selector.matchLabels is required")
    elif any(labels.get(k) != v for k, v in selector.items()):
        out.append(f"{where}: spec.selector does not match the template's labels")
    pod = template.get("spec") or {}
    volumes = [v.get("name") for v in pod.get("volumes") or []]
    if len(volumes) != len(set(volumes)):
        out.append(f"{where}: volume names must be unique")
    containers = pod.get("containers") or []
    init = pod.get("initContainers") or []
    if not containers:
        out.append(f"{where}: no containers")
    names = [c.get("name") for c in containers + init]
    if len(names) != len(set(names)):
        out.append(f"{where}: container names must be unique")
    for container in containers + init:
        out += _check_container(container, set(volumes), set(names), where)
    # NOTE: the trainer serves no HTTP: no probes, and it is replaced, not rolled.
    serving = labels.get("app.kubernetes.io/component") != "trainer"
    for container in containers if serving else []:
        out += _check_serving_container(container, where)
    strategy = spec.get("strategy") or {}
    rolling = strategy.get("rollingUpdate") or {}
    if serving and (
        strategy.get("type") != "RollingUpdate" or rolling.get("maxUnavailable") != 0
    ):
        out.append(f"{where}: rolling update with maxUnavailable 0 is required")
    security = pod.get("securityContext") or {}
    if security.get("runAsNonRoot") is not True:
        out.append(f"{where}: runAsNonRoot must be true")
    if not isinstance(security.get("runAsUser"), int) or security["runAsUser"] == 0:
        out.append(f"{where}: runAsUser must be a non-zero number")
    if pod.get("enableServiceLinks") is not False:
        out.append(
            f"{where}: enableServiceLinks must be false (the Service 'dialogd' would "
            "set DIALOGD_PORT=tcp://...)"
        )
    grace = pod.get("terminationGracePeriodSeconds")
    if not isinstance(grace, int) or grace < 1:
        out.append(f"{where}: terminationGracePeriodSeconds must be set")
    return out


def check_service(doc: dict, where: str) -> list[str]:
    out = []
    spec = doc.get("spec") or {}
    if spec.get("type", "ClusterIP") not in (
        "ClusterIP",
        "NodePort",
        "LoadBalancer",
        "ExternalName",
    ):
        out.append(f"{where}: invalid type {spec.get('type')!r}")
    if not spec.get("selector"):
        out.append(f"{where}: no selector")
    out += _check_labels(spec.get("selector"), f"{where} selector")
    ports = spec.get("ports") or []
    if not ports:
        out.append(f"{where}: no ports")
    for port in ports:
        number = port.get("port")
        if not isinstance(number, int) or not 1 <= number <= 65535:
            out.append(f"{where}: port {number!r} is not in 1-65535")
        if len(ports) > 1 and not port.get("name"):
            out.append(f"{where}: several ports must all be named")
    return out


def check_hpa(doc: dict, where: str) -> list[str]:
    out = []
    spec = doc.get("spec") or {}
    low, high = spec.get("minReplicas", 1), spec.get("maxReplicas")
    if not isinstance(high, int) or not isinstance(low, int) or not 1 <= low <= high:
        out.append(f"{where}: need 1 <= minReplicas <= maxReplicas")
    target = spec.get("scaleTargetRef") or {}
    if not all(target.get(k) for k in ("apiVersion", "kind", "name")):
        out.append(f"{where}: scaleTargetRef needs apiVersion, kind and name")
    metrics = spec.get("metrics") or []
    if not metrics:
        out.append(f"{where}: no metrics")
    for metric in metrics:
        if metric.get("type") != "Resource":
            continue
        resource = metric.get("resource") or {}
        target_spec = resource.get("target") or {}
        if resource.get("name") not in ("cpu", "memory"):
            out.append(f"{where}: resource metric {resource.get('name')!r}")
        if target_spec.get("type") == "Utilization":
            value = target_spec.get("averageUtilization")
            if not isinstance(value, int) or value < 1:
                out.append(f"{where}: averageUtilization must be a positive integer")
        elif target_spec.get("type") not in ("AverageValue", "Value"):
            out.append(f"{where}: invalid metric target type")
    for direction in ("scaleUp", "scaleDown"):
        rules = ((spec.get("behavior") or {}).get(direction)) or {}
        for policy in rules.get("policies") or []:
            if policy.get("type") not in ("Pods", "Percent"):
                out.append(f"{where}: {direction} policy type {policy.get('type')!r}")
            if not isinstance(policy.get("periodSeconds"), int):
                out.append(f"{where}: {direction} policy needs periodSeconds")
    return out


def check_pdb(doc: dict, where: str) -> list[str]:
    spec = doc.get("spec") or {}
    out = []
    if ("minAvailable" in spec) == ("maxUnavailable" in spec):
        out.append(f"{where}: exactly one of minAvailable and maxUnavailable")
    if not ((spec.get("selector") or {}).get("matchLabels")):
        out.append(f"{where}: selector.matchLabels is required")
    return out


def check_configmap(doc: dict, where: str) -> list[str]:
    out = []
    for key, value in (doc.get("data") or {}).items():
        if not (CONFIG_KEY.match(str(key)) and len(str(key)) <= 253):
            out.append(f"{where}: invalid key {key!r}")
        if not isinstance(value, str):
            out.append(f"{where}: {key} must be a string, not {value!r}")
    return out


CHECKS = {
    "Deployment": check_deployment,
    "Service": check_service,
    "HorizontalPodAutoscaler": check_hpa,
    "PodDisruptionBudget": check_pdb,
    "ConfigMap": check_configmap,
}


# --- references between objects ---------------------------------------------------


def _matches(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _pod(deployment: dict) -> dict:
    return ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}


def _pod_labels(deployment: dict) -> dict:
    template = (deployment.get("spec") or {}).get("template") or {}
    return (template.get("metadata") or {}).get("labels") or {}


def _check_services(objects: dict[str, dict[str, dict]]) -> list[str]:
    out = []
    for name, service in objects["Service"].items():
        selector = (service.get("spec") or {}).get("selector") or {}
        targets = [
            d
            for d in objects["Deployment"].values()
            if _matches(selector, _pod_labels(d))
        ]
        if not targets:
            out.append(f"Service/{name}: its selector matches no Deployment's pods")
        port_names = {
            p.get("name"): p.get("containerPort")
            for d in targets
            for c in _pod(d).get("containers") or []
            for p in c.get("ports") or []
        }
        for port in (service.get("spec") or {}).get("ports") or []:
            target = port.get("targetPort", port.get("port"))
            if isinstance(target, str) and target not in port_names:
                out.append(
                    f"Service/{name}: targetPort {target!r} is no container port"
                )
            if isinstance(target, int) and target not in port_names.values():
                out.append(f"Service/{name}: targetPort {target} is no container port")
    return out


def _check_autoscalers(objects: dict[str, dict[str, dict]]) -> list[str]:
    out = []
    for name, hpa in objects["HorizontalPodAutoscaler"].items():
        spec = hpa.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        target = objects["Deployment"].get(ref.get("name"))
        if (
            ref.get("kind") != "Deployment"
            or ref.get("apiVersion") != "apps/v1"
            or target is None
        ):
            out.append(f"HorizontalPodAutoscaler/{name}: scaleTargetRef {ref} is none")
            continue
        if "replicas" in (target.get("spec") or {}):
            out.append(
                f"Deployment/{ref['name']}: set no replicas, the HPA {name} owns them"
            )
        uses_cpu = any(
            (m.get("resource") or {}).get("name") == "cpu"
            for m in spec.get("metrics") or []
        )
        for container in _pod(target).get("containers") or []:
            requests = (container.get("resources") or {}).get("requests") or {}
            if uses_cpu and "cpu" not in requests:
                out.append(
                    f"HorizontalPodAutoscaler/{name}: container "
                    f"{container.get('name')!r} has no cpu request to scale against"
                )
    return out


def _check_budgets(objects: dict[str, dict[str, dict]]) -> list[str]:
    out = []
    minimum_of = {
        (hpa.get("spec") or {}).get("scaleTargetRef", {}).get("name"): (
            hpa.get("spec") or {}
        ).get("minReplicas", 1)
        for hpa in objects["HorizontalPodAutoscaler"].values()
    }
    for name, pdb in objects["PodDisruptionBudget"].items():
        spec = pdb.get("spec") or {}
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        targets = [
            n
            for n, d in objects["Deployment"].items()
            if _matches(selector, _pod_labels(d))
        ]
        if not targets:
            out.append(f"PodDisruptionBudget/{name}: its selector matches no pods")
        for target in targets:
            minimum = minimum_of.get(target, 1)
            limits = (spec.get("maxUnavailable"), spec.get("minAvailable"))
            if any(isinstance(v, int) and v >= minimum for v in limits):
                out.append(
                    f"PodDisruptionBudget/{name}: with {minimum} replicas it either "
                    "protects nothing or blocks every drain"
                )
    return out


def _check_shutdown(objects: dict[str, dict[str, dict]]) -> list[str]:
    out = []
    for name, deployment in objects["Deployment"].items():
        pod = _pod(deployment)
        config: dict[str, str] = {}
        for container in pod.get("containers") or []:
            for source in container.get("envFrom") or []:
                ref = (source.get("configMapRef") or {}).get("name")
                if ref is not None and ref not in objects["ConfigMap"]:
                    out.append(
                        f"Deployment/{name}: envFrom ConfigMap {ref!r} is missing"
                    )
                elif ref is not None:
                    config.update(objects["ConfigMap"][ref].get("data") or {})
        grace = pod.get("terminationGracePeriodSeconds", 30)
        graceful = int(
            config.get("DIALOGD_GRACEFUL_TIMEOUT") or DEFAULT_GRACEFUL_TIMEOUT
        )
        for container in pod.get("containers") or []:
            pre_stop = (container.get("lifecycle") or {}).get("preStop") or {}
            command = (pre_stop.get("exec") or {}).get("command") or []
            sleep = int(command[1]) if command[:1] == ["sleep"] else 0
            if isinstance(grace, int) and grace <= sleep + graceful:
                out.append(
                    f"Deployment/{name}: terminationGracePeriodSeconds {grace} must "
                    f"exceed the preStop sleep ({sleep}) + graceful timeout "
                    f"({graceful}), or in-flight requests are killed"
                )
    return out


def check_references(objects: dict[str, dict[str, dict]]) -> list[str]:
    return (
        _check_services(objects)
        + _check_autoscalers(objects)
        + _check_budgets(objects)
        + _check_shutdown(objects)
    )


def problems(docs: list[dict]) -> list[str]:
    out: list[str] = []
    objects: dict[str, dict[str, dict]] = defaultdict(dict)
    for doc in docs:
        if not isinstance(doc, dict):
            out.append(f"not a mapping: {doc!r}")
            continue
        where = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
        if (doc.get("apiVersion"), doc.get("kind")) not in KINDS:
            out.append(
                f"{where}: unknown apiVersion/kind "
                f"{doc.get('apiVersion')!r}/{doc.get('kind')!r}"
            )
            continue
        out += _check_name(doc, where)
        out += _check_labels((doc.get("metadata") or {}).get("labels"), where)
        name = (doc.get("metadata") or {}).get("name")
        if name in objects[doc["kind"]]:
            out.append(f"{where}: defined twice")
        objects[doc["kind"]][name] = doc
        check = CHECKS.get(doc["kind"])
        if check is not None:
            out += check(doc, where)
    out += check_references(objects)
    return out


# --- the tests ---------------------------------------------------------------------


def test_every_manifest_parses() -> None:
    assert MANIFESTS, "no manifests in deploy/k8s"
    for path in MANIFESTS:
        docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
        assert docs, f"{path.name} is empty"
        for doc in docs:
            assert isinstance(doc, dict), f"{path.name}: a document is not a mapping"
            assert doc.get("apiVersion") and doc.get("kind"), path.name


def test_the_manifests_have_no_problems() -> None:
    docs = load_manifests()
    kinds = {doc["kind"] for doc in docs}
    assert {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "ConfigMap",
        "PodDisruptionBudget",
    } <= kinds
    assert problems(docs) == []


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert (kustomization["apiVersion"], kustomization["kind"]) == KUSTOMIZATION
    listed = set(kustomization["resources"])
    present = {p.name for p in MANIFESTS} - {"kustomization.yaml"}
    assert listed == present
    images = {image["name"] for image in kustomization.get("images", [])}
    used = {
        c["image"].split(":")[0]
        for doc in load_manifests()
        if doc["kind"] == "Deployment"
        for c in _pod(doc)["containers"] + _pod(doc).get("initContainers", [])
    }
    assert used <= images


def _deployment() -> dict:
    return next(d for d in load_manifests() if d["kind"] == "Deployment")


def test_the_pods_run_as_the_images_user() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\d+)", dockerfile, re.MULTILINE)
    assert users, "the Dockerfile has no numeric USER"
    assert _pod(_deployment())["securityContext"]["runAsUser"] == int(users[-1])


def test_every_configmap_setting_is_read_by_the_image() -> None:
    """A knob nobody reads is a knob that silently does nothing."""
    readers = (ROOT / "deploy" / "docker-entrypoint.sh").read_text() + "".join(
        p.read_text() for p in (ROOT / "api" / "serving").glob("*.py")
    )
    names = set(re.findall(r"DIALOGD_[A-Z_]+", readers)) | {
        # the entrypoint builds these names as DIALOGD_${pair%%:*}
        f"DIALOGD_{m}"
        for m in re.findall(r"^\s+([A-Z_]+):--", readers, re.MULTILINE)
    }
    configmap = next(d for d in load_manifests() if d["kind"] == "ConfigMap")
    env = {e["name"] for c in _pod(_deployment())["containers"] for e in c["env"]}
    assert set(configmap["data"]) | env <= names


class _Engine:
    """Just enough of an engine for the health endpoints."""

    def __init__(self, ready: bool):
        self.ready = ready

    def status(self) -> dict:
        return {"is_ready": self.ready, "model_fingerprint": "x", "store": "?"}


@pytest.mark.parametrize("ready", [True, False])
def test_the_probes_ask_the_apps_real_endpoints(ready: bool) -> None:
    container = _pod(_deployment())["containers"][0]
    client = falcon.testing.TestClient(create_app(_Engine(ready)))
    readiness = client.simulate_get(container["readinessProbe"]["httpGet"]["path"])
    assert readiness.status_code == (200 if ready else 503)
    for probe in ("livenessProbe", "startupProbe"):
        # Alive whether Redis answers or not.
        path = container[probe]["httpGet"]["path"]
        assert client.simulate_get(path).status_code == 200, probe


# --- the checker notices each kind of mistake ----------------------------------------


def _find(docs: list[dict], kind: str) -> dict:
    return next(d for d in docs if d["kind"] == kind)


def _main(docs: list[dict]) -> dict:
    return _pod(_find(docs, "Deployment"))["containers"][0]


MUTATIONS: list[tuple[str, Any, str]] = [
    (
        "selector no longer matches the template",
        lambda d: _pod_labels(_find(d, "Deployment")).update(
            {"app.kubernetes.io/name": "other"}
        ),
        "selector does not match",
    ),
    (
        "an old HPA apiVersion",
        lambda d: _find(d, "HorizontalPodAutoscaler").update(
            apiVersion="autoscaling/v2beta1"
        ),
        "unknown apiVersion/kind",
    ),
    (
        "an upper-case name",
        lambda d: _find(d, "ConfigMap")["metadata"].update(name="Dialogd_Config"),
        "DNS-1123",
    ),
    (
        "a port out of range",
        lambda d: _main(d)["ports"][0].update(containerPort=70000),
        "containerPort",
    ),
    (
        "a probe on an undeclared port",
        lambda d: _main(d)["readinessProbe"]["httpGet"].update(port="metrics"),
        "probe port",
    ),
    (
        "a relative probe path",
        lambda d: _main(d)["startupProbe"]["httpGet"].update(path="health"),
        "must start with '/'",
    ),
    (
        "readiness not on /status",
        lambda d: _main(d)["readinessProbe"]["httpGet"].update(path="/"),
        "readinessProbe must GET",
    ),
    (
        "liveness on /status",
        lambda d: _main(d)["livenessProbe"]["httpGet"].update(path="/status"),
        "livenessProbe must GET",
    ),
    (
        "a malformed quantity",
        lambda d: _main(d)["resources"]["limits"].update(memory="768MB"),
        "malformed quantity",
    ),
    (
        "a request above its limit",
        lambda d: _main(d)["resources"]["requests"].update(cpu="3"),
        "exceeds its limit",
    ),
    (
        "the HPA targets a missing Deployment",
        lambda d: _find(d, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"].update(
            name="dialog"
        ),
        "scaleTargetRef",
    ),
    (
        "min above max replicas",
        lambda d: _find(d, "HorizontalPodAutoscaler")["spec"].update(minReplicas=20),
        "minReplicas <= maxReplicas",
    ),
    (
        "the PDB selects nothing",
        lambda d: _find(d, "PodDisruptionBudget")["spec"]["selector"][
            "matchLabels"
        ].update({"app.kubernetes.io/component": "worker"}),
        "matches no pods",
    ),
    (
        "a PDB that blocks every drain",
        lambda d: _find(d, "PodDisruptionBudget")["spec"].update(maxUnavailable=5),
        "blocks every drain",
    ),
    (
        "a number in a ConfigMap",
        lambda d: _find(d, "ConfigMap")["data"].update(DIALOGD_PORT=5005),
        "must be a string",
    ),
    (
        "a grace period shorter than the drain",
        lambda d: _pod(_find(d, "Deployment")).update(terminationGracePeriodSeconds=25),
        "terminationGracePeriodSeconds 25",
    ),
    (
        "a rollout that may drop capacity",
        lambda d: _find(d, "Deployment")["spec"]["strategy"]["rollingUpdate"].update(
            maxUnavailable=1
        ),
        "maxUnavailable 0",
    ),
    (
        "a Service port no container has",
        lambda d: _find(d, "Service")["spec"]["ports"][0].update(targetPort="web"),
        "targetPort 'web'",
    ),
    (
        "a Service that selects no pods",
        lambda d: _find(d, "Service")["spec"]["selector"].update(tier="x"),
        "matches no Deployment",
    ),
    (
        "service links on",
        lambda d: _pod(_find(d, "Deployment")).pop("enableServiceLinks"),
        "enableServiceLinks",
    ),
    (
        "a writable root filesystem",
        lambda d: _main(d)["securityContext"].update(readOnlyRootFilesystem=False),
        "readOnlyRootFilesystem",
    ),
    (
        "root allowed",
        lambda d: _pod(_find(d, "Deployment"))["securityContext"].pop("runAsNonRoot"),
        "runAsNonRoot",
    ),
    (
        "a mount of a missing volume",
        lambda d: _main(d)["volumeMounts"][0].update(name="model"),
        "names no volume",
    ),
    (
        "no preStop",
        lambda d: _main(d).pop("lifecycle"),
        "preStop",
    ),
    (
        "a missing ConfigMap",
        lambda d: _main(d)["envFrom"][0]["configMapRef"].update(name="dialogd-conf"),
        "ConfigMap 'dialogd-conf' is missing",
    ),
    (
        "replicas fixed under an HPA",
        lambda d: _find(d, "Deployment")["spec"].update(replicas=3),
        "the HPA dialogd owns them",
    ),
    (
        "an invalid label value",
        lambda d: _find(d, "Service")["metadata"]["labels"].update(tier="a b"),
        "invalid label value",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [pytest.param(m, e, id=name) for name, m, e in MUTATIONS],
)
def test_the_checker_notices(mutate: Any, expected: str) -> None:
    docs = copy.deepcopy(load_manifests())
    mutate(docs)
    found = problems(docs)
    assert any(expected in p for p in found), found


def test_quantities() -> None:
    assert quantity("384Mi") == 384 * 2**20
    assert quantity("250m") == 0.25
    assert quantity(2) == 2.0
    assert quantity("1e3") == 1000.0
    for bad in ("1.5 Gi", "MB", "", "10MB", True):
        with pytest.raises(ValueError):
            quantity(bad)


def test_namespace_is_not_hardcoded() -> None:
    """`kubectl apply -n NAMESPACE` decides where it goes."""
    for doc in load_manifests():
        assert "namespace" not in doc["metadata"], doc["metadata"]["name"]


def test_readme_names_the_secret_the_deployment_needs() -> None:
    readme = (K8S / "README.md").read_text()
    for container in _pod(_deployment())["containers"]:
        for var in container.get("env", []):
            ref = (var.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                assert (
                    ref["name"] in readme and f"--from-literal={ref['key']}=" in readme
                )
