"""Load: REST and gRPC mixed through the transformer at fixed concurrency, nothing lost.

`make test` sends KIT_SOAK_REQUESTS=1000; `make soak` sends 20,000 and holds memory growth to
5 %. Memory and open files of both processes are measured after a warm-up and after the soak,
each time once the client has gone: a client's pooled connections are the client's, not a leak.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.reliability.conftest import (
    RSS_GROWTH_LIMIT,
    SOAK_CONCURRENCY,
    SOAK_REQUESTS,
    process_of,
)
from tests.reliability.load import Client, drive
from tests.support.http import get

pytestmark = pytest.mark.reliability


def resident_and_fds(server) -> tuple[int, int]:
    process = process_of(server)
    return process.memory_info().rss, process.num_fds()


async def settled_fds(server, at_most: int | None, timeout_s: float = 10) -> tuple[int, int]:
    """(RSS, fds) once the server has closed the departed client's sockets (it does so
    asynchronously), polled up to `timeout_s`; with `at_most=None`, once the count holds still."""
    deadline = time.monotonic() + timeout_s
    previous = None
    while True:
        rss, fds = resident_and_fds(server)
        settled = fds <= at_most if at_most is not None else fds == previous
        if settled or time.monotonic() > deadline:
            return rss, fds
        previous = fds
        await asyncio.sleep(0.2)


def test_soak_loses_nothing_and_leaks_nothing(chain):
    transformer, predictor = chain
    warm_up = max(200, SOAK_REQUESTS // 10)

    async def soak():
        async with Client(transformer) as client:
            warm = await drive(client, warm_up, SOAK_CONCURRENCY, deadline_s=120)
        before = {s.name: await settled_fds(s, None) for s in (transformer, predictor)}
        async with Client(transformer) as client:
            # The deadline only bounds a broken run: 50 ms a request would be very slow.
            run = await drive(
                client, SOAK_REQUESTS, SOAK_CONCURRENCY, deadline_s=60 + SOAK_REQUESTS * 0.05
            )
        after = {s.name: await settled_fds(s, before[s.name][1]) for s in (transformer, predictor)}
        return warm, run, before, after

    started = time.monotonic()
    warm, run, before, after = asyncio.run(soak())
    elapsed = time.monotonic() - started
    print(
        f"soak: {len(run.outcomes)} requests at concurrency {SOAK_CONCURRENCY} "
        f"in {elapsed:.0f} s (warm-up included) "
        f"after {len(warm.outcomes)} warm-up: {dict(run.counts())}; (RSS, fds) {before} -> {after}"
    )
    assert not warm.failures(), warm.summary()
    assert len(run.outcomes) == SOAK_REQUESTS, f"deadline hit: {run.summary()}"
    assert not run.failures(), run.summary()
    assert {o.protocol for o in run.outcomes} == {"rest", "grpc"}

    for name, (rss_end, fds_end) in after.items():
        rss_start, fds_start = before[name]
        growth = (rss_end - rss_start) / rss_start
        assert growth <= RSS_GROWTH_LIMIT, f"{name}: RSS {rss_start} -> {rss_end} (+{growth:.1%})"
        assert fds_end <= fds_start, f"{name}: open fds {fds_start} -> {fds_end}"
    for server in (transformer, predictor):
        assert get(f"{server.url}/v2/health/ready")[0] == 200
