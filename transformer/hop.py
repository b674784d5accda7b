"""The hop from the transformer to the predictor, over gRPC (binary tensors) or REST (JSON).

KServe's own forwarding would turn a dead predictor into a 500. This client turns each failure
into the error a client should see: unreachable -> 503 naming the predictor, too slow -> 504,
a request the predictor refused -> 400 with the predictor's reason. The gRPC channel reconnects
within about a second once the predictor is back, so nothing needs restarting.

Across many predictor pods (transformer/balancing.py): calls go round-robin over every address
`--predictor_host` resolves to, and a hop refused before the predictor did the work is sent
again to the next one, within the request's deadline and a retry budget.
"""

from __future__ import annotations

import time

import grpc
import httpx
from kserve import InferRequest, InferResponse
from kserve.inference_client import InferenceGRPCClient, InferenceRESTClient, RESTConfig

from kserve_kit import tracing
from kserve_kit.cli import DEFAULT_MAX_REQUEST_BYTES
from kserve_kit.errors import (
    BadInput,
    PredictorFailed,
    PredictorTimeout,
    PredictorUnavailable,
    ServingError,
    TooLarge,
)
from kserve_kit.metrics import error_kind
from transformer.balancing import (
    MAX_RECONNECT_BACKOFF_MS,  # noqa: F401 - named by tests/integration/test_faults.py
    RECONNECT_BACKOFF_MS,  # noqa: F401
    RestEndpoints,
    RetryPolicy,
    grpc_channel_args,
)
from transformer.metrics import HOP_ERRORS, HOP_SECONDS

FORWARDED_HEADERS = ("x-request-id", "x-b3-traceid", "authorization")


class PredictorClient:
    def __init__(
        self,
        host: str,
        protocol: str,
        model_name: str,
        timeout_s: float,
        retries: int = 0,
        max_message_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        retry: RetryPolicy | None = None,
        load_balancing: str = "round_robin",
    ):
        self.host = host
        self.protocol = protocol
        self.model_name = model_name
        self.timeout_s = timeout_s
        self._retries = retries
        self._max_message_bytes = max_message_bytes
        self._grpc: InferenceGRPCClient | None = None
        self._rest: InferenceRESTClient | None = None
        # The hop span's (kserve_kit.tracing): which predictor, over which protocol.
        self.span_attributes = {
            "rpc.system": "grpc" if protocol == "grpc-v2" else "http",
            "server.address": host,
            "kserve_kit.predictor_protocol": protocol,
        }
        self.retry = retry or RetryPolicy(attempts=1 + retries)
        self.load_balancing = load_balancing
        self.endpoints = RestEndpoints(host)

    def _grpc_client(self) -> InferenceGRPCClient:
        # Made on first use: a grpc.aio channel belongs to the event loop that creates it.
        if self._grpc is None:
            self._grpc = InferenceGRPCClient(
                self.host,
                timeout=self.timeout_s,
                retries=0,  # self.retry retries, over both hops
                channel_args=grpc_channel_args(self._max_message_bytes, self.load_balancing),
            )
        return self._grpc

    def _rest_client(self) -> InferenceRESTClient:
        if self._rest is None:
            self._rest = InferenceRESTClient(
                RESTConfig(protocol="v2", timeout=self.timeout_s, retries=self._retries)
            )
        return self._rest

    async def infer(self, request: InferRequest, headers: dict | None) -> InferResponse:
        started = time.perf_counter()
        try:
            return await self._infer(request, headers)
        except ServingError as exc:
            HOP_ERRORS.labels(error_kind(exc)).inc()
            raise
        finally:
            HOP_SECONDS.labels(self.protocol).observe(time.perf_counter() - started)

    async def _infer(self, request: InferRequest, headers: dict | None) -> InferResponse:
        forwarded = {k: v for k, v in (headers or {}).items() if k.lower() in FORWARDED_HEADERS}
        tracing.inject(forwarded)  # traceparent/tracestate of the hop span, when tracing is on

        async def attempt(timeout_s: float) -> InferResponse:
            return await self._infer_once(request, forwarded, timeout_s)

        return await self.retry.run(attempt, self.timeout_s)

    async def _infer_once(
        self, request: InferRequest, forwarded: dict, timeout_s: float
    ) -> InferResponse:
        url = None
        try:
            if self.protocol == "grpc-v2":
                return await self._grpc_client().infer(
                    request, timeout=timeout_s, headers=tuple(forwarded.items()) or None
                )
            url = await self.endpoints.pick()
            return await self._rest_client().infer(
                url,
                model_name=self.model_name,
                data=request,
                headers=forwarded,
                timeout=timeout_s,
            )
        except grpc.RpcError as exc:
            raise self._from_grpc(exc) from None
        except httpx.HTTPError as exc:
            if url is not None and isinstance(exc, httpx.TransportError):
                self.endpoints.mark_down(url)
            raise self._from_http(exc) from None

    async def ready(self, timeout_s: float = 1.0) -> bool:
        """Whether at least one predictor endpoint is ready (the transformer's readiness with
        --enable_predictor_health_check). gRPC asks the balanced channel a few times, which
        sends each ask to the next endpoint it can reach; REST asks each address in turn."""
        if self.protocol == "grpc-v2":
            asks = [
                lambda: self._grpc_client().is_model_ready(self.model_name, timeout=timeout_s)
            ] * 3
        else:
            asks = [
                lambda url=url: self._rest_client().is_model_ready(
                    url, self.model_name, timeout=timeout_s
                )
                for url in await self.endpoints.urls()
            ]
        for ask in asks:
            try:
                if await ask():
                    return True
            except (grpc.RpcError, httpx.HTTPError):
                continue
        return False

    def _from_grpc(self, exc: grpc.RpcError) -> ServingError:
        code, details = exc.code(), exc.details() or ""
        if code == grpc.StatusCode.UNAVAILABLE:
            return PredictorUnavailable(self.host, details or "connection refused")
        if code == grpc.StatusCode.CANCELLED:
            # The predictor's server cancels calls it received but never started when it shuts
            # down (SIGTERM): not processed, so safe to retry, like any other refusal.
            return PredictorUnavailable(self.host, "it cancelled the call (shutting down)")
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return PredictorTimeout(self.host, self.timeout_s)
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return BadInput(f"the predictor refused the tensors: {details}")
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            return TooLarge(f"the predictor refused the request size: {details}")
        if code == grpc.StatusCode.NOT_FOUND:
            return PredictorFailed(self.host, f"it does not serve model {self.model_name!r}")
        return PredictorFailed(self.host, f"{code.name}: {details}")

    def _from_http(self, exc: httpx.HTTPError) -> ServingError:
        if isinstance(exc, httpx.TimeoutException):
            return PredictorTimeout(self.host, self.timeout_s)
        if isinstance(exc, httpx.TransportError):
            return PredictorUnavailable(self.host, str(exc) or type(exc).__name__)
        if isinstance(exc, httpx.HTTPStatusError):
            status = exc.response.status_code
            reason = _error_text(exc.response)
            if status == 413:
                return TooLarge(f"the predictor refused the request size: {reason}")
            if 400 <= status < 500 and status != 404:
                return BadInput(f"the predictor refused the tensors: {reason}")
            if status == 503:
                return PredictorUnavailable(self.host, reason)
            return PredictorFailed(self.host, f"HTTP {status}: {reason}")
        return PredictorFailed(self.host, str(exc))

    async def close(self) -> None:
        if self._grpc is not None:
            await self._grpc.close()
        if self._rest is not None:
            await self._rest.close()


def _error_text(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", response.text))
    except ValueError:
        return response.text[:200]
