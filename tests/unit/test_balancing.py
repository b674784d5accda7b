"""The balanced hop's pure parts: targets, the retry policy and its budget."""

from __future__ import annotations

import asyncio

import pytest

from kserve_kit.errors import BadInput, PredictorTimeout, PredictorUnavailable
from transformer.balancing import (
    ROUND_ROBIN,
    RestEndpoints,
    RetryBudget,
    RetryPolicy,
    grpc_channel_args,
    split_target,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "target, expected",
    [
        ("p:8081", ("", ["p:8081"])),
        ("dns:///p-headless.ns.svc:8081", ("dns", ["p-headless.ns.svc:8081"])),
        ("ipv4:127.0.0.1:1,127.0.0.1:2", ("ipv4", ["127.0.0.1:1", "127.0.0.1:2"])),
        ("ipv6:[::1]:1", ("ipv6", ["[::1]:1"])),
    ],
)
def test_targets(target, expected):
    assert split_target(target) == expected


def test_grpc_channel_balances_round_robin_without_grpcs_own_retries():
    args = dict(grpc_channel_args(1024))
    assert args["grpc.service_config"] == ROUND_ROBIN
    assert args["grpc.enable_retries"] == 0
    single = dict(grpc_channel_args(1024, "pick_first"))["grpc.service_config"]
    assert "pick_first" in single


def test_rest_endpoints_rotate_and_skip_one_that_refused():
    async def main():
        endpoints = RestEndpoints("ipv4:127.0.0.1:1,127.0.0.1:2,[::1]:3", eject_s=60)
        picks = [await endpoints.pick() for _ in range(6)]
        assert sorted(set(picks)) == ["http://127.0.0.1:1", "http://127.0.0.1:2", "http://[::1]:3"]
        endpoints.mark_down("http://127.0.0.1:2")
        assert "http://127.0.0.1:2" not in {await endpoints.pick() for _ in range(6)}
        plain = RestEndpoints("predictor.ns:8080")  # Knative and ClusterIP: by name
        assert await plain.pick() == "http://predictor.ns:8080"
        resolved = RestEndpoints("dns:///localhost:9")
        assert all(u.endswith(":9") for u in await resolved.urls()) and await resolved.urls()

    asyncio.run(main())


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_budget_earns_a_share_of_requests_and_a_floor_per_second():
    clock = FakeClock()
    budget = RetryBudget(ratio=0.5, min_per_s=1, cap=2, clock=clock)
    assert budget.withdraw() and budget.withdraw() and not budget.withdraw()
    budget.deposit()
    budget.deposit()
    assert budget.withdraw() and not budget.withdraw()
    clock.now += 1
    assert budget.withdraw() and not budget.withdraw()


def run(policy, errors, timeout_s=5.0):
    calls = []

    async def attempt(seconds_left):
        calls.append(seconds_left)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return "ok"

    async def main():
        return await policy.run(attempt, timeout_s)

    return asyncio.run(main()), calls


def test_a_refused_hop_is_retried_within_the_attempts():
    down = PredictorUnavailable("p", "connection refused")
    result, calls = run(RetryPolicy(attempts=3), [down, down])
    assert result == "ok" and len(calls) == 3
    assert calls[1] < calls[0] <= 5.0  # each attempt gets what is left of the deadline
    with pytest.raises(PredictorUnavailable):
        run(RetryPolicy(attempts=2), [down, down])


@pytest.mark.parametrize("error", [PredictorTimeout("p", 1), BadInput("no"), TimeoutError], ids=str)
def test_timeouts_and_refused_input_are_never_retried(error):
    policy = RetryPolicy(attempts=5)
    with pytest.raises(type(error) if isinstance(error, Exception) else error):
        run(policy, [error if isinstance(error, Exception) else error()])
    assert policy.retries == 0


def test_an_empty_budget_stops_retries():
    down = PredictorUnavailable("p", "connection refused")
    policy = RetryPolicy(attempts=5, budget=RetryBudget(ratio=0, min_per_s=0, cap=1))
    with pytest.raises(PredictorUnavailable):
        run(policy, [down] * 5)
    assert (policy.retries, policy.exhausted) == (1, 1)


def test_no_retry_past_the_deadline():
    down = PredictorUnavailable("p", "connection refused")
    policy = RetryPolicy(attempts=5, backoff_s=1.0)
    with pytest.raises(PredictorUnavailable):
        run(policy, [down] * 5, timeout_s=0.2)
    assert policy.retries == 0
