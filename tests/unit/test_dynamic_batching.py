import asyncio
import threading
import time

import numpy as np
import pytest

from predictor.dynamic_batching import Batcher, pad_and_stack

pytestmark = pytest.mark.unit


class RecordingForward:
    """A stand-in model whose answer depends only on each row's real tokens, so padding and
    splitting mistakes show. It records the batch shapes it was called with."""

    def __init__(self, delay_s: float = 0.0, fail_on: int | None = None):
        self.batches: list[tuple[int, int]] = []
        self.delay_s = delay_s
        self.fail_on = fail_on
        self.lock = threading.Lock()

    def __call__(self, ids, mask, types):
        with self.lock:
            self.batches.append(ids.shape)
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail_on is not None and (ids == self.fail_on).any():
            raise RuntimeError("forward failed")
        real = ids * mask
        return np.stack([real.sum(axis=1), mask.sum(axis=1)], axis=1).astype(np.float32)


def expected(ids):
    ids = np.asarray(ids)
    return np.stack([ids.sum(axis=1), np.full(len(ids), ids.shape[1])], axis=1)


def request(seed: int):
    rng = np.random.default_rng(seed)
    rows, length = int(rng.integers(1, 4)), int(rng.integers(1, 12))
    return rng.integers(1, 1000, size=(rows, length), dtype=np.int64)


def test_pad_and_stack_pads_to_the_longest_with_zero_attention():
    class Job:
        def __init__(self, ids):
            self.input_ids, self.attention_mask, self.token_type_ids = ids, np.ones_like(ids), None

        rows = property(lambda self: self.input_ids.shape[0])

    ids, mask, types = pad_and_stack(
        [Job(np.array([[5, 6]])), Job(np.array([[7, 8, 9]]))], pad_id=0
    )
    assert ids.tolist() == [[5, 6, 0], [7, 8, 9]]
    assert mask.tolist() == [[1, 1, 0], [1, 1, 1]]
    assert types is None


def test_concurrent_requests_share_forwards_and_get_their_own_rows_back():
    forward = RecordingForward(delay_s=0.02)

    async def main():
        batcher = Batcher(forward, max_batch_size=8, max_delay_s=0.005)
        inputs = [request(i) for i in range(40)]
        results = await asyncio.gather(*(batcher.infer(x, np.ones_like(x)) for x in inputs))
        batcher.close()
        return inputs, results

    inputs, results = asyncio.run(main())
    for x, y in zip(inputs, results, strict=True):
        np.testing.assert_array_equal(y, expected(x))
    assert len(forward.batches) < 40, "no two requests ever shared a forward"
    assert max(rows for rows, _ in forward.batches) <= 8


def test_a_lone_request_on_an_idle_predictor_is_not_held_back():
    # A delay far longer than the test's patience: the request must not wait for company.
    forward = RecordingForward()

    async def main():
        batcher = Batcher(forward, max_batch_size=8, max_delay_s=60)
        x = np.array([[1, 2, 3]])
        result = await asyncio.wait_for(batcher.infer(x, np.ones_like(x)), timeout=10)
        batcher.close()
        return result

    np.testing.assert_array_equal(asyncio.run(main()), [[6, 3]])


def test_a_failed_forward_fails_its_callers_and_the_batcher_recovers():
    forward = RecordingForward(fail_on=666)

    async def main():
        batcher = Batcher(forward, max_batch_size=8, max_delay_s=0.001)
        bad = np.array([[666]])
        with pytest.raises(RuntimeError, match="forward failed"):
            await batcher.infer(bad, np.ones_like(bad))
        good = np.array([[1, 1]])
        result = await batcher.infer(good, np.ones_like(good))
        batcher.close()
        return result

    np.testing.assert_array_equal(asyncio.run(main()), [[2, 2]])


def test_batching_off_runs_every_request_alone():
    forward = RecordingForward(delay_s=0.01)

    async def main():
        batcher = Batcher(forward, max_batch_size=8, max_delay_s=0)
        inputs = [request(i) for i in range(6)]
        await asyncio.gather(*(batcher.infer(x, np.ones_like(x)) for x in inputs))
        batcher.close()
        return inputs

    inputs = asyncio.run(main())
    assert sorted(forward.batches) == sorted(x.shape for x in inputs)


def _histogram(name: str) -> tuple[float, float]:
    """(count, sum) of one of the batcher's Prometheus histograms, from the default registry."""
    from prometheus_client import REGISTRY

    count = REGISTRY.get_sample_value(f"{name}_count") or 0.0
    total = REGISTRY.get_sample_value(f"{name}_sum") or 0.0
    return count, total


@pytest.mark.parametrize("delay_s", [0.005, 0], ids=["batching-on", "batching-off"])
def test_every_forward_is_counted_with_its_rows_and_every_request_with_its_wait(delay_s):
    forward = RecordingForward(delay_s=0.01)
    forwards0, rows0 = _histogram("kserve_kit_predictor_batch_rows")
    waits0, _ = _histogram("kserve_kit_predictor_batch_queue_seconds")

    async def main():
        batcher = Batcher(forward, max_batch_size=8, max_delay_s=delay_s)
        inputs = [request(200 + i) for i in range(10)]
        await asyncio.gather(*(batcher.infer(x, np.ones_like(x)) for x in inputs))
        batcher.close()
        return inputs

    inputs = asyncio.run(main())
    forwards, rows = _histogram("kserve_kit_predictor_batch_rows")
    waits, _ = _histogram("kserve_kit_predictor_batch_queue_seconds")
    assert forwards - forwards0 == len(forward.batches)
    assert rows - rows0 == sum(x.shape[0] for x in inputs)
    assert waits - waits0 == len(inputs)


def test_a_burst_larger_than_a_batch_is_split_and_nothing_is_lost():
    forward = RecordingForward(delay_s=0.005)

    async def main():
        batcher = Batcher(forward, max_batch_size=4, max_delay_s=0.002)
        inputs = [np.full((1 + i % 3, 5), i + 1, dtype=np.int64) for i in range(30)]
        results = await asyncio.gather(*(batcher.infer(x, np.ones_like(x)) for x in inputs))
        batcher.close()
        return inputs, results

    inputs, results = asyncio.run(main())
    for x, y in zip(inputs, results, strict=True):
        np.testing.assert_array_equal(y, expected(x))
    assert max(rows for rows, _ in forward.batches) <= 4
    assert sum(rows for rows, _ in forward.batches) == sum(x.shape[0] for x in inputs)


class ConcurrencyProbe(RecordingForward):
    """Records how many forwards ran at the same time, and in which threads."""

    def __init__(self, delay_s: float):
        super().__init__(delay_s=delay_s)
        self.running = 0
        self.most_at_once = 0
        self.threads: set[str] = set()

    def __call__(self, ids, mask, types):
        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.threads.add(threading.current_thread().name)
        try:
            return super().__call__(ids, mask, types)
        finally:
            with self.lock:
                self.running -= 1


def test_two_workers_run_two_batches_at_once_and_every_caller_gets_its_rows():
    forward = ConcurrencyProbe(delay_s=0.02)
    told: list[tuple[str, bool]] = []

    def before_forward(alone: bool):
        told.append((threading.current_thread().name, alone))

    async def main():
        batcher = Batcher(
            forward, max_batch_size=8, max_delay_s=0.002, workers=2, before_forward=before_forward
        )
        inputs = [request(300 + i) for i in range(40)]
        results = await asyncio.gather(*(batcher.infer(x, np.ones_like(x)) for x in inputs))
        batcher.close()
        return inputs, results

    inputs, results = asyncio.run(main())
    for x, y in zip(inputs, results, strict=True):
        np.testing.assert_array_equal(y, expected(x))
    assert forward.most_at_once == 2
    # before_forward ran in each forward's own thread, once per forward
    assert {name for name, _ in told} == forward.threads
    assert len(told) == len(forward.batches)
    # 40 requests at once: the first forward had others waiting, so none ran alone
    assert not any(alone for _, alone in told)
    assert sum(rows for rows, _ in forward.batches) == sum(x.shape[0] for x in inputs)


def test_a_forward_is_alone_only_when_no_other_runs_or_waits():
    forward = ConcurrencyProbe(delay_s=0.05)
    told: list[bool] = []

    async def main():
        batcher = Batcher(
            forward, max_batch_size=8, max_delay_s=0.001, workers=2, before_forward=told.append
        )
        x = np.array([[4, 5]])
        await batcher.infer(x, np.ones_like(x))  # idle predictor: alone
        first = asyncio.ensure_future(batcher.infer(x, np.ones_like(x)))  # alone at its start
        await asyncio.sleep(0.01)
        await batcher.infer(x, np.ones_like(x))  # starts while the first one runs: not alone
        await first
        batcher.close()

    asyncio.run(main())
    assert told == [True, True, False]


def test_with_two_workers_a_lone_request_still_runs_at_once():
    forward = ConcurrencyProbe(delay_s=0)

    async def main():
        batcher = Batcher(forward, max_batch_size=8, max_delay_s=60, workers=2)
        x = np.array([[4, 5]])
        result = await asyncio.wait_for(batcher.infer(x, np.ones_like(x)), timeout=10)
        batcher.close()
        return result

    np.testing.assert_array_equal(asyncio.run(main()), [[9, 2]])


def test_a_batcher_needs_at_least_one_worker():
    with pytest.raises(ValueError, match="workers must be >= 1"):
        Batcher(RecordingForward(), max_batch_size=8, max_delay_s=0.01, workers=0)
