"""Every PromQL expression of the dashboard and of the rules, against a real Prometheus server
(Debian's package) that scrapes the kit's real servers every second after a known mix of
traffic: REST and gRPC texts at several thresholds, refused requests, and a transformer whose
predictor is gone. And the others share Prometheus computes equals the one the answers show."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from promkit import (
    CHART_DASHBOARD,
    Prometheus,
    dashboard_expressions,
    kustomize,
    only,
    prometheus,
    render,
    rule_expressions,
    selectors,
    tool,
    wait_for,
)

from tests.support import servers
from tests.support.http import (
    grpc_arrays,
    grpc_infer,
    grpc_texts,
    infer_url,
    outputs,
    post,
    texts_body,
)

pytestmark = [pytest.mark.monitoring, pytest.mark.integration]

OTHERS = "others"
# The random tiny model is never sure (top probability near 1/3): the low thresholds answer a
# label, the high ones others.
THRESHOLDS = (0.01, 0.2, 0.3, 0.9, 0.95, 0.99)
WORDS = "parcel refund login crash invoice plan order screen email card box week".split()
PLOT_ROUNDS, PLOT_PACE_S = 20, 1.0
DASHBOARD = json.loads(CHART_DASHBOARD.read_text())
DASHBOARD_EXPRESSIONS = dashboard_expressions(DASHBOARD)


def texts(n: int, start: int = 0) -> list[str]:
    return [
        " ".join(WORDS[(i + k) % len(WORDS)] for k in range(1 + i % 5)) + f" {i}"
        for i in range(start, start + n)
    ]


def send_traffic(transformer, orphan, seen: dict) -> dict:
    """One round of the known mix; adds what the clients saw to `seen`: answered labels,
    refusals, 503s."""
    seen["rounds"] += 1
    for i, threshold in enumerate(THRESHOLDS * 3):
        status, body = post(
            infer_url(transformer),
            texts_body(texts(4, 4 * i), parameters={"confidence_threshold": threshold}),
        )
        assert status == 200, body
        seen["labels"] += outputs(body)["label"]["data"]
    for i, threshold in enumerate(THRESHOLDS):
        batch = [t.encode() for t in texts(3, 1000 + 3 * i)]
        code, response = grpc_infer(
            transformer.grpc_target, grpc_texts(batch, confidence_threshold=threshold)
        )
        assert code.name == "OK", response
        seen["labels"] += grpc_arrays(response)["label"].tolist()
    # Refused: a threshold outside (0, 1), an unknown model.
    for _ in range(3):
        status, _ = post(
            infer_url(transformer), texts_body(["x"], parameters={"confidence_threshold": 1.5})
        )
        seen["refused"].append(status)
    status, _ = post(infer_url(transformer, model="no-such-model"), texts_body(["x"]))
    seen["refused"].append(status)
    # A transformer without its predictor: 5xx, hop errors predictor_unavailable.
    for _ in range(3):
        status, _ = post(infer_url(orphan), texts_body(["where is my predictor"]))
        assert status >= 500
        seen["unavailable"] += 1
    return seen


def drift_reference(model_dir: Path, path: Path) -> Path:
    from kserve_kit.drift import Reference
    from kserve_kit.modeldir import ModelInfo

    labels = [*ModelInfo.load(model_dir).labels, OTHERS]
    answered = [labels[0]] * 80 + [OTHERS] * 20
    path.write_text(Reference.from_decisions(labels, answered, [0.97] * 100).to_json())
    return path


@pytest.fixture(scope="module")
def stack(tiny_model_dir, tmp_path_factory):
    """(Prometheus, what the clients saw, (start, end) of the traffic)."""
    tool("prometheus")
    logs = tmp_path_factory.mktemp("monitoring-logs")
    predictor = servers.predictor(tiny_model_dir, logs, extra=["--max_batch_size", "8"])
    # A drift reference unlike the traffic (as `make calibrate` would write it), and a window
    # the traffic fills: the drift gauges and the drift alert's condition have data.
    reference = drift_reference(tiny_model_dir, logs / "drift-reference.json")
    transformer = servers.transformer(
        tiny_model_dir,
        logs,
        predictor,
        extra=["--max_length", "32", "--drift_reference", str(reference), "--drift_window", "50"],
    )
    nowhere = servers.Server(
        "nowhere", [], servers.free_port(), servers.free_port(), logs / "nowhere.log"
    )
    orphan = servers.transformer(
        tiny_model_dir,
        logs,
        nowhere,
        name="transformer-orphan",
        extra=["--predictor_request_timeout_seconds", "2"],
    )
    jobs = {
        "text-classifier-predictor": [f"127.0.0.1:{predictor.http_port}"],
        "text-classifier-transformer": [
            f"127.0.0.1:{transformer.http_port}",
            f"127.0.0.1:{orphan.http_port}",
        ],
    }
    with servers.running(predictor, transformer, orphan):
        with prometheus(jobs, tmp_path_factory.mktemp("prometheus")) as prom:
            wait_for(lambda: len(prom.query("up == 1")) == 3, what="three targets up")
            start = time.time()
            seen = {"rounds": 0, "labels": [], "refused": [], "unavailable": 0}
            # One round; for the docs' picture (KIT_OBSERVABILITY_PLOT) a paced minute of them.
            plotting = bool(os.environ.get("KIT_OBSERVABILITY_PLOT"))
            for i in range(PLOT_ROUNDS if plotting else 1):
                if i:
                    time.sleep(PLOT_PACE_S * (1 + i % 3))
                send_traffic(transformer, orphan, seen)
            end = time.time()
            # Two scrapes after the last request: every counter holds its final value.
            wait_for(
                lambda: all(float(r["value"][1]) > end + 1.5 for r in prom.query("timestamp(up)")),
                what="a scrape after the traffic",
            )
            if plotting:
                plot(prom, start, time.time(), Path(os.environ["KIT_OBSERVABILITY_PLOT"]))
            yield prom, seen, (start, end)


def test_the_mix_has_both_kinds_of_answers(stack):
    _, seen, _ = stack
    labels = seen["labels"]
    rounds = seen["rounds"]
    assert len(labels) == rounds * (4 * 3 * len(THRESHOLDS) + 3 * len(THRESHOLDS))
    assert 0 < labels.count(OTHERS) < len(labels), labels
    assert seen["refused"] == [400, 400, 400, 404] * rounds


@pytest.mark.parametrize("name", sorted(DASHBOARD_EXPRESSIONS))
def test_dashboard_expression_returns_data(stack, name):
    prom: Prometheus = stack[0]
    expr = DASHBOARD_EXPRESSIONS[name]
    assert prom.query(expr), f"no data: {expr}"


RULES = rule_expressions(
    only(kustomize(render.MANIFESTS / "overlays" / "monitoring"), "PrometheusRule")
)


@pytest.mark.parametrize("alert", sorted(RULES))
def test_rule_expression_runs_and_its_series_exist(stack, alert):
    """Each alert's expression is accepted by Prometheus, and every series it reads (with its
    label matchers) is exported by the real servers; the threshold decides the rest."""
    prom: Prometheus = stack[0]
    prom.query(RULES[alert])
    for selector in selectors(RULES[alert]):
        assert prom.query(selector), f"{alert}: no series {selector}"


def test_the_orphans_hop_errors_are_counted(stack):
    prom, seen, _ = stack
    (errors,) = prom.query('sum(kserve_kit_hop_errors_total{error="predictor_unavailable"})')
    assert float(errors["value"][1]) == seen["unavailable"]


def test_the_drift_window_is_full_and_the_label_drift_shows(stack):
    prom: Prometheus = stack[0]
    full = prom.query("kserve_kit_drift_window_decisions >= kserve_kit_drift_window_size > 0")
    assert [float(r["value"][1]) for r in full] == [50]  # the orphan has no reference
    # The reference says 80 % of the first label at 0.97; the traffic is nothing like it.
    assert prom.query(RULES["KserveKitLabelDrift"])


def test_others_share_equals_the_answers(stack):
    prom, seen, _ = stack
    labels = seen["labels"]
    expected = labels.count(OTHERS) / len(labels)
    total = prom.query("sum(kserve_kit_decisions_total)")
    assert total and float(total[0]["value"][1]) == len(labels)
    (share,) = prom.query(
        'sum(kserve_kit_decisions_total{label="others"}) / sum(kserve_kit_decisions_total)'
    )
    assert float(share["value"][1]) == pytest.approx(expected, abs=1e-9)
    # Per label, the counters are the answers.
    per_label = {
        r["metric"]["label"]: float(r["value"][1])
        for r in prom.query("sum by (label) (kserve_kit_decisions_total)")
        if float(r["value"][1])  # every label's series starts at 0
    }
    assert per_label == {label: labels.count(label) for label in set(labels)}


def test_requests_are_counted_by_status_and_error(stack):
    prom, seen, _ = stack
    by = {
        (r["metric"]["code_class"], r["metric"]["error"]): float(r["value"][1])
        for r in prom.query(
            "sum by (code_class, error) "
            '(kserve_kit_requests_total{job="text-classifier-transformer"})'
        )
    }
    rounds = seen["rounds"]
    assert by[("4xx", "bad_input")] == 3 * rounds
    assert by[("4xx", "not_found")] == rounds
    assert by[("5xx", "predictor_unavailable")] == seen["unavailable"]
    assert by[("2xx", "none")] == rounds * (3 * len(THRESHOLDS) + len(THRESHOLDS))


def plot(prom: Prometheus, start: float, end: float, path: Path) -> None:
    """docs/img: a few of the dashboard's series as this test's Prometheus saw them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        (
            "Requests by status (per s)",
            "sum by (code_class) "
            '(rate(kserve_kit_requests_total{job="text-classifier-transformer"}[5s]))',
            "{code_class}",
        ),
        (
            "Decisions per label (per s)",
            "sum by (label) (rate(kserve_kit_decisions_total[5s])) > 0",
            "{label}",
        ),
        (
            "Transformer latency p50 (s)",
            "histogram_quantile(0.5, sum by (le) (rate(kserve_kit_request_seconds_bucket[5s])))",
            "p50",
        ),
        (
            "Predictor rows per forward (p50)",
            "histogram_quantile(0.5, sum by (le) "
            "(rate(kserve_kit_predictor_batch_rows_bucket[5s])))",
            "p50",
        ),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(11, 6), constrained_layout=True)
    for ax, (title, expr, legend) in zip(axes.flat, panels, strict=True):
        for series in prom.query_range(expr, start - 2, end, 0.5):
            xs = [float(t) - start for t, _ in series["values"]]
            ys = [float(v) for _, v in series["values"]]
            ax.plot(xs, ys, label=legend.format(**series["metric"]) if "{" in legend else legend)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("seconds into the test traffic")
        ax.legend(fontsize=8)
    fig.suptitle("kserve-kit metrics scraped by a real Prometheus (tests/monitoring)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
