"""Render every kustomize overlay and every chart variant, offline, with the real tools.

Used by the tests in this folder and by `make manifests` (python tests/manifests/render.py out).
kustomize: `kubectl kustomize` (the kubectl in PATH or $KUBECTL). Helm: the Go engine embedded
in the PyPI package helm-python-sdk (Helm v4's own renderer, no helm binary needed).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
CHART = REPO / "charts" / "kserve-kit"
OVERLAYS = ("kind", "gpu", "knative", "keda")
# Overlays that add the batch Job and CronJob (components/batch) to kind and gpu; the chart's
# ci/<name>-values.yaml mirror them (tests/manifests/test_batch.py).
BATCH_OVERLAYS = {"batch": "batch", "batch-gpu": "batch-cron-gpu", "batch-sharded": "batch-sharded"}
# Overlays that add components/policy (the decision policy ConfigMap), each with the chart
# variants that mirror it: the policy inline and as --set-file text (test_policy.py).
POLICY_OVERLAYS = {"policy": ("policy", "policy-file")}
# Overlays that add components/monitoring (PrometheusRule and Grafana dashboard ConfigMap);
# tests/monitoring checks them against the chart's monitoring.* values.
MONITORING_OVERLAYS = ("monitoring",)
# Kustomizations that are built on their own (overlays plus the model and batch data volumes).
KUSTOMIZATIONS = {
    **{f"overlay-{name}": MANIFESTS / "overlays" / name for name in OVERLAYS},
    **{f"overlay-{name}": MANIFESTS / "overlays" / name for name in BATCH_OVERLAYS},
    **{f"overlay-{name}": MANIFESTS / "overlays" / name for name in POLICY_OVERLAYS},
    **{f"overlay-{name}": MANIFESTS / "overlays" / name for name in MONITORING_OVERLAYS},
    "kind-model-storage": MANIFESTS / "kind-model-storage",
    "batch-data-storage": MANIFESTS / "batch-data-storage",
}
# The chart is rendered as this release in this namespace.
RELEASE = "text-classifier"
NAMESPACE = "kserve-kit"


def kubectl() -> str:
    found = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if not found:
        raise RuntimeError("kubectl not found: install it or set KUBECTL (see versions.env)")
    return found


def chart_variants() -> dict[str, Path]:
    """ci/<variant>-values.yaml files of the chart, by variant name."""
    return {
        path.name.removesuffix("-values.yaml"): path
        for path in sorted((CHART / "ci").glob("*-values.yaml"))
    }


@functools.cache
def build_kustomization(path: Path) -> str:
    result = subprocess.run(
        [kubectl(), "kustomize", str(path)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {path} failed:\n{result.stderr}")
    return result.stdout


def load_values(path: Path | None) -> dict:
    if path is None:
        return {}
    return yaml.safe_load(path.read_text()) or {}


def render_chart(values: dict, *, namespace: str = NAMESPACE) -> dict[str, str]:
    """Template path -> rendered text (NOTES.txt included), as `helm template` would."""
    import helm_python

    chart = helm_python.Chart.load(str(CHART))
    return chart.render(values, name=RELEASE, namespace=namespace, is_install=True)


def chart_manifest(rendered: dict[str, str]) -> str:
    """The rendered templates as one multi-document YAML stream, NOTES.txt left out."""
    parts = []
    for template, text in sorted(rendered.items()):
        if template.endswith("NOTES.txt") or not text.strip():
            continue
        parts.append(f"# Source: {template}\n{text.strip()}\n")
    return "---\n".join(parts)


def documents(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


@functools.cache
def render_all() -> dict[str, str]:
    """Every variant's manifest: overlay-<name>, kind-model-storage, chart-<variant>."""
    out = {name: build_kustomization(path) for name, path in KUSTOMIZATIONS.items()}
    for variant, values_file in chart_variants().items():
        out[f"chart-{variant}"] = chart_manifest(render_chart(load_values(values_file)))
    return out


def write_all(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        target = directory / f"{name}.yaml"
        target.write_text(text)
        written.append(target)
    return written


def main(argv: list[str]) -> int:
    directory = Path(argv[1] if len(argv) > 1 else "out")
    for path in write_all(directory):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
