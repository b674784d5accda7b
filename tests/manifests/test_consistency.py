"""What the manifests tell the servers makes sense to the servers: every container's args parse
with the servers' own parsers, the hop points at KServe's predictor Service and port, the
NetworkPolicy selects KServe's pod labels, and the chart says what the overlays say."""

from __future__ import annotations

import pytest
import render
from conftest import comparable, container, inference_services, only

from tests.support.cmdline import flag

pytestmark = pytest.mark.manifests

VARIANTS = [f"overlay-{o}" for o in render.OVERLAYS] + [
    f"chart-{v}" for v in sorted(render.chart_variants())
]


def isvc_of(objects, variant) -> dict:
    (isvc,) = inference_services(objects[variant])
    return isvc


def parse_predictor(args):
    from predictor.config import PredictorSettings

    return PredictorSettings.from_args(args)


def parse_transformer(args):
    from transformer.config import TransformerSettings

    return TransformerSettings.from_args(args)


def env(c: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in c.get("env", [])}


@pytest.mark.parametrize("variant", VARIANTS)
def test_args_parse_with_the_servers_own_parsers(objects, variant):
    isvc = isvc_of(objects, variant)
    predictor = parse_predictor(container(isvc, "predictor")["args"])
    transformer = parse_transformer(container(isvc, "transformer")["args"])
    assert predictor.model_dir == transformer.model_dir == "/mnt/models"
    gpu = "nvidia.com/gpu" in container(isvc, "predictor")["resources"].get("limits", {})
    assert (predictor.device == "cuda") == gpu, "a GPU is requested exactly when --device=cuda"


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_hop_reaches_kserves_predictor_service(objects, variant):
    isvc = isvc_of(objects, variant)
    name = isvc["metadata"]["name"]
    knative = isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"
    p_args = container(isvc, "predictor")["args"]
    t_args = container(isvc, "transformer")["args"]
    model = flag(p_args, "--model_name")
    assert flag(t_args, "--model_name") == model, "the transformer posts to /v2/models/<its name>"

    protocol = flag(t_args, "--predictor_protocol")
    target = flag(t_args, "--predictor_host")
    if knative:  # Knative routes by name: KServe's predictor Service
        host, _, port = target.rpartition(":")
        assert host == f"{name}-predictor", "KServe's predictor Service is <isvc>-predictor"
    else:  # Standard: every predictor pod, through the headless Service, balanced
        assert target.startswith("dns:///"), target
        host, _, port = target.removeprefix("dns:///").rpartition(":")
        assert host == f"{name}-predictor-pods"
    ports = container(isvc, "predictor")["ports"]
    if protocol == "grpc-v2":
        assert not knative, "Knative serves one port: no gRPC hop there"
        # Standard mode exposes further container ports under their own number; a name
        # containing grpc/h2c makes the port gRPC.
        grpc = [p for p in ports[1:] if "grpc" in p["name"] or "h2c" in p["name"]]
        assert [p["containerPort"] for p in grpc] == [int(port)]
        assert flag(p_args, "--grpc_port") == port
    else:
        assert protocol == "v2"
        # Service port 80 -> the first container port, which must be the server's HTTP port;
        # the headless Service reaches the pod's own port.
        assert port == ("80" if knative else flag(p_args, "--http_port"))
        assert str(ports[0]["containerPort"]) == flag(p_args, "--http_port")
    if knative:
        assert len(ports) == 1 and len(container(isvc, "transformer")["ports"]) == 1


@pytest.mark.parametrize("variant", VARIANTS)
def test_standard_mode_balances_the_hop_over_every_predictor_pod(objects, variant):
    """The headless Service the transformer's dns:/// target names selects KServe's predictor
    pods on their ports; the predictor limits connection age so transformers re-resolve."""
    docs = objects[variant]
    isvc = isvc_of(objects, variant)
    name = isvc["metadata"]["name"]
    services = [d for d in docs if d["kind"] == "Service"]
    p_args = container(isvc, "predictor")["args"]
    t_args = container(isvc, "transformer")["args"]
    if isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative":
        assert not services, "Knative routes to its pods itself"
        return
    (service,) = services
    assert service["metadata"]["name"] == f"{name}-predictor-pods"
    assert service["spec"]["clusterIP"] == "None"
    assert not service["spec"].get("publishNotReadyAddresses"), "ready pods only"
    assert service["spec"]["selector"] == {
        "serving.kserve.io/inferenceservice": name,
        "component": "predictor",
    }
    container_ports = {p["containerPort"] for p in container(isvc, "predictor")["ports"]}
    assert {p["port"] for p in service["spec"]["ports"]} == container_ports
    assert all(p["targetPort"] == p["port"] for p in service["spec"]["ports"])
    port = int(flag(t_args, "--predictor_host").rpartition(":")[2])
    assert port in container_ports
    age = float(flag(p_args, "--grpc_max_connection_age_seconds"))
    age_grace = float(flag(p_args, "--grpc_max_connection_age_grace_seconds"))
    assert 0 < age <= 300, "new pods get calls within one connection age"
    assert age_grace >= float(flag(p_args, "--grace_period")), "aged calls may finish"
    assert int(flag(t_args, "--predictor_retry_attempts")) >= 2


@pytest.mark.parametrize("variant", VARIANTS)
def test_both_containers_read_one_model_and_probe_v2(objects, variant):
    isvc = isvc_of(objects, variant)
    p, t = container(isvc, "predictor"), container(isvc, "transformer")
    canary = isvc["spec"]["predictor"].get("canaryTrafficPercent") is not None
    if not canary:
        assert env(p)["STORAGE_URI"] == env(t)["STORAGE_URI"]
    assert env(p)["PROTOCOL"] == "v2"
    model = flag(p["args"], "--model_name")
    for c in (p, t):
        http = int(flag(c["args"], "--http_port"))
        assert c["readinessProbe"]["httpGet"] == {"path": f"/v2/models/{model}/ready", "port": http}
        assert c["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
        assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
        assert c["ports"][0]["containerPort"] == http
        security = c["securityContext"]
        assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
        assert security["capabilities"]["drop"] == ["ALL"] and security["runAsUser"] == 1000
        assert {"name": "scratch", "mountPath": "/tmp"} in c["volumeMounts"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_network_policy_lets_only_the_transformer_in(objects, variant):
    docs = objects[variant]
    isvc = isvc_of(objects, variant)
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    if isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative":
        assert not policies, "Knative traffic arrives via activator/gateway, not the transformer"
        return
    (policy,) = policies
    name = isvc["metadata"]["name"]
    # The labels KServe's controller puts on component pods.
    assert policy["spec"]["podSelector"]["matchLabels"] == {
        "serving.kserve.io/inferenceservice": name,
        "component": "predictor",
    }
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    first, *others = policy["spec"]["ingress"]
    assert first["from"] == [
        {
            "podSelector": {
                "matchLabels": {
                    "serving.kserve.io/inferenceservice": name,
                    "component": "transformer",
                }
            }
        }
    ]
    container_ports = {p["containerPort"] for p in container(isvc, "predictor")["ports"]}
    assert {p["port"] for p in first["ports"]} == container_ports
    http = container(isvc, "predictor")["ports"][0]["containerPort"]
    for rule in others:  # only Prometheus, only /metrics' port
        assert [p["port"] for p in rule["ports"]] == [http]
        assert all("namespaceSelector" in peer for peer in rule["from"])


def test_parsers_reject_a_misspelt_flag(objects):
    isvc = isvc_of(objects, "overlay-kind")
    p_args = container(isvc, "predictor")["args"]
    t_args = container(isvc, "transformer")["args"]
    parse_predictor(p_args)
    parse_transformer(t_args)
    with pytest.raises(SystemExit):
        parse_predictor([*p_args, "--max_batch_dealy_ms=2"])
    with pytest.raises(SystemExit):
        parse_transformer(
            [a.replace("--confidence_threshold", "--confidence_treshold") for a in t_args]
        )
    with pytest.raises(SystemExit):
        parse_transformer([a.replace("=grpc-v2", "=grpc") for a in t_args])


# ---- no drift between the chart and the overlays -------------------------------------------


@pytest.mark.parametrize("overlay", render.OVERLAYS)
def test_chart_values_equal_the_overlay(objects, overlay):
    variants = render.chart_variants()
    assert overlay in variants, f"charts/kserve-kit/ci/{overlay}-values.yaml mirrors the overlay"
    chart_docs, overlay_docs = objects[f"chart-{overlay}"], objects[f"overlay-{overlay}"]
    assert comparable(only(chart_docs, "InferenceService")) == comparable(
        only(overlay_docs, "InferenceService")
    )
    for kind in ("NetworkPolicy", "PodDisruptionBudget", "Service"):
        chart_objects = [comparable(d) for d in chart_docs if d["kind"] == kind]
        overlay_objects = [comparable(d) for d in overlay_docs if d["kind"] == kind]
        assert chart_objects == overlay_objects, kind


def test_drift_check_notices_a_changed_value(objects):
    values = render.load_values(render.chart_variants()["kind"])
    values["transformer"]["confidenceThreshold"] = 0.8
    drifted = render.documents(render.chart_manifest(render.render_chart(values)))
    assert comparable(only(drifted, "InferenceService")) != comparable(
        only(objects["overlay-kind"], "InferenceService")
    )
