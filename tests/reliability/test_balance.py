"""One transformer in front of several predictors: the hop spreads the rows over all of them,
finds a new one, and loses no request to a rolling restart or a killed predictor.

The transformer's target is a static list (`ipv4:127.0.0.1:P1,...`), the local stand-in for a
headless Service (`dns:///`): the same round_robin balancing, without DNS. Each predictor counts
its own rows (`kserve_kit_predictor_batch_rows`). Sizes: KIT_BALANCE_SECONDS (8 in `make test`,
30 in `make chaos`) and KIT_BALANCE_CONNECTION_AGE_S; KIT_BALANCE_RETRY_ATTEMPTS=1 turns the
hop's retries off (to see what they do).
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from tests.reliability.conftest import env_int
from tests.reliability.load import Client, Run, drive, metric, wait_until
from tests.reliability.test_chaos import ready
from tests.support import servers

pytestmark = pytest.mark.reliability

SECONDS = env_int("KIT_BALANCE_SECONDS", 8)
CONNECTION_AGE_S = env_int("KIT_BALANCE_CONNECTION_AGE_S", 5)
# 1 shows what the retries do (the SIGKILL test then fails, printing what clients saw).
RETRY_ATTEMPTS = env_int("KIT_BALANCE_RETRY_ATTEMPTS", 3)
CLIENTS = 16
GRACE_S = 10
ROWS = "kserve_kit_predictor_batch_rows_sum"


def fleet(model_dir, logs, count, hop="grpc-v2"):
    """`count` predictors (not started) and a transformer balancing over all of them."""
    predictors = [
        servers.predictor(
            model_dir,
            logs,
            name=f"predictor-{i}",
            extra=[
                "--max_batch_size",
                "8",
                "--torch_threads",
                "1",
                "--grace_period",
                str(GRACE_S),
                "--grpc_max_connection_age_seconds",
                str(CONNECTION_AGE_S),
            ],
        )
        for i in range(count)
    ]
    transformer = servers.transformer(
        model_dir,
        logs,
        predictors,
        protocol=hop,
        extra=[
            "--max_batch_size",
            "8",
            "--max_length",
            "32",
            "--predictor_request_timeout_seconds",
            "30",
            "--predictor_retry_attempts",
            str(RETRY_ATTEMPTS),
        ],
    )
    return transformer, predictors


def rows(predictor) -> float:
    try:
        return metric(predictor, ROWS)
    except OSError:
        return 0.0


def shares(before: list[float], after: list[float]) -> list[float]:
    done = [a - b for a, b in zip(after, before, strict=True)]
    return [d / max(sum(done), 1) for d in done]


def p99(run: Run, start: float, end: float) -> float:
    seconds = sorted(o.seconds for o in run.outcomes if start <= o.started <= end)
    return seconds[int(0.99 * (len(seconds) - 1))] if seconds else 0.0


def load(transformer, chaos, deadline_s):
    run, stop = Run(), asyncio.Event()

    async def main():
        async with Client(transformer, request_timeout_s=40) as client:

            async def chaos_then_stop():
                try:
                    return await chaos(run)
                finally:
                    stop.set()

            _, result = await asyncio.gather(
                drive(
                    client,
                    10_000_000,
                    CLIENTS,
                    deadline_s=deadline_s,
                    run=run,
                    stop=stop,
                    pause_after_failure_s=0.02,
                ),
                chaos_then_stop(),
            )
            return result

    return run, asyncio.run(main())


@pytest.mark.parametrize("hop", ["grpc-v2", "v2"], ids=["grpc-hop", "rest-hop"])
def test_three_predictors_share_the_rows(tiny_model_dir, tmp_path, hop):
    transformer, predictors = fleet(tiny_model_dir, tmp_path, 3, hop)
    with servers.running(*predictors, transformer):

        async def chaos(run):
            await wait_until(lambda: run.counts()["ok"] >= 50, timeout_s=60)
            before = [rows(p) for p in predictors]
            await asyncio.sleep(SECONDS)
            return shares(before, [rows(p) for p in predictors])

        run, got = load(transformer, chaos, deadline_s=SECONDS + 120)
        print(f"3 predictors, {hop}, {CLIENTS} clients, {SECONDS} s: shares {got}; {run.counts()}")
        assert not run.failures(), run.summary()
        assert all(abs(s - 1 / 3) <= 0.10 for s in got), got


def test_a_fourth_predictor_gets_rows_within_one_connection_age(tiny_model_dir, tmp_path):
    transformer, predictors = fleet(tiny_model_dir, tmp_path, 4)
    fourth = predictors[3]
    with servers.running(*predictors[:3], transformer):

        async def chaos(run):
            await wait_until(lambda: run.counts()["ok"] >= 50, timeout_s=60)
            fourth.start()
            await asyncio.to_thread(fourth.wait_ready)
            ready_at = time.monotonic()
            before = [rows(p) for p in predictors]
            await asyncio.sleep(CONNECTION_AGE_S)
            return ready_at, shares(before, [rows(p) for p in predictors])

        try:
            run, (_, got) = load(transformer, chaos, deadline_s=CONNECTION_AGE_S + 180)
        finally:
            fourth.stop()
        print(f"4th predictor, first {CONNECTION_AGE_S} s after ready: shares {got}")
        assert not run.failures(), run.summary()
        assert got[3] >= 0.15, got


def test_rolling_restart_loses_no_request(tiny_model_dir, tmp_path):
    transformer, predictors = fleet(tiny_model_dir, tmp_path, 3)
    with servers.running(*predictors, transformer):

        async def chaos(run):
            await wait_until(lambda: run.counts()["ok"] >= 50, timeout_s=60)
            marks = []
            for predictor in predictors:
                served = rows(predictor)
                predictor.signal(signal.SIGTERM)
                code = await asyncio.to_thread(predictor.process.wait, GRACE_S + 10)
                predictor.start()
                await asyncio.to_thread(predictor.wait_ready)
                marks.append((code, served))
            end = run.counts()["ok"]
            await wait_until(lambda: run.counts()["ok"] >= end + 50, timeout_s=30)
            return marks

        started = time.monotonic()
        run, marks = load(transformer, chaos, deadline_s=300)
        took = time.monotonic() - started
        print(
            f"rolling restart of 3 predictors under {CLIENTS} clients in {took:.1f} s: "
            f"{dict(run.counts())}; exit codes {[c for c, _ in marks]}; "
            f"p99 {p99(run, started, time.monotonic()):.3f} s"
        )
        assert not run.failures(), run.summary()
        assert [c for c, _ in marks] == [0, 0, 0]
        assert all(served > 0 for _, served in marks)  # each had its share before its turn


def test_one_of_three_killed_then_all_down_then_back(tiny_model_dir, tmp_path):
    """SIGKILL of one: no client sees it (retried on another). Then all down: a 503 within 1 s.
    Then one back: serving again on its own."""
    transformer, predictors = fleet(tiny_model_dir, tmp_path, 3)
    with servers.running(*predictors, transformer):

        async def chaos(run):
            await wait_until(lambda: run.counts()["ok"] >= 100, timeout_s=60)
            killed_at = time.monotonic()
            predictors[0].signal(signal.SIGKILL)
            await asyncio.to_thread(predictors[0].process.wait, 10)
            await asyncio.sleep(2)
            one_down_until = time.monotonic()
            for predictor in predictors[1:]:
                predictor.signal(signal.SIGKILL)
                await asyncio.to_thread(predictor.process.wait, 10)
            all_down_at = time.monotonic()
            await wait_until(
                lambda: sum(o.started > all_down_at for o in run.outcomes) >= 50, timeout_s=10
            )
            predictors[1].start()
            ready_at = await wait_until(lambda: ready(predictors[1]), timeout_s=120)
            await wait_until(
                lambda: sum(o.kind == "ok" and o.started > ready_at for o in run.outcomes) >= 50,
                timeout_s=30,
            )
            return killed_at, one_down_until, all_down_at, ready_at

        run, (killed_at, one_down_until, all_down_at, ready_at) = load(
            transformer, chaos, deadline_s=300
        )
        # Whole lifetime inside the one-down phase: a request still in flight at one_down_until
        # may meet the kill of the other two, which is the all-down phase's business.
        during = [
            o for o in run.outcomes if killed_at - 0.5 <= o.started and o.ended <= one_down_until
        ]
        down = [o for o in run.outcomes if all_down_at + 0.5 < o.started < ready_at]
        first_ok = min(o.started for o in run.outcomes if o.kind == "ok" and o.started > ready_at)
        print(
            f"SIGKILL 1 of 3 under {CLIENTS} clients: {len(during)} requests around it, "
            f"{sum(o.kind != 'ok' for o in during)} failed, "
            f"p99 {p99(run, killed_at, one_down_until):.3f} s; "
            f"all down: {len(down)} requests, kinds {sorted({o.kind for o in down})}, "
            f"slowest {max((o.seconds for o in down), default=0):.3f} s; "
            f"serving again {first_ok - ready_at:.2f} s after one was ready"
        )
        one_down = [o for o in run.outcomes if o.ended <= one_down_until and o.kind != "ok"]
        assert not one_down, (run.summary(), one_down[:3])
        assert down and {o.kind for o in down} <= {"http-503", "grpc-UNAVAILABLE"}, run.summary()
        assert all(o.seconds < 1 for o in down), max(o.seconds for o in down)
        late = [o for o in run.outcomes if o.started > ready_at + 2 and o.kind != "ok"]
        assert not late, late[:3]


def model_ready(server) -> int:
    from tests.support.http import get

    try:
        return get(f"{server.url}/v2/models/text-classifier/ready", timeout=5)[0]
    except OSError:
        return 0


def test_the_transformer_is_ready_while_one_predictor_is(tiny_model_dir, tmp_path):
    """--enable_predictor_health_check over a multi-endpoint target: the model's readiness
    holds while any predictor answers, fails with none, and comes back with one."""
    transformer, predictors = fleet(tiny_model_dir, tmp_path, 2)
    transformer.args.append("--enable_predictor_health_check")
    with servers.running(*predictors, transformer):
        seen = [model_ready(transformer)]
        predictors[0].signal(signal.SIGKILL)
        predictors[0].process.wait(10)
        seen.append(model_ready(transformer))
        predictors[1].signal(signal.SIGKILL)
        predictors[1].process.wait(10)
        seen.append(model_ready(transformer))
        predictors[1].start().wait_ready()
        deadline = time.monotonic() + 5
        while model_ready(transformer) != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        seen.append(model_ready(transformer))
        live = ready(transformer)  # /v2/health/ready: the transformer's own
        print(f"transformer model readiness with 2, 1, 0, 1 predictors: {seen}")
        assert seen == [200, 200, 503, 200]
        assert live
