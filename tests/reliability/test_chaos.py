"""Faults under load: the predictor killed, either server terminated, the predictor stalled.

Each test drives REST and gRPC clients at the transformer while a real signal hits a real
process, and judges every request by what its client saw. `make chaos` repeats the kill cycle
(KIT_CHAOS_ROUNDS); `make test` runs each fault once.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time

import pytest

from tests.reliability.conftest import CHAOS_ROUNDS
from tests.reliability.load import Client, Run, drive, metric, wait_until
from tests.support import servers
from tests.support.http import get

pytestmark = pytest.mark.reliability

HOP_TIMEOUT_S = 30  # long: a request that hangs shows as one that took that long
GRACE_S = 10
UNAVAILABLE = {"http-503", "grpc-UNAVAILABLE"}


def pair(model_dir, logs, hop="grpc-v2", timeout_s=HOP_TIMEOUT_S, grace_s=GRACE_S):
    predictor = servers.predictor(
        model_dir, logs, extra=["--max_batch_size", "8", "--grace_period", str(grace_s)]
    )
    transformer = servers.transformer(
        model_dir,
        logs,
        predictor,
        protocol=hop,
        extra=[
            "--max_batch_size",
            "8",
            "--max_length",
            "32",
            "--grace_period",
            str(grace_s),
            "--predictor_request_timeout_seconds",
            str(timeout_s),
        ],
    )
    return transformer, predictor


def ready(server) -> bool:
    try:
        return get(f"{server.url}/v2/health/ready", timeout=1)[0] == 200
    except OSError:
        return False


def oks(run: Run) -> int:
    return run.counts()["ok"]


@pytest.mark.parametrize("hop", ["grpc-v2", "v2"], ids=["grpc-hop", "rest-hop"])
def test_predictor_killed_under_load(tiny_model_dir, tmp_path, hop):
    """SIGKILL: in-flight requests end promptly with 503; within 2 s of the predictor being
    ready again requests succeed, and the transformer was never restarted."""
    transformer, predictor = pair(tiny_model_dir, tmp_path, hop)
    with servers.running(predictor, transformer):
        transformer_pid = transformer.process.pid
        run, stop = Run(), asyncio.Event()
        recoveries = []

        async def chaos():
            for _ in range(CHAOS_ROUNDS):
                baseline = oks(run)
                await wait_until(lambda b=baseline: oks(run) >= b + 100, timeout_s=60)
                predictor.signal(signal.SIGKILL)
                killed_at = time.monotonic()
                await asyncio.to_thread(predictor.process.wait, 10)
                await wait_until(lambda t=killed_at: any(o.started > t for o in run.outcomes), 10)
                predictor.start()
                ready_at = await wait_until(lambda: ready(predictor), timeout_s=120)
                back_at = await wait_until(
                    lambda r=ready_at: any(o.kind == "ok" and o.started >= r for o in run.outcomes),
                    timeout_s=30,
                )
                recoveries.append((killed_at, ready_at, back_at))
            final = oks(run)
            await wait_until(lambda: oks(run) >= final + 50, timeout_s=30)
            stop.set()

        async def main():
            async with Client(transformer, request_timeout_s=HOP_TIMEOUT_S + 10) as client:
                await asyncio.gather(
                    drive(
                        client,
                        1_000_000,
                        16,
                        deadline_s=120 + 120 * CHAOS_ROUNDS,
                        run=run,
                        stop=stop,
                        pause_after_failure_s=0.02,
                    ),
                    chaos(),
                )

        asyncio.run(main())

        failures = run.failures()
        print(
            f"predictor killed {len(recoveries)}x under load ({hop}): {dict(run.counts())}; "
            f"recovered {[round(b - r, 2) for _, r, b in recoveries]} s after ready; "
            f"slowest failure {max((o.seconds for o in failures), default=0):.2f} s"
        )
        assert {o.kind for o in failures} <= UNAVAILABLE, run.summary()
        assert all("unavailable" in o.detail for o in failures), run.summary()
        # Promptly: nothing waited for the hop's 30 s timeout.
        assert all(o.seconds < 5 for o in failures), max(o.seconds for o in failures)
        next_kills = [killed_at for killed_at, _, _ in recoveries[1:]] + [float("inf")]
        for (_, ready_at, back_at), next_kill in zip(recoveries, next_kills, strict=True):
            assert back_at - ready_at <= 2.0, f"succeeded {back_at - ready_at:.2f} s after ready"
            late = [
                o
                for o in run.outcomes
                if o.started >= ready_at + 2.0 and o.ended < next_kill and o.kind != "ok"
            ]
            assert not late, late[:3]
        assert transformer.process.pid == transformer_pid and transformer.process.poll() is None


def connection_refused(server) -> bool:
    try:
        socket.create_connection(("127.0.0.1", server.http_port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True


def test_transformer_terminated_with_requests_in_flight(tiny_model_dir, tmp_path):
    """SIGTERM: the requests the transformer holds all complete, new connections are refused,
    and it exits within its grace period."""
    transformer, predictor = pair(tiny_model_dir, tmp_path)
    with servers.running(predictor, transformer):

        async def main():
            async with Client(transformer, request_timeout_s=60, new_connections=True) as client:
                assert (await client.one(0)).kind == "ok"
                assert (await client.one(1)).kind == "ok"
                # Freeze the predictor: the next requests stay inside the transformer.
                predictor.signal(signal.SIGSTOP)
                before = metric(transformer, "request_preprocess_seconds_count")
                held = [asyncio.ensure_future(client.one(i)) for i in range(8)]
                await wait_until(
                    lambda: metric(transformer, "request_preprocess_seconds_count") >= before + 8,
                    30,
                )
                transformer.signal(signal.SIGTERM)
                terminated_at = time.monotonic()
                await wait_until(lambda: connection_refused(transformer), timeout_s=5)
                late = await asyncio.gather(client.one(100), client.one(101))  # REST, gRPC
                predictor.signal(signal.SIGCONT)
                return await asyncio.gather(*held), late, terminated_at

        try:
            held, late, terminated_at = asyncio.run(main())
        finally:
            predictor.signal(signal.SIGCONT)
        returncode = transformer.process.wait(GRACE_S + 10)
        exited_after = time.monotonic() - terminated_at
        print(
            f"transformer SIGTERM: held {[o.kind for o in held]}, late {[o.kind for o in late]}, "
            f"exit {returncode} after {exited_after:.1f} s (grace {GRACE_S} s)"
        )
        assert [o.kind for o in held] == ["ok"] * 8, [(o.kind, o.detail) for o in held]
        assert late[0].kind == "refused", late[0]
        assert late[1].kind == "grpc-UNAVAILABLE", late[1]
        assert exited_after <= GRACE_S
        assert returncode == 0, transformer.log_tail()


def test_predictor_terminated_under_load(tiny_model_dir, tmp_path):
    """SIGTERM: what the predictor accepted completes (no 502/504 through the transformer);
    what comes after is refused (a clean 503); it exits within its grace period."""
    transformer, predictor = pair(tiny_model_dir, tmp_path)
    with servers.running(predictor, transformer):
        run, stop = Run(), asyncio.Event()
        marks = {}

        async def chaos():
            await wait_until(lambda: oks(run) >= 200, timeout_s=60)
            await wait_until(
                lambda: metric(predictor, "kserve_kit_predictor_inflight_requests") > 0, 30, 0.001
            )
            predictor.signal(signal.SIGTERM)
            marks["terminated"] = time.monotonic()
            marks["returncode"] = await asyncio.to_thread(predictor.process.wait, GRACE_S + 10)
            marks["exited"] = time.monotonic()
            await wait_until(lambda: any(o.started > marks["exited"] for o in run.outcomes), 10)
            stop.set()

        async def main():
            async with Client(transformer, request_timeout_s=HOP_TIMEOUT_S + 10) as client:
                await asyncio.gather(
                    drive(
                        client,
                        1_000_000,
                        16,
                        deadline_s=120,
                        run=run,
                        stop=stop,
                        pause_after_failure_s=0.02,
                    ),
                    chaos(),
                )

        asyncio.run(main())
        exited_after = marks["exited"] - marks["terminated"]
        print(
            f"predictor SIGTERM under load: {dict(run.counts())}; "
            f"exit {marks['returncode']} after {exited_after:.1f} s (grace {GRACE_S} s)"
        )
        assert {o.kind for o in run.failures()} <= UNAVAILABLE, run.summary()
        assert sum(o.ended > marks["terminated"] for o in run.outcomes if o.kind == "ok") > 0
        assert exited_after <= GRACE_S
        assert marks["returncode"] == 0, predictor.log_tail()
        assert ready(transformer)


def test_stalled_predictor_under_load_is_a_504_and_the_transformer_stays_healthy(
    tiny_model_dir, tmp_path
):
    transformer, predictor = pair(tiny_model_dir, tmp_path, timeout_s=2)
    with servers.running(predictor, transformer):
        run, stop = Run(), asyncio.Event()
        marks = {}

        async def chaos():
            await wait_until(lambda: oks(run) >= 100, timeout_s=60)
            predictor.signal(signal.SIGSTOP)
            marks["stopped"] = time.monotonic()
            # Every worker has had a request time out, and the transformer still answers.
            await wait_until(
                lambda: (
                    sum(o.started > marks["stopped"] and o.kind != "ok" for o in run.outcomes) >= 32
                ),
                timeout_s=30,
            )
            marks["live"] = get(f"{transformer.url}/v2/health/live")[0]
            marks["ready"] = get(f"{transformer.url}/v2/health/ready")[0]
            predictor.signal(signal.SIGCONT)
            marks["resumed"] = time.monotonic()
            await wait_until(
                lambda: (
                    sum(o.started > marks["resumed"] + 1 and o.kind == "ok" for o in run.outcomes)
                    >= 50
                ),
                timeout_s=30,
            )
            stop.set()

        async def main():
            async with Client(transformer, request_timeout_s=30) as client:
                await asyncio.gather(
                    drive(client, 1_000_000, 16, deadline_s=120, run=run, stop=stop), chaos()
                )

        try:
            asyncio.run(main())
        finally:
            predictor.signal(signal.SIGCONT)
        failures = run.failures()
        print(
            f"predictor stalled under load: {dict(run.counts())}; transformer live "
            f"{marks['live']} ready {marks['ready']}; "
            f"slowest {max(o.seconds for o in failures):.2f} s"
        )
        assert {o.kind for o in failures} <= {"http-504", "grpc-DEADLINE_EXCEEDED"}, run.summary()
        assert all("did not answer within 2 s" in o.detail for o in failures), run.summary()
        assert all(o.seconds < 2 + 5 for o in failures)  # the hop's timeout, not the client's 30 s
        assert (marks["live"], marks["ready"]) == (200, 200)
        late = [o for o in run.outcomes if o.started > marks["resumed"] + 1 and o.kind != "ok"]
        assert not late, late[:3]
