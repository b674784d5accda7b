"""The Grafana dashboard: one JSON file for the chart and the kustomize component, shipped as a
ConfigMap the Grafana sidecar picks up, with panels over every metric the kit exports."""

from __future__ import annotations

import copy
import json
import re

import pytest
from promkit import (
    CHART_DASHBOARD,
    CHART_DEFAULTS,
    COMPONENT_DASHBOARD,
    REPO,
    chart,
    dashboard_expressions,
    kustomize,
    render,
    selectors,
)

pytestmark = pytest.mark.monitoring

# What the dashboard must draw (issue 13): each metric in at least one panel.
DRAWN = {
    "kserve_kit_requests_total",
    "kserve_kit_request_seconds_bucket",
    "kserve_kit_hop_seconds_bucket",
    "kserve_kit_hop_errors_total",
    "kserve_kit_decisions_total",
    "kserve_kit_decision_confidence_bucket",
    "kserve_kit_drift_psi",
    "kserve_kit_drift_window_decisions",
    "kserve_kit_policy_reload_errors_total",
    "kserve_kit_predictor_batch_rows_bucket",
    "kserve_kit_predictor_batch_queue_seconds_bucket",
    "kserve_kit_predictor_inflight_requests",
    "request_predict_seconds_bucket",
    "up",
}


def dashboard() -> dict:
    return json.loads(CHART_DASHBOARD.read_text())


def config_maps() -> dict[str, dict]:
    variant = render.load_values(render.chart_variants()["monitoring"])
    pick = [
        d
        for d in chart(variant)
        if d["kind"] == "ConfigMap" and "dashboard" in d["metadata"]["name"]
    ]
    overlay = kustomize(render.MANIFESTS / "overlays" / "monitoring")
    return {
        "chart-monitoring": pick[0],
        "chart-defaults": next(d for d in chart(CHART_DEFAULTS) if d["kind"] == "ConfigMap"),
        "overlay-monitoring": next(d for d in overlay if d["kind"] == "ConfigMap"),
    }


@pytest.fixture(scope="module")
def maps() -> dict[str, dict]:
    return config_maps()


def test_the_component_ships_the_charts_file():
    """kustomize loads no file outside its folder: components/monitoring holds a copy."""
    assert COMPONENT_DASHBOARD.read_bytes() == CHART_DASHBOARD.read_bytes(), (
        f"cp {CHART_DASHBOARD.relative_to(REPO)} {COMPONENT_DASHBOARD.relative_to(REPO)}"
    )


@pytest.mark.parametrize("source", ["chart-monitoring", "chart-defaults", "overlay-monitoring"])
def test_config_map_carries_the_dashboard_and_the_sidecar_label(maps, source):
    import kubernetes_validate

    config_map = maps[source]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["kserve-kit.json"]) == dashboard()
    for version in kubernetes_versions():
        kubernetes_validate.validate(config_map, version, strict=True)


def test_chart_annotations_and_off_by_default(maps):
    assert maps["chart-monitoring"]["metadata"]["annotations"] == {"grafana_folder": "kserve-kit"}
    kinds = {d["kind"] for d in chart({})}
    assert not kinds & {"PrometheusRule", "ConfigMap"}, kinds
    values = copy.deepcopy(CHART_DEFAULTS)
    # Helm merges maps: a null drops the default label (a sidecar that selects another one).
    values["monitoring"]["dashboard"]["labels"] = {"dashboards": "kit", "grafana_dashboard": None}
    (config_map,) = [d for d in chart(values) if d["kind"] == "ConfigMap"]
    assert config_map["metadata"]["labels"]["dashboards"] == "kit"
    assert "grafana_dashboard" not in config_map["metadata"]["labels"]


def kubernetes_versions() -> list[str]:
    for line in (REPO / "versions.env").read_text().splitlines():
        if line.startswith("KUBERNETES_SCHEMA_VERSIONS"):
            return line.split("=", 1)[1].strip().split(",")
    raise AssertionError("versions.env has no KUBERNETES_SCHEMA_VERSIONS")


def test_panels_are_well_formed():
    board = dashboard()
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in board["templating"]["list"]}
    assert variables == {"datasource", "namespace", "others_label", "transformer_job"}
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"] and panel["description"], panel["title"]
        for target in panel["targets"]:
            used = set(re.findall(r"\$(\w+)", target["expr"])) - {"__rate_interval"}
            assert used <= variables, (panel["title"], used)
            assert "[$__rate_interval]" in target["expr"] or "rate(" not in target["expr"]
    # Panels do not overlap on Grafana's 24-column grid.
    cells = set()
    for panel in board["panels"]:
        g = panel["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, panel["title"]
                cells.add((x, y))
        assert g["x"] + g["w"] <= 24


def test_every_metric_is_drawn():
    drawn = {
        s.split("{")[0]
        for expr in dashboard_expressions(dashboard()).values()
        for s in selectors(expr)
    }
    assert DRAWN <= drawn, DRAWN - drawn
