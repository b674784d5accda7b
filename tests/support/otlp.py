"""A tiny OTLP/HTTP trace collector for tests: decodes the servers' protobuf exports in memory.

`with collector() as c:` listens on a free 127.0.0.1 port; point a server at it with
`c.env` (OTEL_TRACES_EXPORTER=otlp, OTEL_EXPORTER_OTLP_ENDPOINT, a short export delay), then read
`c.spans` or wait for a trace with `c.wait_for(trace_id, names)`.
"""

from __future__ import annotations

import contextlib
import gzip
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str  # "" for a trace's root
    attributes: dict
    links: tuple[tuple[str, str], ...]  # (trace id, span id) of each link


@dataclass
class Collector:
    port: int = 0
    decode: bool = True  # False: only count exports and bytes (the bench's sink)
    spans: list[Span] = field(default_factory=list)
    exports: int = 0
    bytes_received: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def env(self) -> dict[str, str]:
        return {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{self.port}",
            "OTEL_BSP_SCHEDULE_DELAY": "50",
        }

    def add(self, body: bytes) -> None:
        with self._lock:
            self.exports += 1
            self.bytes_received += len(body)
        if not self.decode:
            return
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        request = ExportTraceServiceRequest.FromString(body)
        found = []
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for s in scope_spans.spans:
                    found.append(
                        Span(
                            service=resource.get("service.name", ""),
                            name=s.name,
                            kind=s.kind,
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_span_id=s.parent_span_id.hex(),
                            attributes=_attributes(s.attributes),
                            links=tuple((k.trace_id.hex(), k.span_id.hex()) for k in s.links),
                        )
                    )
        with self._lock:
            self.spans.extend(found)

    def trace(self, trace_id: str) -> list[Span]:
        with self._lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def wait_for(self, trace_id: str, names: Iterable[str], timeout_s: float = 15) -> list[Span]:
        """The trace's spans once every one of `names` has arrived; AssertionError if not."""
        wanted = set(names)
        deadline = time.monotonic() + timeout_s
        while True:
            spans = self.trace(trace_id)
            missing = wanted - {s.name for s in spans}
            if not missing:
                return spans
            if time.monotonic() > deadline:
                raise AssertionError(f"trace {trace_id}: no {sorted(missing)} in {spans}")
            time.sleep(0.05)


def _attributes(pairs) -> dict:
    out = {}
    for kv in pairs:
        kind = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, kind) if kind else None
    return out


@contextlib.contextmanager
def collector(decode: bool = True) -> Iterator[Collector]:
    sink = Collector(decode=decode)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path == "/v1/traces":
                sink.add(body)
                self.send_response(200)
            else:
                self.send_response(404)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sink.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
