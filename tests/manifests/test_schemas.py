"""Every rendered object validates: built-in kinds against the Kubernetes schemas of the
versions in versions.env (kubernetes-validate, strict, offline); InferenceServices against
KServe's CRD schema with unknown fields forbidden."""

from __future__ import annotations

import copy

import pytest
import render
from conftest import REPO, derived_pods, inference_services

pytestmark = pytest.mark.manifests


def kubernetes_versions() -> list[str]:
    for line in (REPO / "versions.env").read_text().splitlines():
        if line.startswith("KUBERNETES_SCHEMA_VERSIONS"):
            return line.split("=", 1)[1].strip().split(",")
    raise AssertionError("versions.env has no KUBERNETES_SCHEMA_VERSIONS")


# Kinds whose schema is not Kubernetes' own; each is checked elsewhere (PrometheusRule:
# tests/monitoring/test_rules.py).
NOT_BUILT_IN = {"InferenceService", "ServiceMonitor", "PrometheusRule"}
VARIANTS = sorted(render.KUSTOMIZATIONS) + [f"chart-{v}" for v in sorted(render.chart_variants())]


def validate_k8s(doc: dict, version: str) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("version", kubernetes_versions())
@pytest.mark.parametrize("variant", VARIANTS)
def test_built_in_kinds_validate(objects, variant, version):
    docs = objects[variant]
    checked = 0
    for doc in docs:
        if doc["kind"] in NOT_BUILT_IN:
            continue
        validate_k8s(doc, version)
        checked += 1
    # The pods KServe will make of each component are valid Pods too.
    for isvc in inference_services(docs):
        for pod in derived_pods(isvc):
            validate_k8s(pod, version)
            checked += 1
    assert checked


@pytest.mark.parametrize("variant", VARIANTS)
def test_inference_services_validate_against_strict_crd(objects, isvc_schema, variant):
    for isvc in inference_services(objects[variant]):
        errors = sorted(isvc_schema.iter_errors(isvc), key=lambda e: list(e.path))
        assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_shared_example_validates(isvc_schema):
    import yaml
    from conftest import crds_dir

    example = crds_dir().parent / "examples" / "isvc-gpu-predictor-transformer.yaml"
    if not example.is_file():
        pytest.skip("no shared example beside the CRDs")
    isvc_schema.validate(yaml.safe_load(example.read_text()))


@pytest.mark.parametrize(
    ("path", "misspelt"),
    [
        (["spec", "predictor"], "minReplica"),
        (["spec", "predictor", "containers", 0], "imagePulPolicy"),
        (["spec", "transformer", "containers", 0, "securityContext"], "readOnlyRootFileSystem"),
        (["spec"], "transfomer"),
    ],
)
def test_strict_crd_rejects_a_misspelt_field(objects, isvc_schema, path, misspelt):
    (isvc,) = inference_services(objects["overlay-kind"])
    broken = copy.deepcopy(isvc)
    node = broken
    for key in path:
        node = node[key]
    node[misspelt] = node.get(misspelt, "x")
    errors = list(isvc_schema.iter_errors(broken))
    assert errors and any(misspelt in e.message for e in errors)
    assert isvc_schema.is_valid(isvc)


def test_kubernetes_schema_rejects_a_misspelt_field(objects):
    import kubernetes_validate

    policy = next(d for d in objects["overlay-kind"] if d["kind"] == "NetworkPolicy")
    broken = copy.deepcopy(policy)
    broken["spec"]["policyType"] = ["Ingress"]
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_k8s(broken, kubernetes_versions()[0])


def test_only_known_kinds_are_rendered(objects):
    kinds = {doc["kind"] for docs in objects.values() for doc in docs}
    assert kinds <= {
        "InferenceService",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Service",  # the headless Service over the predictor pods
        "Pod",
        "PersistentVolumeClaim",
        "ServiceMonitor",
        "PrometheusRule",
        "Job",
        "CronJob",
        "ConfigMap",
    }, kinds


def test_service_monitor_scrapes_the_predictor_service(objects):
    docs = objects["chart-monitoring"]
    monitor = next(d for d in docs if d["kind"] == "ServiceMonitor")
    (isvc,) = inference_services(docs)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"] == {
        "serving.kserve.io/inferenceservice": isvc["metadata"]["name"],
        "component": "predictor",
    }
    # KServe names the Service's port 80 after the container's first port.
    first_port = isvc["spec"]["predictor"]["containers"][0]["ports"][0]["name"]
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == [first_port]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
