"""The Kubernetes manifests in deploy/k8s: valid against the API's schemas (kubernetes-validate,
offline: the schemas ship in the package), and saying what docs/deploy.md says they say."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

kubernetes_validate = pytest.importorskip("kubernetes_validate")

K8S = Path(__file__).resolve().parent.parent / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30.0"  # autoscaling/v2 HPA; any current cluster


def documents() -> list[dict[str, Any]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        found.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return found


def one(kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for d in documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container["env"]}


def test_every_manifest_is_valid_against_the_kubernetes_schemas() -> None:
    docs = documents()
    assert {d["kind"] for d in docs} == {"Deployment", "Service", "HorizontalPodAutoscaler", "ConfigMap"}
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)  # raises on any unknown field


def test_the_validator_catches_a_misspelt_field() -> None:
    deployment = one("Deployment", "voicebridge")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["terminationGracePeriodSecond"] = 10
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_the_bridge_deployment_drains_and_outlasts_its_longest_call() -> None:
    pod = one("Deployment", "voicebridge")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = env_of(container)
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert "httpGet" not in container["livenessProbe"]  # /healthz is 503 while draining: never restart for it
    pre_stop = " ".join(container["lifecycle"]["preStop"]["exec"]["command"])
    assert "touch $VOICEBRIDGE_DRAIN_FILE" in pre_stop and env["VOICEBRIDGE_DRAIN_FILE"]
    sleep_s = int(pre_stop.rsplit("sleep", 1)[1])
    assert sleep_s < int(env["DRAIN_GRACE_S"])  # webhooks still answered while the balancer notices
    assert pod["terminationGracePeriodSeconds"] > sleep_s + int(env["GRACEFUL_TIMEOUT"])
    assert container["command"][:3] == ["gunicorn", "-c", "examples/gunicorn.conf.py"]


def test_the_pods_share_the_redis_of_the_manifests() -> None:
    env = env_of(one("Deployment", "voicebridge")["spec"]["template"]["spec"]["containers"][0])
    service = one("Service", "voicebridge-redis")
    assert env["REDIS_URL"] == f"redis://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}/0"
    redis = one("Deployment", "voicebridge-redis")["spec"]["template"]["spec"]["containers"][0]
    args = " ".join(redis["args"])
    assert "--maxmemory-policy noeviction" in args  # an evicted lease would let the cap be passed
    from voicebridge.serving.app import Settings

    settings = Settings.from_env(dict(env, LOCAL_BACKEND="1"))  # the example app accepts this environment
    assert settings.redis_outage == "local" and settings.max_calls == 300


def test_the_autoscaler_scales_the_bridge_on_live_calls() -> None:
    hpa = one("HorizontalPodAutoscaler", "voicebridge")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "voicebridge"}
    [metric] = hpa["metrics"]
    assert metric["type"] == "Pods" and metric["pods"]["metric"]["name"] == "voicebridge_active_calls"
    from voicebridge.serving.prometheus import BridgeMetrics

    exposed = BridgeMetrics(lambda: 0).exposition().decode()
    assert "voicebridge_active_calls " in exposed  # the metric the bridge really serves
    rules = yaml.safe_load(one("ConfigMap", "voicebridge-adapter-rules")["data"]["config.yaml"])
    assert rules["rules"][0]["name"]["as"] == "voicebridge_active_calls"
