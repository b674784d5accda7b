"""The transformer's metrics after known traffic: decisions by label, requests by protocol and
status class, the hop, and drift against a reference, read from its real `/metrics`."""

from __future__ import annotations

import re

import grpc
import pytest

from kserve_kit.drift import Reference, psi
from kserve_kit.modeldir import ModelInfo
from tests.support import servers
from tests.support.http import (
    get,
    grpc_arrays,
    grpc_infer,
    grpc_texts,
    infer_url,
    outputs,
    post,
    texts_body,
)

pytestmark = pytest.mark.integration

TEXTS = ["where is my parcel?", "nice weather today", "cancel it", "reset my password"]


def samples(server, name: str) -> dict[tuple, float]:
    """{sorted label pairs: value} of every sample called `name` on the server's /metrics."""
    status, text = get(f"{server.url}/metrics")
    assert status == 200
    found = {}
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match:
            labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', match.group(1) or "")))
            found[labels] = float(match.group(2))
    return found


def value(server, name: str, **labels) -> float:
    return sum(
        v for k, v in samples(server, name).items() if set(labels.items()) <= set(dict(k).items())
    )


@pytest.fixture
def observed_chain(tiny_model_dir, tmp_path):
    info = ModelInfo.load(tiny_model_dir)
    answered = [*info.labels, "others"]
    # A reference where every text is confidently "negative": the tiny random model is neither.
    reference = Reference(tuple(answered), (1.0, 0.0, 0.0, 0.0), (0.0,) * 9 + (1.0,), rows=100)
    (tmp_path / "drift-reference.json").write_text(reference.to_json())
    predictor = servers.predictor(tiny_model_dir, tmp_path)
    transformer = servers.transformer(
        tiny_model_dir,
        tmp_path,
        predictor,
        extra=[
            "--drift_reference",
            str(tmp_path / "drift-reference.json"),
            "--drift_window",
            "8",
            "--confidence_threshold",
            "0.36",  # the tiny model's top probabilities straddle it: labels and others
        ],
    )
    with servers.running(predictor, transformer):
        yield transformer, reference


def test_decisions_requests_hop_and_drift_are_counted(observed_chain):
    transformer, reference = observed_chain
    answers: list[str] = []
    confidences: list[float] = []
    for _ in range(3):
        status, body = post(infer_url(transformer), texts_body(TEXTS))
        assert status == 200
        answers += outputs(body)["label"]["data"]
        confidences += outputs(body)["confidence"]["data"]
    code, response = grpc_infer(transformer.grpc_target, grpc_texts([t.encode() for t in TEXTS]))
    assert code == grpc.StatusCode.OK
    arrays = grpc_arrays(response)
    answers += arrays["label"].tolist()
    confidences += arrays["confidence"].tolist()
    assert post(infer_url(transformer), texts_body([""]))[0] == 400
    assert post(infer_url(transformer, "no-such-model"), texts_body(TEXTS))[0] == 404
    code, _ = grpc_infer(transformer.grpc_target, grpc_texts([b"\xff"]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT

    for label in set(answers) | {"others"}:
        assert value(transformer, "kserve_kit_decisions_total", label=label) == answers.count(
            label
        ), label
    assert value(transformer, "kserve_kit_decision_confidence_count") == len(answers)
    assert value(transformer, "kserve_kit_requests_total", protocol="rest", code_class="2xx") == 3
    assert value(transformer, "kserve_kit_requests_total", protocol="grpc", code_class="2xx") == 1
    assert value(transformer, "kserve_kit_requests_total", code_class="4xx", error="bad_input") == 2
    assert value(transformer, "kserve_kit_requests_total", code_class="4xx", error="not_found") == 1
    assert value(transformer, "kserve_kit_request_seconds_count", protocol="rest") == 4
    assert value(transformer, "kserve_kit_hop_seconds_count") == 4
    assert value(transformer, "kserve_kit_hop_errors_total") == 0

    # The window holds the last 8 decisions: the second gRPC-and-REST halves of the traffic.
    assert value(transformer, "kserve_kit_drift_window_decisions") == 8
    assert value(transformer, "kserve_kit_drift_window_size") == 8
    window = Reference.from_decisions(reference.labels, answers[-8:], confidences[-8:])
    label_psi = value(transformer, "kserve_kit_drift_psi", dimension="label")
    assert label_psi == pytest.approx(psi(reference.label_shares, window.label_shares), rel=1e-6)
    confidence_psi = value(transformer, "kserve_kit_drift_psi", dimension="confidence")
    expected = psi(reference.confidence_shares, window.confidence_shares)
    assert confidence_psi == pytest.approx(expected, rel=1e-6)
    assert label_psi > 0.2  # the model is not the reference: the drift is seen


def test_the_hop_counts_an_unreachable_predictor(own_chain):
    transformer, predictor = own_chain
    predictor.stop()
    assert post(infer_url(transformer), texts_body(TEXTS))[0] == 503
    assert value(transformer, "kserve_kit_hop_errors_total", error="predictor_unavailable") == 1
    assert (
        value(
            transformer,
            "kserve_kit_requests_total",
            code_class="5xx",
            error="predictor_unavailable",
        )
        == 1
    )
