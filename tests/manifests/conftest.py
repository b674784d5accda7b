"""Fixtures of the manifests tier: rendered variants, KServe's CRD schemas made strict."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
import render
import yaml

from tests.support.configmap import ConfigMapVolume

REPO = render.REPO
# InferenceService fields that are KServe's, not the PodSpec's (dropped to derive pods).
ISVC_COMPONENT_FIELDS = {
    "minReplicas",
    "maxReplicas",
    "scaleMetric",
    "scaleMetricType",
    "scaleTarget",
    "timeout",
    "canaryTrafficPercent",
    "containerConcurrency",
    "autoScaling",
    "batcher",
    "logger",
    "deploymentStrategy",
    "annotations",
    "labels",
    "storageUris",
    "workerSpec",
}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def demo_model() -> Path:
    """The demo model directory (`make model`); missing is a skip here and a failure in CI."""
    path = Path(os.environ.get("MODEL_DIR", REPO / "models" / "demo"))
    if not (path / "config.json").is_file():
        if in_ci():
            pytest.fail(f"no demo model at {path} (make model builds it)")
        pytest.skip(f"no demo model at {path}: run `make model`")
    return path.resolve()


def skip_or_fail(reason: str) -> None:
    """Skip with the reason; in CI (CI=true) a missing prerequisite is a failure instead."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: required there)")
    pytest.skip(reason)


def crds_dir() -> Path | None:
    """$KSERVE_CRDS_DIR, else ../shared/kserve/crds beside the repo, else .cache/crds."""
    candidates = [os.environ.get("KSERVE_CRDS_DIR")]
    candidates += [str(REPO.parent / "shared" / "kserve" / "crds"), str(REPO / ".cache" / "crds")]
    for candidate in candidates:
        if candidate and (Path(candidate) / "serving.kserve.io_inferenceservices.yaml").is_file():
            return Path(candidate)
    return None


def make_strict(schema):
    """Copy of an openAPIV3Schema where an object that lists properties accepts no others,
    unless it says x-kubernetes-preserve-unknown-fields or sets additionalProperties."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


@pytest.fixture(scope="session")
def rendered() -> dict[str, str]:
    """Variant name -> rendered multi-document YAML (overlays, model storage, chart ci/*)."""
    return render.render_all()


@pytest.fixture(scope="session")
def objects(rendered) -> dict[str, list[dict]]:
    return {name: render.documents(text) for name, text in rendered.items()}


@pytest.fixture(scope="session")
def isvc_schema():
    """Strict validator of serving.kserve.io/v1beta1 InferenceService from KServe's CRD."""
    import jsonschema

    directory = crds_dir()
    if directory is None:
        skip_or_fail(
            "KServe CRDs not found: set KSERVE_CRDS_DIR, put them in ../shared/kserve/crds, "
            "or run `make crds`"
        )
    crd = yaml.safe_load((directory / "serving.kserve.io_inferenceservices.yaml").read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1"]
    schema = make_strict(version["schema"]["openAPIV3Schema"])
    return jsonschema.Draft7Validator(schema)


def inference_services(docs: list[dict]) -> list[dict]:
    return [doc for doc in docs if doc["kind"] == "InferenceService"]


def only(docs: list[dict], kind: str) -> dict:
    (found,) = [doc for doc in docs if doc["kind"] == kind]
    return found


def container(isvc: dict, component: str) -> dict:
    containers = isvc["spec"][component]["containers"]
    assert containers[0]["name"] == "kserve-container", "KServe expects kserve-container first"
    return containers[0]


def derived_pods(isvc: dict) -> list[dict]:
    """The pods KServe makes of each component (its labels, the component's PodSpec fields),
    so that checkov and the Kubernetes schemas see the containers the kit really runs."""
    pods = []
    for component in ("predictor", "transformer"):
        if component not in isvc["spec"]:
            continue
        spec = {k: v for k, v in isvc["spec"][component].items() if k not in ISVC_COMPONENT_FIELDS}
        labels = dict(isvc["metadata"].get("labels", {}))
        labels.update(
            {"serving.kserve.io/inferenceservice": isvc["metadata"]["name"], "component": component}
        )
        pods.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"{isvc['metadata']['name']}-{component}", "labels": labels},
                "spec": copy.deepcopy(spec),
            }
        )
    return pods


def write_config_map_volume(config_map: dict, directory: Path) -> Path:
    """The ConfigMap mounted at `directory` as the kubelet lays it out; returns `directory`."""
    return ConfigMapVolume(directory).publish(config_map.get("data", {}))


def comparable(doc: dict) -> dict:
    """What must agree between a chart render and an overlay: spec and annotations (names
    differ where the chart has one batch object, <name>-batch); for a ConfigMap, its name (pods
    mount it by name) and its parsed data."""
    annotations = doc["metadata"].get("annotations", {})
    if doc["kind"] == "ConfigMap":
        data = {k: _parsed(v) for k, v in doc.get("data", {}).items()}
        return {"name": doc["metadata"]["name"], "annotations": annotations, "data": data}
    return {"annotations": annotations, "spec": copy.deepcopy(doc["spec"])}


def _parsed(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def by_kind(docs: list[dict]) -> dict[str, list[dict]]:
    """The comparable form of each object by kind, the helm test pod left out."""
    out: dict[str, list[dict]] = {}
    for doc in docs:
        if doc["metadata"].get("annotations", {}).get("helm.sh/hook"):
            continue
        out.setdefault(doc["kind"], []).append(comparable(doc))
    return out
