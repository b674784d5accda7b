"""Closed-loop load over V2: `concurrency` clients, each sending its next request as soon as its
last one is answered, for a bounded time and a bounded count.

gRPC with `grpc.aio` (binary tensors in `raw_input_contents`, the way Triton's and KServe's own
clients send them) and REST with `aiohttp` (JSON tensors). Requests are encoded once, before
the clock starts, so the client spends its CPU on the wire and not on building messages:
a heavy client on a 2-core machine would measure itself.
"""

from __future__ import annotations

import asyncio
import json
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import grpc
import numpy as np

from kserve_kit.serving import import_model_server

# Importing any part of kserve imports its server module, which parses sys.argv: the bench's
# own flags would be read as KServe's. The kit's helper imports it with them hidden.
import_model_server()
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb  # noqa: E402
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub  # noqa: E402

# A bound on each cell besides its duration: no loop runs unbounded.
MAX_REQUESTS_PER_CELL = 200_000
MAX_ERRORS_PER_CELL = 20


@dataclass
class CellResult:
    requests: int
    errors: int
    seconds: float
    latencies_s: list[float]
    first_error: str | None = None

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        return (
            float(np.percentile(self.latencies_s, q) * 1000) if self.latencies_s else float("nan")
        )


# ------------------------------------------------------------------------------ request bodies


def _bytes_tensor(texts: list[str]) -> bytes:
    """V2 BYTES raw contents: each element a 4-byte little-endian length, then its bytes."""
    out = bytearray()
    for text in texts:
        data = text.encode("utf-8")
        out += struct.pack("<I", len(data)) + data
    return bytes(out)


def grpc_text_request(model: str, text: str, rank: int = 1) -> pb.ModelInferRequest:
    shape = [1] if rank == 1 else [1, 1]
    return pb.ModelInferRequest(
        model_name=model,
        inputs=[pb.ModelInferRequest.InferInputTensor(name="text", datatype="BYTES", shape=shape)],
        raw_input_contents=[_bytes_tensor([text])],
    )


def grpc_token_request(model: str, ids: np.ndarray, mask: np.ndarray) -> pb.ModelInferRequest:
    """What the transformer sends the predictor for one text: INT64 [1, L] ids and mask."""
    tensors = []
    raws = []
    for name, array in (("input_ids", ids), ("attention_mask", mask)):
        array = np.ascontiguousarray(array.reshape(1, -1), dtype="<i8")
        tensors.append(
            pb.ModelInferRequest.InferInputTensor(
                name=name, datatype="INT64", shape=list(array.shape)
            )
        )
        raws.append(array.tobytes())
    return pb.ModelInferRequest(model_name=model, inputs=tensors, raw_input_contents=raws)


def rest_text_body(text: str, rank: int = 1) -> bytes:
    shape = [1] if rank == 1 else [1, 1]
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": shape, "data": [text]}]}
    return json.dumps(body).encode()


def rest_token_body(ids: np.ndarray, mask: np.ndarray) -> bytes:
    inputs = [
        {
            "name": name,
            "datatype": "INT64",
            "shape": [1, int(a.size)],
            "data": a.reshape(-1).tolist(),
        }
        for name, a in (("input_ids", ids), ("attention_mask", mask))
    ]
    return json.dumps({"inputs": inputs}).encode()


# ------------------------------------------------------------------------------ clients


class GrpcTarget:
    """ModelInfer over one shared HTTP/2 channel (as a client library would use it)."""

    def __init__(self, address: str, requests: list[pb.ModelInferRequest], timeout_s: float = 30):
        self.address = address
        self.requests = requests
        self.timeout_s = timeout_s
        self._channel: grpc.aio.Channel | None = None
        self._stub: GRPCInferenceServiceStub | None = None

    async def open(self) -> None:
        self._channel = grpc.aio.insecure_channel(
            self.address,
            options=[("grpc.max_receive_message_length", 16 << 20), ("grpc.enable_retries", 0)],
        )
        self._stub = GRPCInferenceServiceStub(self._channel)

    async def call(self, i: int) -> None:
        await self._stub.ModelInfer(self.requests[i % len(self.requests)], timeout=self.timeout_s)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()


class RestTarget:
    """POST /v2/models/{name}/infer with JSON, over a keep-alive connection pool."""

    def __init__(self, base_url: str, model: str, bodies: list[bytes], timeout_s: float = 30):
        self.url = f"{base_url}/v2/models/{model}/infer"
        self.bodies = bodies
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            headers={"Content-Type": "application/json"},
        )

    async def call(self, i: int) -> None:
        async with self._session.post(self.url, data=self.bodies[i % len(self.bodies)]) as r:
            body = await r.read()
            if r.status != 200:
                raise RuntimeError(f"HTTP {r.status}: {body[:200]!r}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


# ------------------------------------------------------------------------------ the loop


async def closed_loop(
    call: Callable[[int], Awaitable[None]],
    concurrency: int,
    seconds: float,
    max_requests: int = MAX_REQUESTS_PER_CELL,
    record: bool = True,
) -> CellResult:
    """Run `concurrency` clients for `seconds` (or `max_requests` in all, whichever first)."""
    latencies: list[float] = []
    counters = {"sent": 0, "errors": 0}
    first_error: list[str] = []
    started = time.perf_counter()
    deadline = started + seconds

    async def client(offset: int) -> None:
        i = offset
        while time.perf_counter() < deadline and counters["sent"] < max_requests:
            if counters["errors"] >= MAX_ERRORS_PER_CELL:
                return
            counters["sent"] += 1
            t0 = time.perf_counter()
            try:
                await call(i)
            except Exception as exc:  # noqa: BLE001 - counted and reported, the cell goes on
                counters["errors"] += 1
                if not first_error:
                    first_error.append(f"{type(exc).__name__}: {exc}"[:300])
            else:
                if record:
                    latencies.append(time.perf_counter() - t0)
            i += concurrency

    await asyncio.gather(*(client(k) for k in range(concurrency)))
    elapsed = time.perf_counter() - started
    return CellResult(
        requests=len(latencies),
        errors=counters["errors"],
        seconds=elapsed,
        latencies_s=latencies,
        first_error=first_error[0] if first_error else None,
    )
