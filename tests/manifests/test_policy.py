"""The decision policy (components/policy, the chart's policy.*) reaches the servers as a file
they can reload: the rendered ConfigMap holds a valid policy, the transformer and the batch pods
mount the whole ConfigMap as a read-only directory (a subPath mount never updates) and their args,
parsed by the servers' own parsers, name the mounted file; a policy change touches no pod
template (no checksum, no hashed name: a live reload, not a rollout); the schema and the
templates refuse bad policies; the chart says what the overlay says; the component fits every
overlay."""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import PurePosixPath

import jsonschema
import pytest
import render
import yaml
from conftest import (
    by_kind,
    comparable,
    container,
    inference_services,
    only,
    write_config_map_volume,
)
from test_batch import batch_container, batch_docs, job_spec, parse_batch

pytestmark = pytest.mark.manifests

COMPONENT = render.MANIFESTS / "components" / "policy"
POLICY_FILE = COMPONENT / "policy.json"
NAME = "text-classifier-policy"
MOUNT = "/mnt/policy"
# overlay-<o> and the chart variants that mirror it (render.POLICY_OVERLAYS).
PAIRS = [
    (f"overlay-{o}", f"chart-{c}") for o, charts in render.POLICY_OVERLAYS.items() for c in charts
]
POLICY_VARIANTS = sorted({v for pair in PAIRS for v in pair})


def policy_validator() -> jsonschema.Draft7Validator:
    """The chart's schema of an inline policy (values.schema.json, definitions.policy): one
    definition of the policy for the values, the ConfigMaps and the component's file."""
    schema = json.loads((render.CHART / "values.schema.json").read_text())
    return jsonschema.Draft7Validator(
        {"definitions": schema["definitions"], "$ref": "#/definitions/policy"}
    )


def policy_config_map(docs: list[dict]) -> dict:
    (found,) = [d for d in docs if d["kind"] == "ConfigMap"]
    return found


def transformer_namespace(args: list[str]):
    """The transformer's own parse and checks: (raw namespace, validated config)."""
    from transformer.config import TransformerSettings

    return TransformerSettings.parse(args)


def pod_specs(docs: list[dict]) -> list[tuple[str, dict, dict]]:
    """(where, pod spec, container) of the transformer and of every batch pod."""
    (isvc,) = inference_services(docs)
    out = [("transformer", isvc["spec"]["transformer"], container(isvc, "transformer"))]
    for doc in batch_docs(docs):
        out.append((doc["kind"], job_spec(doc)["template"]["spec"], batch_container(doc)))
    return out


def policy_file_of(where: str, args: list[str]) -> str | None:
    if where == "transformer":
        return transformer_namespace(args)[0].policy_file
    return parse_batch(args)[0].policy_file


def chart_docs(values: dict) -> list[dict]:
    return render.documents(render.chart_manifest(render.render_chart(values)))


def values_of(variant: str) -> dict:
    return render.load_values(render.chart_variants()[variant])


# ---- the ConfigMap holds a policy -------------------------------------------------------------


@pytest.mark.parametrize("variant", POLICY_VARIANTS)
def test_config_map_holds_a_valid_policy(objects, variant):
    config_map = policy_config_map(objects[variant])
    assert config_map["metadata"]["name"] == NAME, "a fixed name: no hash suffix to roll pods"
    assert config_map["metadata"]["labels"]["app.kubernetes.io/component"] == "policy"
    assert set(config_map["data"]) == {"policy.json"} and "binaryData" not in config_map
    policy = json.loads(config_map["data"]["policy.json"])
    errors = [f"{list(e.path)}: {e.message}" for e in policy_validator().iter_errors(policy)]
    assert not errors, errors
    assert policy["format"] == 1 and policy["version"]


def test_component_file_is_a_valid_policy():
    policy = json.loads(POLICY_FILE.read_text())
    policy_validator().validate(policy)
    assert set(policy) == set(policy_validator().schema["definitions"]["policy"]["properties"]), (
        "the example shows every key"
    )


def test_component_keeps_a_fixed_name():
    config = yaml.safe_load((COMPONENT / "kustomization.yaml").read_text())
    assert config["kind"] == "Component"
    (generator,) = config["configMapGenerator"]
    assert generator["name"] == NAME and generator["files"] == ["policy.json"]
    assert generator["options"]["disableNameSuffixHash"] is True


# ---- the pods mount it as a directory and read it ----------------------------------------------


@pytest.mark.parametrize("variant", POLICY_VARIANTS)
def test_pods_mount_the_policy_directory_and_name_its_file(objects, variant):
    docs = objects[variant]
    key = next(iter(policy_config_map(docs)["data"]))
    files = set()
    places = pod_specs(docs)
    assert {where for where, _, _ in places} >= {"transformer"} and len(places) >= 2
    for where, pod, c in places:
        volumes = {v["name"]: v for v in pod["volumes"]}
        (mount,) = [
            m
            for m in c["volumeMounts"]
            if volumes[m["name"]].get("configMap", {}).get("name") == NAME
        ]
        assert mount.get("readOnly") is True, where
        assert "subPath" not in mount and "subPathExpr" not in mount, (
            f"{where}: a subPath mount never sees a ConfigMap update"
        )
        assert mount["mountPath"] == MOUNT
        assert "items" not in volumes[mount["name"]]["configMap"], "the whole ConfigMap"
        policy_file = policy_file_of(where, c["args"])
        assert policy_file is not None, f"{where} gets --policy_file"
        path = PurePosixPath(policy_file)
        assert path.parent == PurePosixPath(mount["mountPath"]) and path.name == key, where
        files.add(policy_file)
        if where == "transformer":
            interval = transformer_namespace(c["args"])[0].policy_reload_interval_seconds
            assert interval > 0, "the transformer watches the file"
    assert files == {f"{MOUNT}/policy.json"}, "online and offline read one policy"


OTHER_VARIANTS = [
    v
    for v in [*render.KUSTOMIZATIONS, *(f"chart-{c}" for c in render.chart_variants())]
    if v not in POLICY_VARIANTS
]


@pytest.mark.parametrize("variant", OTHER_VARIANTS)
def test_without_the_policy_the_servers_fall_back(objects, variant):
    """No policy ConfigMap, no --policy_file: policy.json of the model directory, or the flags.
    (Other ConfigMaps, such as the monitoring component's dashboard, may be there.)"""
    docs = objects[variant]
    assert not [d for d in docs if d["kind"] == "ConfigMap" and "policy.json" in d.get("data", {})]
    if not inference_services(docs):
        return
    for where, pod, c in pod_specs(docs):
        assert policy_file_of(where, c["args"]) is None, where
        assert not [v for v in pod["volumes"] if "configMap" in v], where


def test_a_policy_change_touches_no_pod_template():
    """Only the ConfigMap changes: no checksum annotation, no new name, so `helm upgrade`
    rolls nothing and the transformer reloads the updated file."""
    values = values_of("policy")
    changed = copy.deepcopy(values)
    changed["policy"]["inline"]["threshold"] = 0.7
    changed["policy"]["inline"]["version"] = "demo-2026-12-02"
    before, after = chart_docs(values), chart_docs(changed)
    assert policy_config_map(before) != policy_config_map(after)
    for kind in ("InferenceService", "Job"):
        assert only(before, kind) == only(after, kind), kind
    for doc in before:
        for found in (
            doc["metadata"].get("annotations", {}),
            doc.get("spec", {}).get("transformer", {}).get("annotations", {}),
        ):
            assert not [k for k in found if "checksum" in k], doc["kind"]


# ---- the chart refuses bad policies ------------------------------------------------------------

GOOD = json.loads(POLICY_FILE.read_text())


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"threshold": 1.5}, "/policy/inline/threshold"),
        ({"threshold": 0}, "/policy/inline/threshold"),
        ({"thresold": 0.5}, "thresold"),
        ({"temperature": 0}, "/policy/inline/temperature"),
        ({"class_thresholds": {"billing": 1.0}}, "/policy/inline/class_thresholds/billing"),
        ({"format": 2}, "/policy/inline/format"),
        ({"model_version": 3}, "/policy/inline/model_version"),
        ({"others_label": ""}, "/policy/inline/others_label"),
    ],
)
def test_schema_rejects_a_bad_inline_policy(change, where):
    import helm_python

    chart = helm_python.Chart.load(str(render.CHART))
    chart.validate_schema({"policy": {"enabled": True, "inline": GOOD}})
    with pytest.raises(helm_python.HelmError, match=where):
        chart.validate_schema({"policy": {"enabled": True, "inline": {**GOOD, **change}}})


def test_schema_needs_format_and_version_and_a_valid_interval():
    import helm_python

    chart = helm_python.Chart.load(str(render.CHART))
    missing = {k: v for k, v in GOOD.items() if k != "version"}
    with pytest.raises(helm_python.HelmError, match="version"):
        chart.validate_schema({"policy": {"enabled": True, "inline": missing}})
    with pytest.raises(helm_python.HelmError, match="reloadIntervalSeconds"):
        chart.validate_schema({"policy": {"reloadIntervalSeconds": -1}})
    with pytest.raises(helm_python.HelmError, match="mountPath"):
        chart.validate_schema({"policy": {"mountPath": "/etc/policy"}})


@pytest.mark.parametrize(
    ("policy", "reason"),
    [
        ({"file": "{not json"}, "policy.file is not a JSON object"),
        ({"file": "format: 1\nversion: v1\n"}, "policy.file is not a JSON object"),
        ({"file": "[1, 2]"}, "policy.file is not a JSON object"),
        ({"file": '{"format": 1, "version": "v", "thresold": 0.5}'}, 'unknown key "thresold"'),
        ({"file": '{"format": 1}'}, 'needs "format" and "version"'),
        ({"file": '{"format": 2, "version": "v"}'}, "format 2 is not supported"),
        ({"file": POLICY_FILE.read_text(), "inline": GOOD}, "not both"),
        ({}, "policy.enabled needs a policy"),
    ],
)
def test_chart_refuses_a_bad_policy_file(policy, reason):
    import helm_python

    with pytest.raises(helm_python.HelmError, match=reason):
        render.render_chart({"policy": {"enabled": True, **policy}})


def test_chart_refuses_a_policy_it_would_ignore():
    import helm_python

    with pytest.raises(helm_python.HelmError, match="policy.enabled is false"):
        render.render_chart({"policy": {"file": POLICY_FILE.read_text()}})


def test_chart_switches_from_inline_to_file():
    """`helm upgrade --reuse-values --set policy.inline=null --set-file policy.file=...`."""
    values = values_of("policy")
    values["policy"].update(inline=None, file=POLICY_FILE.read_text())
    assert policy_config_map(chart_docs(values))["data"]["policy.json"] == POLICY_FILE.read_text()


def test_chart_ships_the_file_as_it_is():
    """--set-file policy.file=... : the ConfigMap holds the file's text, provenance and all."""
    docs = chart_docs({"policy": {"enabled": True, "file": POLICY_FILE.read_text()}})
    assert policy_config_map(docs)["data"]["policy.json"] == POLICY_FILE.read_text()


# ---- no drift between the chart and the overlay -----------------------------------------------


@pytest.mark.parametrize(("overlay", "chart"), PAIRS)
def test_chart_policy_equals_the_overlay(objects, overlay, chart):
    assert chart.removeprefix("chart-") in render.chart_variants()
    chart_kinds, overlay_kinds = by_kind(objects[chart]), by_kind(objects[overlay])
    # The chart renders a Job or a CronJob; the overlay both.
    assert set(overlay_kinds) - set(chart_kinds) <= {"Job", "CronJob"}
    assert {"ConfigMap", "InferenceService"} <= set(chart_kinds) <= set(overlay_kinds)
    for kind, docs in chart_kinds.items():
        assert docs == overlay_kinds[kind], kind


def test_policy_drift_check_notices_a_changed_policy(objects):
    values = values_of("policy")
    values["policy"]["inline"]["class_thresholds"]["billing"] = 0.85
    drifted = policy_config_map(chart_docs(values))
    assert comparable(drifted) != comparable(policy_config_map(objects["overlay-policy"]))


def test_chart_tells_where_the_policy_is():
    notes = render.render_chart(values_of("policy"))["kserve-kit/templates/NOTES.txt"]
    assert f"ConfigMap {NAME}" in notes and f"{MOUNT}/policy.json" in notes
    assert "Decision policy" not in render.render_chart({})["kserve-kit/templates/NOTES.txt"]


# ---- the component fits every overlay ----------------------------------------------------------


@pytest.mark.parametrize("overlay", [*render.OVERLAYS, *render.BATCH_OVERLAYS])
def test_component_fits_every_overlay(tmp_path, isvc_schema, overlay):
    """`components: [../../components/policy]` added to any overlay (after components/batch)
    builds, mounts the policy where there are pods to mount it, and stays valid."""
    import kubernetes_validate

    target = tmp_path / overlay
    target.mkdir()
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(render.MANIFESTS / "overlays" / overlay, target)],
        "components": [os.path.relpath(COMPONENT, target)],
    }
    (target / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    result = subprocess.run(
        [render.kubectl(), "kustomize", str(target)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    docs = render.documents(result.stdout)
    (isvc,) = inference_services(docs)
    errors = sorted(isvc_schema.iter_errors(isvc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
    kubernetes_validate.validate(policy_config_map(docs), "1.30.0", strict=True)
    places = pod_specs(docs)
    assert len(places) == (3 if overlay in render.BATCH_OVERLAYS else 1)
    for where, _, c in places:
        assert policy_file_of(where, c["args"]) == f"{MOUNT}/policy.json", where


def test_own_policy_component_replaces_the_example(tmp_path):
    """docs/deploy.md's way to keep a policy apart: a component after components/policy with a
    `behavior: replace` generator; the name, labels and mounts stay, the content is yours."""
    own = tmp_path / "my-policy"
    own.mkdir()
    mine = {**GOOD, "version": "mine-1", "threshold": 0.6}
    (own / "policy.json").write_text(json.dumps(mine))
    (own / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1alpha1",
                "kind": "Component",
                "configMapGenerator": [
                    {"name": NAME, "behavior": "replace", "files": ["policy.json"]}
                ],
            }
        )
    )
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(render.MANIFESTS / "overlays" / "batch", overlay)],
                "components": [os.path.relpath(COMPONENT, overlay), "../my-policy"],
            }
        )
    )
    result = subprocess.run(
        [render.kubectl(), "kustomize", str(overlay)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    config_map = policy_config_map(render.documents(result.stdout))
    assert config_map["metadata"]["name"] == NAME
    assert config_map["metadata"]["labels"]["app.kubernetes.io/part-of"] == "kserve-kit"
    assert json.loads(config_map["data"]["policy.json"]) == mine


# ---- the rendered files, laid out as the kubelet writes a ConfigMap volume ---------------------


def test_the_mounted_policy_reads_back(objects, tmp_path):
    """Through the kubelet's links, the file the args name holds the component's policy."""
    docs = objects["overlay-policy"]
    volume = write_config_map_volume(policy_config_map(docs), tmp_path / "policy")
    (isvc,) = inference_services(docs)
    policy_file = policy_file_of("transformer", container(isvc, "transformer")["args"])
    local = volume / PurePosixPath(policy_file).relative_to(MOUNT)
    assert json.loads(local.read_text()) == json.loads(POLICY_FILE.read_text())
