"""Every overlay builds with real kustomize; the chart lints strictly and renders each variant
with Helm's own engine; values, schema and templates keep their promises."""

from __future__ import annotations

import json
import re

import pytest
import render
import yaml
from conftest import inference_services

pytestmark = pytest.mark.manifests

VARIANTS = sorted(render.chart_variants())


@pytest.mark.parametrize("name", sorted(render.KUSTOMIZATIONS))
def test_kustomization_builds(rendered, name):
    docs = render.documents(rendered[name])
    assert docs, f"{name} rendered nothing"
    for doc in docs:
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "kserve-kit"


def test_kustomizations_follow_house_style():
    files = sorted(render.MANIFESTS.rglob("kustomization.yaml"))
    assert len(files) >= 7
    for path in files:
        config = yaml.safe_load(path.read_text())
        assert "commonLabels" not in config, f"{path}: use labels:, commonLabels is deprecated"
        assert "patchesJson6902" not in config and "patchesStrategicMerge" not in config, path
        for patch in config.get("patches", []):
            assert "path" in patch, f"{path}: patches take path:, not inline patches"
    component = yaml.safe_load((render.MANIFESTS / "components/gpu/kustomization.yaml").read_text())
    assert component["kind"] == "Component"


@pytest.mark.parametrize("kube_version", ["v1.30.0", "v1.33.0"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_chart_lints_strict(variant, kube_version):
    import helm_python

    values = render.load_values(render.chart_variants()[variant])
    report = helm_python.lint(
        str(render.CHART), values, strict=True, kube_version=kube_version, namespace="kserve-kit"
    )
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert not problems, json.dumps(problems, indent=2)


@pytest.mark.parametrize("variant", VARIANTS)
def test_chart_renders_one_inference_service(objects, variant):
    docs = objects[f"chart-{variant}"]
    (isvc,) = inference_services(docs)
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] in {
        "Standard",
        "Knative",
    }
    test_pods = [d for d in docs if d["metadata"].get("annotations", {}).get("helm.sh/hook")]
    assert [p["kind"] for p in test_pods] == ["Pod"], "one helm test pod"


def test_notes_tell_the_next_commands():
    notes = render.render_chart({})["kserve-kit/templates/NOTES.txt"]
    assert (
        "kubectl -n kserve-kit port-forward svc/text-classifier-kserve-kit-transformer 8080:80"
        in notes
    )
    assert "/v2/models/text-classifier/infer" in notes and "curl" in notes


def test_values_schema_is_strict_at_every_level():
    schema = json.loads((render.CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"

    def walk(node, where):
        if isinstance(node, dict):
            if node.get("type") == "object" or "properties" in node:
                assert node.get("additionalProperties") is False, f"{where} accepts unknown keys"
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    walk(schema, "#")


def test_values_schema_defines_what_repeats_once():
    schema = json.loads((render.CHART / "values.schema.json").read_text())
    seen: dict[str, list[str]] = {}
    refs: set[str] = set()

    def walk(node, where):
        if isinstance(node, dict):
            if "$ref" in node:
                refs.add(node["$ref"])
            if "properties" in node or "items" in node:
                seen.setdefault(json.dumps(node, sort_keys=True), []).append(where)
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    walk(schema["properties"], "#/properties")
    walk(schema["definitions"], "#/definitions")
    repeated = [where for where in seen.values() if len(where) > 1]
    assert not repeated, f"define these once under definitions and $ref them: {repeated}"
    defined = {f"#/definitions/{name}" for name in schema["definitions"]}
    assert refs == defined, f"unknown: {refs - defined}, unused: {defined - refs}"


def test_every_value_is_commented():
    lines = (render.CHART / "values.yaml").read_text().splitlines()
    key = re.compile(r"^(\s*)([A-Za-z][\w./-]*):")
    under_resources = None
    for number, line in enumerate(lines):
        match = key.match(line)
        if not match:
            continue
        indent = len(match.group(1))
        if under_resources is not None and indent > under_resources:
            continue  # requests/limits quantities, described by the resources comment
        under_resources = indent if match.group(2) == "resources" else None
        assert lines[number - 1].strip().startswith("#"), f"values.yaml:{number + 1} {line!r}"


def test_schema_rejects_a_misspelt_value():
    import helm_python

    chart = helm_python.Chart.load(str(render.CHART))
    chart.validate_schema({"transformer": {"confidenceThreshold": 0.5}})
    with pytest.raises(helm_python.HelmError, match="confidenceTreshold"):
        chart.validate_schema({"transformer": {"confidenceTreshold": 0.5}})
    with pytest.raises(helm_python.HelmError):
        chart.validate_schema({"transformer": {"confidenceThreshold": 1.5}})


# One bad value per definition that values.schema.json shares, in each place that uses it:
# Helm must follow the $ref, not skip it.
@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"predictor": {"image": {"pullPolicy": "Sometimes"}}}, "/predictor/image/pullPolicy"),
        ({"transformer": {"image": {"repository": ""}}}, "/transformer/image/repository"),
        (
            {"batch": {"resources": {"limits": {"cpu": "two"}, "requests": {}}}},
            "/batch/resources/limits/cpu",
        ),
        (
            {"transformer": {"resources": {"requests": {"gpu": "1"}, "limits": {}}}},
            "/transformer/resources/requests",
        ),
        ({"predictor": {"scratchSizeLimit": "1G"}}, "/predictor/scratchSizeLimit"),
        ({"transformer": {"extraArgs": ["max_length=64"]}}, "/transformer/extraArgs/0"),
        ({"batch": {"extraEnv": [{"name": "1X", "value": "v"}]}}, "/batch/extraEnv/0/name"),
        (
            {"predictor": {"tolerations": [{"operator": "Maybe"}]}},
            "/predictor/tolerations/0/operator",
        ),
    ],
)
def test_schema_refuses_a_bad_shared_part_wherever_it_is_used(values, where):
    import helm_python

    chart = helm_python.Chart.load(str(render.CHART))
    with pytest.raises(helm_python.HelmError, match=re.escape(where)):
        chart.validate_schema(values)


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"predictor": {"quantize": "int4"}}, "/predictor/quantize"),
        ({"predictor": {"compile": "script"}}, "/predictor/compile"),
        ({"predictor": {"forwardWorkers": -1}}, "/predictor/forwardWorkers"),
        ({"transformer": {"maxRequestBytes": "8Mi"}}, "/transformer/maxRequestBytes"),
    ],
)
def test_schema_refuses_a_tuning_value_the_server_would_refuse(values, where):
    import helm_python

    with pytest.raises(helm_python.HelmError, match=re.escape(where)):
        render.render_chart(values)


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        (
            {"canary": {"enabled": True, "storageUri": "s3://m/v2"}},
            "needs autoscaling.class=knative",
        ),
        (
            {"autoscaling": {"class": "knative"}, "transformer": {"predictorProtocol": "grpc-v2"}},
            "grpc-v2 needs Standard mode",
        ),
        ({"predictor": {"minReplicas": 0}}, "needs autoscaling.class=knative"),
        ({"predictor": {"scaleMetric": "concurrency"}}, "cpu or memory only"),
        ({"gpu": {"enabled": True}, "predictor": {"device": "cpu"}}, "leave predictor.device"),
        ({"gpu": {"enabled": True}, "predictor": {"quantize": "int8"}}, "runs on the CPU only"),
        ({"predictor": {"device": "cuda", "quantize": "int8"}}, "runs on the CPU only"),
        ({"predictor": {"dtype": "float16", "quantize": "int8"}}, "quantizes float32 weights"),
    ],
)
def test_chart_refuses_combinations_that_cannot_work(values, reason):
    import helm_python

    with pytest.raises(helm_python.HelmError, match=re.escape(reason)):
        render.render_chart(values)


def test_long_release_names_keep_kserve_names_within_63():
    import helm_python

    chart = helm_python.Chart.load(str(render.CHART))
    out = chart.render({}, name="a" * 60, namespace="default", is_install=True)
    (isvc,) = inference_services(
        render.documents(out["kserve-kit/templates/inferenceservice.yaml"])
    )
    name = isvc["metadata"]["name"]
    assert len(f"isvc.{name}-transformer") <= 63
    assert not name.endswith("-")


def test_helm_test_speaks_the_kits_v2_contract(objects):
    from kserve_kit import contract

    values = render.load_values(render.CHART / "values.yaml")
    assert values["tests"]["inputName"] == contract.TEXT.name
    pod = next(
        d
        for d in objects["chart-default"]
        if d["metadata"].get("annotations", {}).get("helm.sh/hook")
    )
    script = pod["spec"]["containers"][0]["args"][0]
    assert f'== "{contract.LABEL.name}"' in script
    compile(script, "helm-test", "exec")
    url = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}["INFER_URL"]
    assert (
        url
        == "http://text-classifier-kserve-kit-transformer.kserve-kit/v2/models/text-classifier/infer"
    )
