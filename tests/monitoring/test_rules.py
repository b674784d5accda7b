"""The kit's alerting rules as rendered (chart and kustomize): the PrometheusRule's structure,
`promtool check rules`, and `promtool test rules` (rules-test.yaml: for each alert, series that
fire it and series that do not)."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess

import jsonschema
import pytest
from promkit import (
    CHART_DEFAULTS,
    HERE,
    REPO,
    chart,
    kustomize,
    only,
    render,
    rule_expressions,
    rules_file,
    tool,
)

pytestmark = pytest.mark.monitoring

ALERTS = {
    "KserveKitOthersShareHigh",
    "KserveKitLabelDrift",
    "KserveKitErrorRatioHigh",
    "KserveKitLatencyP99High",
    "KserveKitPredictorUnavailable",
    "KserveKitPredictorDown",
    "KserveKitPolicyReloadFailing",
}
DURATION = {"type": "string", "pattern": "^([0-9]+(ms|s|m|h|d|w|y))+$"}
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
# prometheus-operator's PrometheusRule (monitoring.coreos.com/v1), the fields it defines; no
# CRD schema ships with the kit, so this is written from the operator's API reference.
PROMETHEUS_RULE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {
                    "type": "string",
                    "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
                    "maxLength": 253,
                },
                "labels": STRING_MAP,
                "annotations": STRING_MAP,
                "namespace": {"type": "string"},
            },
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["groups"],
            "properties": {
                "groups": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name", "rules"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": DURATION,
                            "query_offset": DURATION,
                            "limit": {"type": "integer"},
                            "partial_response_strategy": {"type": "string"},
                            "labels": STRING_MAP,
                            "rules": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["expr"],
                                    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                                    "properties": {
                                        "alert": {"type": "string"},
                                        "record": {"type": "string"},
                                        "expr": {"type": ["string", "integer"]},
                                        "for": DURATION,
                                        "keep_firing_for": DURATION,
                                        "labels": STRING_MAP,
                                        "annotations": STRING_MAP,
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


@pytest.fixture(scope="module")
def rules() -> dict[str, dict]:
    """Source -> PrometheusRule: the component, the chart at its defaults, ci/monitoring."""
    variant = render.load_values(render.chart_variants()["monitoring"])
    return {
        "overlay-monitoring": only(
            kustomize(render.MANIFESTS / "overlays" / "monitoring"), "PrometheusRule"
        ),
        "chart-defaults": only(chart(CHART_DEFAULTS), "PrometheusRule"),
        "chart-monitoring": only(chart(variant), "PrometheusRule"),
    }


SOURCES = ["overlay-monitoring", "chart-defaults", "chart-monitoring"]


def promtool(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [tool("promtool"), *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


@pytest.mark.parametrize("source", SOURCES)
def test_prometheus_rule_has_the_operators_structure(rules, source):
    validator = jsonschema.Draft7Validator(PROMETHEUS_RULE)
    errors = sorted(validator.iter_errors(rules[source]), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_structure_check_rejects_a_misspelt_field(rules):
    broken = copy.deepcopy(rules["overlay-monitoring"])
    broken["spec"]["groups"][0]["rules"][0]["fro"] = "10m"
    assert not jsonschema.Draft7Validator(PROMETHEUS_RULE).is_valid(broken)


@pytest.mark.parametrize("source", SOURCES)
def test_every_alert_has_for_severity_annotations_and_a_runbook(rules, source):
    docs = (REPO / "docs" / "observability.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in docs.splitlines()
        if line.startswith("#")
    }
    found = set()
    for group in rules[source]["spec"]["groups"]:
        for rule in group["rules"]:
            found.add(rule["alert"])
            assert "for" in rule, rule["alert"]
            assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
            assert {"summary", "description", "runbook_url"} <= set(rule["annotations"])
            anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
            assert anchor == rule["alert"].lower() and anchor in anchors, anchor
    assert found == ALERTS


def test_the_component_is_the_chart_at_its_defaults(rules):
    """manifests/components/monitoring/prometheusrule.yaml is the chart's rule, default values."""
    assert rules["overlay-monitoring"]["spec"] == rules["chart-defaults"]["spec"]


def test_values_set_the_thresholds_and_the_others_label(rules):
    exprs = rule_expressions(rules["chart-monitoring"])  # ci/monitoring-values.yaml
    assert exprs["KserveKitErrorRatioHigh"].rstrip().endswith("> 0.01")
    assert exprs["KserveKitLatencyP99High"].rstrip().endswith("> 0.25")
    assert 'label="unsure"' in exprs["KserveKitOthersShareHigh"]
    assert rules["chart-monitoring"]["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert "release" not in rules["chart-defaults"]["metadata"]["labels"]


@pytest.mark.parametrize(
    "bad", [{"othersShareThreshold": 1.5}, {"latencyP99Seconds": 0}, {"driftWindowDecisions": 10}]
)
def test_schema_refuses_bad_rule_values(bad):
    values = copy.deepcopy(CHART_DEFAULTS)
    values["monitoring"]["rules"].update(bad)
    with pytest.raises(Exception, match=r"(?i)schema|validat|monitoring"):
        chart(values)


@pytest.mark.parametrize("source", SOURCES)
def test_promtool_checks_the_rendered_rules(rules, source, tmp_path):
    result = promtool("check", "rules", str(rules_file(rules[source], tmp_path)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


@pytest.mark.parametrize("source", ["overlay-monitoring", "chart-defaults"])
def test_promtool_unit_tests_fire_and_do_not_fire(rules, source, tmp_path):
    rules_file(rules[source], tmp_path)
    shutil.copy(HERE / "rules-test.yaml", tmp_path)
    result = promtool("test", "rules", "rules-test.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_notice_a_changed_threshold(tmp_path):
    """The unit tests are sharp: at a 0.8 others threshold the 75 % case no longer fires."""
    values = copy.deepcopy(CHART_DEFAULTS)
    values["monitoring"]["rules"]["othersShareThreshold"] = 0.8
    rules_file(only(chart(values), "PrometheusRule"), tmp_path)
    shutil.copy(HERE / "rules-test.yaml", tmp_path)
    result = promtool("test", "rules", "rules-test.yaml", cwd=tmp_path)
    assert result.returncode != 0
    assert "KserveKitOthersShareHigh" in result.stdout + result.stderr


def test_service_monitors_scrape_both_servers_under_the_jobs_the_rules_read():
    """A ServiceMonitor's job is the Service's name, KServe's "<isvc>-<component>": the rules'
    job regexes take the transformer's and the predictor's apart."""
    variant = render.load_values(render.chart_variants()["monitoring"])
    docs = chart(variant)
    (isvc,) = [d for d in docs if d["kind"] == "InferenceService"]
    monitors = {
        d["spec"]["selector"]["matchLabels"]["component"]: d
        for d in docs
        if d["kind"] == "ServiceMonitor"
    }
    assert set(monitors) == {"predictor", "transformer"}
    values = render.load_values(render.CHART / "values.yaml")["monitoring"]["rules"]
    for component, other in (("predictor", "transformer"), ("transformer", "predictor")):
        service = f"{isvc['metadata']['name']}-{component}"
        assert monitors[component]["metadata"]["name"] == service
        assert re.fullmatch(values[f"{component}Job"], service)
        assert not re.fullmatch(values[f"{other}Job"], service)
