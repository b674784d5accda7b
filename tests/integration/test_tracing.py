"""One request, one trace: client -> transformer -> predictor, over the gRPC and the REST hop,
from a REST and a gRPC client.

The real servers export OTLP/HTTP to a collector the test runs (tests/support/otlp.py); the
client sends a W3C `traceparent`, and the spans the servers export must form one tree under it.
"""

from __future__ import annotations

import json
import secrets
import urllib.request

import grpc
import pytest

from tests.support import otlp, servers
from tests.support.http import grpc_infer, grpc_texts, infer_url, outputs, texts_body

pytestmark = pytest.mark.integration

TRANSFORMER_SPANS = ("decode", "tokenize", "hop", "decide")
SERVER, CLIENT = 2, 3  # OTLP's SpanKind values


@pytest.fixture(scope="module")
def traced(tiny_model_dir, tmp_path_factory):
    """The collector, one predictor, and a transformer per hop protocol, all tracing."""
    logs = tmp_path_factory.mktemp("logs-tracing")
    with otlp.collector() as sink:
        predictor = servers.predictor(tiny_model_dir, logs)
        predictor.env.update(sink.env)
        transformers = {}
        for protocol in ("grpc-v2", "v2"):
            t = servers.transformer(
                tiny_model_dir, logs, predictor, protocol=protocol, name=f"transformer-{protocol}"
            )
            t.env.update(sink.env)
            transformers[protocol] = t
        with servers.running(predictor, *transformers.values()):
            yield sink, transformers


def send(transformer, client: str, traceparent: str) -> None:
    """Two texts to the transformer over REST or gRPC, with the client's trace context."""
    if client == "rest":
        request = urllib.request.Request(
            infer_url(transformer),
            data=json.dumps(texts_body(["good", "bad"])).encode(),
            headers={"Content-Type": "application/json", "traceparent": traceparent},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
            assert len(outputs(json.loads(response.read()))["label"]["data"]) == 2
    else:
        code, response = grpc_infer(
            transformer.grpc_target,
            grpc_texts([b"good", b"bad"]),
            metadata=(("traceparent", traceparent),),
        )
        assert code == grpc.StatusCode.OK, response


@pytest.mark.parametrize("client", ["rest", "grpc"], ids=["rest-client", "grpc-client"])
@pytest.mark.parametrize("protocol", ["grpc-v2", "v2"], ids=["grpc-hop", "rest-hop"])
def test_one_request_gives_one_trace_through_both_servers(traced, protocol, client):
    sink, transformers = traced
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    send(transformers[protocol], client, f"00-{trace_id}-{client_span}-01")

    names = [f"transformer.{n}" for n in ("infer", *TRANSFORMER_SPANS)]
    names += ["predictor.infer", "predictor.queue", "predictor.forward"]
    spans = sink.wait_for(trace_id, names)
    by_name = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    assert all(len(found) == 1 for found in by_name.values()), spans
    one = {name: found[0] for name, found in by_name.items()}

    root = one["transformer.infer"]
    assert (root.service, root.kind) == ("kserve-kit-transformer", SERVER)
    assert root.parent_span_id == client_span, "the client's span is the transformer's parent"
    for name in TRANSFORMER_SPANS:
        assert one[f"transformer.{name}"].parent_span_id == root.span_id, name
    hop = one["transformer.hop"]
    assert hop.kind == CLIENT
    assert hop.attributes["kserve_kit.predictor_protocol"] == protocol

    served = one["predictor.infer"]
    assert (served.service, served.kind) == ("kserve-kit-predictor", SERVER)
    assert served.parent_span_id == hop.span_id, "the predictor's span is the hop's child"
    queue, forward = one["predictor.queue"], one["predictor.forward"]
    assert queue.parent_span_id == served.span_id
    assert forward.parent_span_id == queue.span_id
    assert (trace_id, queue.span_id) in forward.links
    assert forward.attributes["kserve_kit.batch.rows"] == 2
    assert one["transformer.decode"].attributes["kserve_kit.texts"] == 2
    assert {s.trace_id for s in spans} == {trace_id}
