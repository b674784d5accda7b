"""OpenTelemetry tracing for both servers: off unless an exporter is configured.

Configured only by OpenTelemetry's standard environment variables, read once at start
(`configure()`, called by `kserve_kit.cli.load_and_serve`):

- `OTEL_TRACES_EXPORTER`: `otlp` (OTLP over HTTP/protobuf), `console` (each finished span as JSON
  on stdout, the server's log), both comma-separated, or `none`. Unset, tracing is on with
  `otlp` only when an OTLP endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT` or
  `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), else off.
- `OTEL_SERVICE_NAME` (default `kserve-kit-transformer` / `kserve-kit-predictor`),
  `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`,
  `OTEL_PROPAGATORS` (default W3C `tracecontext,baggage`), `OTEL_BSP_*`, `OTEL_EXPORTER_OTLP_*`
  and `OTEL_SDK_DISABLED`: as the OpenTelemetry SDK reads them.

Off, nothing of the SDK is imported and each helper below returns at its first line: no tracer
provider, no context extraction, no headers added.

The W3C trace context travels client -> transformer -> predictor in the `traceparent` and
`tracestate` HTTP headers or gRPC metadata keys: `server_span()` extracts it from the headers
KServe hands the data plane (REST headers, or gRPC invocation metadata), `inject()` adds the
current span's to the hop's headers.

The kit's provider is its own, not OpenTelemetry's global one: FastAPI (0.165) traces its HTTP
requests natively as soon as a global provider is set, which would give REST requests, and only
them, a second server span and per-request dependency spans at a cost in CPU. The kit's
`<role>.infer` span serves REST and gRPC alike.

The helpers take and return opaque span objects so that callers (`transformer/`, the predictor's
batcher) never import OpenTelemetry.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
from collections.abc import Mapping, Sequence

logger = logging.getLogger("kserve_kit.tracing")

EXPORTERS = ("otlp", "console")
SERVICE_NAMES = {
    "transformer": "kserve-kit-transformer",
    "predictor": "kserve-kit-predictor",
}

_tracer = None  # an opentelemetry Tracer while tracing is on, else None
_role = "server"  # the spans' prefix: transformer, predictor
_provider = None
_NOOP = contextlib.nullcontext()


class TracingConfigError(ValueError):
    """An OTEL_* setting the kit cannot serve; the server does not start."""


def exporters_from_env(env: Mapping[str, str]) -> list[str]:
    """The span exporters the environment asks for; [] leaves tracing off."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    raw = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not raw:
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        return ["otlp"] if endpoint else []
    names = [n.strip() for n in raw.split(",") if n.strip() and n.strip() != "none"]
    unknown = sorted(set(names) - set(EXPORTERS))
    if unknown:
        raise TracingConfigError(
            f"OTEL_TRACES_EXPORTER: unknown exporter {', '.join(unknown)}; "
            f"the kit has {', '.join(EXPORTERS)} or none"
        )
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    if "otlp" in names and protocol.strip() != "http/protobuf":
        raise TracingConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: the kit exports OTLP as http/protobuf "
            "only (port 4318 on a collector)"
        )
    return list(dict.fromkeys(names))


def configure(role: str, env: Mapping[str, str] | None = None, processor=None) -> bool:
    """Start tracing when the environment configures an exporter; True when it is on.

    `role` names the server (`transformer`, `predictor`): the default service name and the
    spans' prefix. `processor`: a span processor to use instead of the exporters (tests).
    """
    global _tracer, _provider, _role
    env = os.environ if env is None else env
    names = exporters_from_env(env) if processor is None else ["(given)"]
    if not names:
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAMES.get(role, role)}))
    provider = TracerProvider(resource=resource)  # the sampler: OTEL_TRACES_SAMPLER
    for each in [processor] if processor is not None else _processors(names):
        provider.add_span_processor(each)
    if _provider is not None:
        _provider.shutdown()
    _provider, _role = provider, role
    _tracer = provider.get_tracer("kserve_kit")
    atexit.register(provider.shutdown)
    logger.info("tracing on: %s, exporters %s", resource.attributes["service.name"], names)
    return True


def _processors(names: Sequence[str]) -> list:
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    out = []
    for name in names:
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            out.append(BatchSpanProcessor(OTLPSpanExporter()))
        else:  # console: written when each span ends, so a log shows it at once
            out.append(SimpleSpanProcessor(ConsoleSpanExporter()))
    return out


def shutdown() -> None:
    """Flush and stop; tracing is off afterwards."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


def enabled() -> bool:
    return _tracer is not None


def _kind(name: str):
    from opentelemetry.trace import SpanKind

    return getattr(SpanKind, name.upper())


def server_span(headers: Mapping[str, str] | None, attributes: dict | None = None):
    """A context manager: the server's span for one request, `<role>.infer`, a child of the
    caller's span when `headers` carry a W3C trace context, else a new trace's root."""
    if _tracer is None:
        return _NOOP
    from opentelemetry import propagate

    parent = propagate.extract(headers or {})
    return _tracer.start_as_current_span(
        f"{_role}.infer", context=parent, kind=_kind("server"), attributes=attributes
    )


def span(name: str, attributes: dict | None = None, kind: str = "internal"):
    """A context manager: a child span of the current one, the current span inside it.
    Yields the span (None when tracing is off), which `set_attributes` accepts."""
    if _tracer is None:
        return _NOOP
    return _tracer.start_as_current_span(name, kind=_kind(kind), attributes=attributes)


def set_attributes(span_, attributes: dict) -> None:
    if span_ is not None:
        span_.set_attributes(attributes)


def inject(headers: dict) -> dict:
    """`headers` with the current span's `traceparent` (and `tracestate`) added."""
    if _tracer is not None:
        from opentelemetry import propagate

        propagate.inject(headers)
    return headers


def start_span(name: str, attributes: dict | None = None):
    """A child of the current span, started now and ended by `end_span` (possibly in another
    thread); None when tracing is off."""
    if _tracer is None:
        return None
    return _tracer.start_span(name, attributes=attributes)


def end_span(span_) -> None:
    if span_ is not None:
        span_.end()


def batch_span(name: str, members: Sequence, attributes: dict | None = None):
    """A context manager: the span of work shared by several requests (one forward for a
    batch), a child of the first member's trace and linked to every member (the spans from
    `start_span`), so that each request's trace reaches it. Off, or no traced member: nothing."""
    if _tracer is None or all(m is None for m in members):
        return _NOOP
    from opentelemetry import trace

    traced = [m for m in members if m is not None]
    return _tracer.start_as_current_span(
        name,
        context=trace.set_span_in_context(traced[0]),
        links=[trace.Link(m.get_span_context()) for m in traced],
        attributes=attributes,
    )
