"""kserve_kit.tracing: off unless configured, W3C context in and out, and the batcher's spans."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import numpy as np
import pytest

from kserve_kit import tracing
from tests.support.servers import REPO

pytestmark = pytest.mark.unit

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


def traceparent(trace_id: str = CLIENT_TRACE, span_id: str = CLIENT_SPAN) -> str:
    return f"00-{trace_id}-{span_id}-01"


@pytest.fixture
def spans():
    """Tracing on, its spans kept in memory; off again afterwards."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    assert tracing.configure("predictor", processor=SimpleSpanProcessor(exporter))
    yield exporter
    tracing.shutdown()


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, []),
        ({"OTEL_TRACES_EXPORTER": "none"}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
        ({"OTEL_TRACES_EXPORTER": "otlp, console"}, ["otlp", "console"]),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}, []),
    ],
)
def test_tracing_is_on_only_when_an_exporter_is_configured(env, expected):
    assert tracing.exporters_from_env(env) == expected


@pytest.mark.parametrize(
    "env, says",
    [
        ({"OTEL_TRACES_EXPORTER": "jaeger"}, "unknown exporter jaeger"),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "http/protobuf"),
    ],
)
def test_a_setting_the_kit_cannot_serve_is_refused_with_its_reason(env, says):
    with pytest.raises(tracing.TracingConfigError, match=says):
        tracing.configure("transformer", env)


def test_off_nothing_is_traced_and_the_sdk_is_never_imported():
    code = (
        "import sys\n"
        "from kserve_kit import tracing\n"
        "import predictor.dynamic_batching, transformer.hop\n"
        "assert not tracing.configure('transformer', {})\n"
        "assert tracing.span('x') is tracing.server_span({'traceparent': 'y'})\n"
        "assert tracing.inject({}) == {} and tracing.start_span('x') is None\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_server_span_continues_the_callers_trace_and_inject_hands_it_on(spans):
    with tracing.server_span({"traceparent": traceparent()}, {"kserve_kit.model": "m"}):
        with tracing.span("predictor.hop", kind="client"):
            headers = tracing.inject({"x-request-id": "r1"})
    hop, root = spans.get_finished_spans()
    assert root.name == "predictor.infer" and root.kind.name == "SERVER"
    assert format(root.context.trace_id, "032x") == CLIENT_TRACE
    assert format(root.parent.span_id, "016x") == CLIENT_SPAN
    assert hop.parent.span_id == root.context.span_id
    assert headers["x-request-id"] == "r1"
    assert headers["traceparent"] == f"00-{CLIENT_TRACE}-{hop.context.span_id:016x}-01"


def test_one_forward_for_two_traces_links_both_requests(spans):
    from predictor.dynamic_batching import Batcher

    forwards = []

    def forward(ids, mask, types):
        forwards.append(ids.shape[0])
        return np.zeros((ids.shape[0], 3), dtype=np.float32)

    batcher = Batcher(forward, max_batch_size=8, max_delay_s=0.05)
    traces = ["1" * 32, "2" * 32]

    async def request(trace_id: str, rows: int):
        with tracing.server_span({"traceparent": traceparent(trace_id)}):
            return await batcher.infer(np.ones((rows, 4), np.int64), np.ones((rows, 4), np.int64))

    async def both():
        return await asyncio.gather(request(traces[0], 2), request(traces[1], 3))

    try:
        asyncio.run(both())
    finally:
        batcher.close()
    assert forwards == [5], "the two requests share one forward"
    finished = spans.get_finished_spans()
    by_name = {}
    for span in finished:
        by_name.setdefault(span.name, []).append(span)
    (shared,) = by_name["predictor.forward"]
    queues = by_name["predictor.queue"]
    roots = {s.context.span_id: s for s in by_name["predictor.infer"]}
    assert sorted(format(q.context.trace_id, "032x") for q in queues) == traces
    assert all(q.parent.span_id in roots for q in queues), "each wait is its request's child"
    assert sorted(link.context.span_id for link in shared.links) == sorted(
        q.context.span_id for q in queues
    )
    assert shared.parent.span_id in {q.context.span_id for q in queues}
    assert shared.attributes["kserve_kit.batch.rows"] == 5
    assert shared.attributes["kserve_kit.batch.requests"] == 2
    assert all(q.end_time <= shared.start_time for q in queues)


def test_a_server_with_an_exporter_it_lacks_stops_at_start_with_one_line(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "predictor", "--model_dir", str(tmp_path)],
        cwd=REPO,
        env={**os.environ, "OTEL_TRACES_EXPORTER": "jaeger"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines()[-1] == (
        "predictor: error: OTEL_TRACES_EXPORTER: unknown exporter jaeger; "
        "the kit has otlp, console or none"
    )
