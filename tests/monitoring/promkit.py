"""Helpers of the monitoring tier: the kit's rules and dashboard as rendered, promtool, and a
real Prometheus server (Debian's package) started on a free port for the duration of a test."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "manifests"))

import render  # noqa: E402  (tests/manifests/render.py: kustomize and Helm's engine)

from tests.support.servers import LOOPBACK, Server, free_port  # noqa: E402

HERE = Path(__file__).resolve().parent
CHART_DASHBOARD = render.CHART / "dashboards" / "kserve-kit.json"
COMPONENT = render.MANIFESTS / "components" / "monitoring"
COMPONENT_DASHBOARD = COMPONENT / "kserve-kit.json"
# The chart with every monitoring object on and the default thresholds: what the kustomize
# component holds.
CHART_DEFAULTS = {"monitoring": {"rules": {"enabled": True}, "dashboard": {"enabled": True}}}
# Dashboard variables as the test substitutes them (All namespaces, the default others label).
# $__rate_interval: Grafana makes it at least four scrape intervals; the test scrapes every 1 s.
SUBSTITUTIONS = {
    "$__rate_interval": "30s",
    "$namespace": ".*",
    "$others_label": "others",
    "$transformer_job": ".*-transformer",
}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def skip_or_fail(reason: str) -> None:
    """Skip with the reason; in CI (CI=true) a missing prerequisite is a failure instead."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: required there)")
    pytest.skip(reason)


def tool(name: str) -> str:
    """Path of promtool or prometheus ($PROMTOOL / $PROMETHEUS, else PATH), or a skip."""
    found = os.environ.get(name.upper()) or shutil.which(name)
    if not found:
        skip_or_fail(
            f"{name} not found: apt-get install prometheus (Debian's package) or set {name.upper()}"
        )
    return found


def kustomize(path: Path) -> list[dict]:
    try:
        return render.documents(render.build_kustomization(path))
    except RuntimeError as exc:
        skip_or_fail(str(exc).splitlines()[0])


def chart(values: dict) -> list[dict]:
    return render.documents(render.chart_manifest(render.render_chart(values)))


def only(docs: list[dict], kind: str) -> dict:
    (found,) = [doc for doc in docs if doc["kind"] == kind]
    return found


def rules_file(rule: dict, directory: Path, name: str = "rules.yaml") -> Path:
    """The PrometheusRule's spec as a Prometheus rule file (what the operator writes)."""
    path = directory / name
    path.write_text(yaml.safe_dump(rule["spec"], sort_keys=False))
    return path


def rule_expressions(rule: dict) -> dict[str, str]:
    return {
        r.get("alert") or r["record"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]
    }


def dashboard_expressions(dashboard: dict) -> dict[str, str]:
    """'<panel title> / <refId>' -> PromQL, dashboard variables substituted."""
    out = {}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in SUBSTITUTIONS.items():
                expr = expr.replace(variable, value).replace("${" + variable[1:] + "}", value)
            assert "$" not in expr, f"unsubstituted variable in {expr}"
            out[f"{panel['title']} / {target['refId']}"] = expr
    return out


# A vector selector: a metric name not followed by "(" (a function), with its {matchers}
# (quoted values may hold any character).
_SELECTOR = re.compile(r'\b([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[^}"]|"(?:[^"\\]|\\.)*")*\})?(?!\s*\()')


def selectors(expr: str) -> list[str]:
    """The kit's vector selectors of an expression (metric{matchers}), to check each has data:
    the kit's metrics, KServe's request_* histograms and `up`."""
    stripped = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", " ", expr)
    found = []
    for match in _SELECTOR.finditer(stripped):
        name = match.group(1)
        if name.startswith(("kserve_kit_", "request_")) or name == "up":
            found.append(name + (match.group(2) or ""))
    return found


@dataclass
class Prometheus:
    """A real Prometheus server on a free port, scraping the given targets every second."""

    server: Server

    @property
    def url(self) -> str:
        return self.server.url

    def query(self, expr: str) -> list[dict]:
        """Instant query; raises with Prometheus' error when the expression is refused."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read())
        if body.get("status") != "success":
            raise AssertionError(f"{expr}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]["result"]

    def query_range(self, expr: str, start: float, end: float, step: float = 1) -> list[dict]:
        params = {"query": expr, "start": start, "end": end, "step": step}
        url = f"{self.url}/api/v1/query_range?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())["data"]["result"]

    def targets_up(self) -> dict[str, float]:
        return {r["metric"]["job"]: float(r["value"][1]) for r in self.query("up")}


@contextlib.contextmanager
def prometheus(jobs: dict[str, list[str]], directory: Path) -> Iterator[Prometheus]:
    """Start Prometheus scraping job -> [host:port, ...] every 1 s; stopped on exit. It is
    started, waited for (`/-/ready`) and stopped by the servers' own helper."""
    binary = tool("prometheus")
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": job, "metrics_path": "/metrics", "static_configs": [{"targets": t}]}
            for job, t in jobs.items()
        ],
    }
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    server = Server(
        name="prometheus",
        args=[
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'tsdb'}",
            f"--web.listen-address={LOOPBACK}:{port}",
            "--storage.tsdb.retention.time=1h",
            "--log.level=warn",
        ],
        http_port=port,
        grpc_port=0,  # none
        log_path=directory / "prometheus.log",
        ready_path="/-/ready",
        launcher=(binary,),
    )
    try:
        yield Prometheus(server.start().wait_ready(timeout_s=60))
    finally:
        server.stop()


def wait_for(predicate, timeout_s: float = 60, what: str = "condition"):
    """Poll `predicate` (returning a truthy value when done) with a short backoff."""
    deadline = time.monotonic() + timeout_s
    delay = 0.2
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)
