"""A bounded load generator for the reliability tests: REST and gRPC mixed, fixed concurrency.

Every request ends in one `Outcome`; nothing is retried, so what the counts say is what clients
saw. Each request has its own timeout, and the whole run stops at a deadline, so no loop here
can run unbounded.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from dataclasses import dataclass, field

import aiohttp
import grpc
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

MODEL = "text-classifier"
TEXTS = ["I was charged twice", "where is my parcel", "great service, thanks", "cancel it now"]


@dataclass
class Outcome:
    """One request as a client saw it: `kind` is "ok", "refused" or the failure's name."""

    protocol: str  # "rest" or "grpc"
    kind: str
    started: float
    ended: float
    detail: str = ""

    @property
    def seconds(self) -> float:
        return self.ended - self.started


@dataclass
class Run:
    outcomes: list[Outcome] = field(default_factory=list)

    def counts(self) -> collections.Counter:
        return collections.Counter(o.kind for o in self.outcomes)

    def failures(self, allowed: set[str] = frozenset({"ok"})) -> list[Outcome]:
        return [o for o in self.outcomes if o.kind not in allowed]

    def summary(self, limit: int = 5) -> str:
        examples = [f"{o.protocol} {o.kind}: {o.detail[:200]}" for o in self.failures()[:limit]]
        return f"{dict(self.counts())}; e.g. {examples}"


def rest_body(i: int) -> dict:
    texts = [TEXTS[i % len(TEXTS)], TEXTS[(i + 1) % len(TEXTS)]][: 1 + i % 2]
    return {
        "id": f"r{i}",
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}],
    }


def grpc_request(i: int) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=MODEL, id=f"g{i}")
    texts = [TEXTS[i % len(TEXTS)].encode()]
    tensor = request.inputs.add(name="text", datatype="BYTES", shape=[len(texts)])
    tensor.contents.bytes_contents.extend(texts)
    return request


# A REST failure before any answer came: the connection was refused or closed unanswered.
_NOT_ACCEPTED = (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError)


class Client:
    """REST (aiohttp) and gRPC (grpc.aio) clients of one server, opened and closed together.

    `new_connections=True` opens a fresh TCP connection for every REST request, so a request
    that a draining server did not accept shows as refused, never as a keep-alive race.
    """

    def __init__(self, server, request_timeout_s: float = 30, new_connections: bool = False):
        self.server = server
        self.timeout_s = request_timeout_s
        self.new_connections = new_connections
        self.session: aiohttp.ClientSession | None = None
        self.channel: grpc.aio.Channel | None = None

    async def __aenter__(self) -> Client:
        connector = aiohttp.TCPConnector(limit=64, force_close=self.new_connections)
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout_s)
        )
        self.channel = grpc.aio.insecure_channel(self.server.grpc_target)
        self.stub = pb_grpc.GRPCInferenceServiceStub(self.channel)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.session.close()
        await self.channel.close()

    async def rest(self, i: int) -> Outcome:
        started = time.monotonic()
        url = f"{self.server.url}/v2/models/{MODEL}/infer"
        try:
            async with self.session.post(url, json=rest_body(i)) as response:
                text = await response.text()
                kind = "ok" if response.status == 200 else f"http-{response.status}"
                return Outcome("rest", kind, started, time.monotonic(), text)
        except _NOT_ACCEPTED as exc:
            return Outcome("rest", "refused", started, time.monotonic(), repr(exc))
        except TimeoutError:
            return Outcome("rest", "timeout", started, time.monotonic(), "no answer")
        except aiohttp.ClientError as exc:
            return Outcome("rest", type(exc).__name__, started, time.monotonic(), repr(exc))

    async def grpc(self, i: int) -> Outcome:
        started = time.monotonic()
        try:
            await self.stub.ModelInfer(grpc_request(i), timeout=self.timeout_s)
            return Outcome("grpc", "ok", started, time.monotonic())
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            return Outcome(
                "grpc", f"grpc-{code.name}", started, time.monotonic(), exc.details() or ""
            )

    async def one(self, i: int) -> Outcome:
        """Request number `i`: even numbers over REST, odd over gRPC."""
        return await (self.rest(i) if i % 2 == 0 else self.grpc(i))


async def drive(
    client: Client,
    requests: int,
    concurrency: int,
    deadline_s: float,
    run: Run | None = None,
    on_progress=None,
    stop: asyncio.Event | None = None,
    pause_after_failure_s: float = 0.0,
) -> Run:
    """Send `requests` requests, `concurrency` at a time, until done, `stop`, or the deadline.

    `on_progress(done)` is awaited after every request; it must be quick. A worker whose
    request failed waits `pause_after_failure_s` before its next one, so that instant refusals
    from a dead peer do not spin the CPU that the restarting peer needs.
    """
    run = run or Run()
    counter = iter(range(requests))
    end = time.monotonic() + deadline_s

    async def worker() -> None:
        for i in counter:
            if time.monotonic() > end or (stop is not None and stop.is_set()):
                return
            outcome = await client.one(i)
            run.outcomes.append(outcome)
            if on_progress is not None:
                await on_progress(len(run.outcomes))
            if outcome.kind != "ok" and pause_after_failure_s:
                await asyncio.sleep(pause_after_failure_s)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return run


@contextlib.asynccontextmanager
async def background(coroutine):
    """Run `coroutine` as a task for the body of the block; await it at the end."""
    task = asyncio.ensure_future(coroutine)
    try:
        yield task
    finally:
        await asyncio.wait_for(
            task, timeout=300
        )  # drive() has its own deadline; this is a backstop


async def wait_until(predicate, timeout_s: float, interval_s: float = 0.02) -> float:
    """Poll `predicate()` (sync) until true; return the monotonic time it first was. Raises
    TimeoutError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"not true within {timeout_s} s: {predicate}")
        await asyncio.sleep(interval_s)


def metric(server, name: str) -> float:
    """The sum of a Prometheus sample `name` over its labels on the server's /metrics."""
    import urllib.request

    with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total
