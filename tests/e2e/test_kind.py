"""End to end on a real cluster: the kind overlay with `kubectl apply -k`, then the chart with
`helm install` and `helm test`; V2 REST through a port-forward to the transformer's Service.

Needs: make kind-up kserve-install kind-load model-upload (then `make e2e` runs this).
"""

from __future__ import annotations

import pytest

from kserve_kit import client

from .conftest import REPO, port_forward

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

ISVC = "text-classifier"
MODEL_NAME = "text-classifier"
BILLING = "I was charged twice for my subscription this month"
RECIPE = "Preheat the oven to 180 degrees and whisk the eggs with sugar until fluffy."


def check_serving(cluster) -> None:
    with port_forward(cluster, f"{ISVC}-transformer") as url:
        answers = client.classify_rest(url, [BILLING, RECIPE], model_name=MODEL_NAME, timeout_s=120)
    assert [a.label for a in answers] == ["billing", "others"]
    assert answers[0].confidence >= 0.9


def test_kustomize_kind_overlay_serves_v2(cluster):
    overlay = str(REPO / "manifests" / "overlays" / "kind")
    cluster.kubectl("apply", "-k", overlay)
    try:
        cluster.wait_isvc_ready(ISVC)
        check_serving(cluster)
    finally:
        cluster.kubectl("delete", "-k", overlay, "--ignore-not-found", "--wait=true", check=False)


def test_helm_install_and_helm_test(cluster):
    release = "kserve-kit-e2e"
    chart = str(REPO / "charts" / "kserve-kit")
    cluster.helm(
        "upgrade",
        "--install",
        release,
        chart,
        "-f",
        str(REPO / "charts" / "kserve-kit" / "ci" / "kind-values.yaml"),
    )
    try:
        cluster.wait_isvc_ready(ISVC)
        result = cluster.helm("test", release, "--logs", check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "label:" in result.stdout
        check_serving(cluster)
    finally:
        cluster.helm("uninstall", release, "--wait", check=False)
