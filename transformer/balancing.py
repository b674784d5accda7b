"""The hop across many predictor pods: which endpoint, and whether to try another.

- gRPC: the channel resolves `--predictor_host` (any gRPC target: `host:port`,
  `dns:///name:port`, `ipv4:10.0.0.1:8081,10.0.0.2:8081`) and balances calls `round_robin` over
  every address, skipping those it cannot reach. The predictor closes each connection after
  `--grpc_max_connection_age_seconds`; the channel then re-resolves, so pods added behind a
  headless Service get calls without a restart.
- REST: `RestEndpoints` does the same by hand for `dns:///` and `ipv4:`/`ipv6:` targets (the
  connection pool keeps one set of connections per address). A plain `host:port` is used as it
  is, so Knative's host-based routing keeps working.
- `RetryPolicy`: a hop the predictor refused before doing the work (`PredictorUnavailable`:
  connection refused or reset, a server shutting down, a call it cancelled unstarted) is sent
  again, to the next endpoint, a bounded number of times, within the request's deadline, and
  only while the `RetryBudget` allows, so that a fleet that is down is not sent a multiple of
  its load. Inference is idempotent: a repeated request computes the same answer.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from kserve_kit.errors import PredictorUnavailable, ServingError

T = TypeVar("T")

# Reconnect quickly after a predictor restarts; gRPC's default backoff grows to 120 s.
RECONNECT_BACKOFF_MS = 250
MAX_RECONNECT_BACKOFF_MS = 1000
# gRPC's DNS resolver re-resolves at most this often (its default: 30 s).
DNS_MIN_RESOLUTION_INTERVAL_MS = 1000
ROUND_ROBIN = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})
# pick_first: one connection to the first address that answers (gRPC's default; the hop before
# balancing, kept for comparison and for targets that must not be spread).
LOAD_BALANCING = {
    "round_robin": ROUND_ROBIN,
    "pick_first": json.dumps({"loadBalancingConfig": [{"pick_first": {}}]}),
}


def grpc_channel_args(
    max_message_bytes: int, load_balancing: str = "round_robin"
) -> list[tuple[str, object]]:
    """Channel options of the balanced gRPC hop. gRPC's own retries are off: `RetryPolicy`
    retries for both hops, with a budget."""
    return [
        ("grpc.service_config", LOAD_BALANCING[load_balancing]),
        ("grpc.initial_reconnect_backoff_ms", RECONNECT_BACKOFF_MS),
        ("grpc.min_reconnect_backoff_ms", RECONNECT_BACKOFF_MS),
        ("grpc.max_reconnect_backoff_ms", MAX_RECONNECT_BACKOFF_MS),
        ("grpc.dns_min_time_between_resolutions_ms", DNS_MIN_RESOLUTION_INTERVAL_MS),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.enable_retries", 0),
    ]


@dataclass
class RetryBudget:
    """A token bucket of retries: every request earns `ratio` of a retry, and `min_per_s` more
    come each second whatever the traffic; a retry spends one. Holds at most `cap`. With all
    predictors down, retries add at most `ratio` of the load plus `min_per_s` a second."""

    ratio: float = 0.2
    min_per_s: float = 10.0
    cap: float = 20.0
    clock: Callable[[], float] = time.monotonic
    tokens: float = field(init=False)
    _last: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = self.cap
        self._last = self.clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.cap, self.tokens + (now - self._last) * self.min_per_s)
        self._last = now

    def deposit(self) -> None:
        """One request sent (its first attempt)."""
        self._refill()
        self.tokens = min(self.cap, self.tokens + self.ratio)

    def withdraw(self) -> bool:
        """Whether a retry may go now (and if so, it is paid for)."""
        self._refill()
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def retryable(error: ServingError) -> bool:
    """Refused before the work was done (or lost with a dead pod): safe to send elsewhere.
    Timeouts, refusals of the input and the predictor's own failures are never retried."""
    return isinstance(error, PredictorUnavailable)


@dataclass
class RetryPolicy:
    """Up to `attempts` tries of one hop within `timeout_s` in all, `backoff_s` (jittered)
    apart, each retry paid from `budget`."""

    attempts: int = 3
    backoff_s: float = 0.01
    budget: RetryBudget = field(default_factory=RetryBudget)
    retries: int = field(default=0, init=False)  # retries sent, for tests and logs
    exhausted: int = field(default=0, init=False)  # retries the budget refused

    async def run(self, attempt: Callable[[float], Awaitable[T]], timeout_s: float) -> T:
        """`await attempt(seconds_left)` until it returns, or raises what cannot be retried."""
        deadline = time.monotonic() + timeout_s
        self.budget.deposit()
        tries = 0
        while True:
            tries += 1
            try:
                return await attempt(max(deadline - time.monotonic(), 0.001))
            except ServingError as error:
                pause = self.backoff_s * random.uniform(0.5, 1.5)
                if (
                    not retryable(error)
                    or tries >= self.attempts
                    or time.monotonic() + pause >= deadline
                ):
                    raise
                if not self.budget.withdraw():
                    self.exhausted += 1
                    raise
                self.retries += 1
            await asyncio.sleep(pause)


def retry_policy_for(config) -> RetryPolicy:
    """The policy a `TransformerSettings` asks for."""
    return RetryPolicy(
        attempts=config.predictor_retry_attempts,
        budget=RetryBudget(
            ratio=config.predictor_retry_budget_ratio,
            min_per_s=config.predictor_retry_budget_min_per_s,
        ),
    )


def split_target(target: str) -> tuple[str, list[str]]:
    """(scheme, addresses) of a gRPC-style target: `dns:///n:p` -> ("dns", ["n:p"]),
    `ipv4:a:p,b:p` -> ("ipv4", ["a:p", "b:p"]), `host:port` -> ("", ["host:port"])."""
    for scheme in ("dns:///", "dns:"):
        if target.startswith(scheme):
            return "dns", [target[len(scheme) :]]
    for scheme in ("ipv4:", "ipv6:"):
        if target.startswith(scheme):
            return scheme[:-1], [a for a in target[len(scheme) :].split(",") if a]
    return "", [target]


def _host_port(address: str, default_port: int = 80) -> tuple[str, int]:
    if address.startswith("["):  # [v6]:port
        host, _, port = address[1:].partition("]")
        return host, int(port.lstrip(":") or default_port)
    host, sep, port = address.rpartition(":")
    if not sep or ":" in host:  # no port, or a bare IPv6 address
        return address, default_port
    return host, int(port)


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class RestEndpoints:
    """Base URLs for the REST hop, picked in turn; one that refused a connection is skipped for
    `eject_s`. A `dns:///` target is re-resolved every `refresh_s`."""

    def __init__(self, target: str, refresh_s: float = 5.0, eject_s: float = 1.0):
        self.target = target
        self.scheme, self._addresses = split_target(target)
        self.refresh_s = refresh_s
        self.eject_s = eject_s
        self._urls: list[str] = []
        self._resolved_at = -float("inf")
        self._down_until: dict[str, float] = {}
        self._next = 0
        if self.scheme in ("ipv4", "ipv6"):
            self._urls = [_url(*_host_port(a)) for a in self._addresses]
        elif self.scheme == "":  # as given: Knative and ClusterIP Services route by name
            self._urls = [f"http://{self._addresses[0]}"]

    async def _resolve(self) -> None:
        host, port = _host_port(self._addresses[0])
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError:
            return  # keep what was known; an empty set answers 503
        self._urls = sorted({_url(info[4][0], port) for info in infos})
        self._resolved_at = time.monotonic()

    async def urls(self) -> list[str]:
        if self.scheme == "dns" and time.monotonic() - self._resolved_at > self.refresh_s:
            await self._resolve()
        return list(self._urls)

    async def pick(self) -> str:
        urls = await self.urls()
        if not urls:
            raise PredictorUnavailable(self.target, "its name resolves to no address")
        now = time.monotonic()
        for _ in range(len(urls)):
            self._next = (self._next + 1) % len(urls)
            url = urls[self._next]
            if self._down_until.get(url, 0) <= now:
                return url
        return urls[self._next]  # all ejected: try anyway, one may be back

    def mark_down(self, url: str) -> None:
        self._down_until[url] = time.monotonic() + self.eject_s
