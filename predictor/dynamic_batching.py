"""Dynamic batching: concurrent requests share one forward pass, off the event loop.

KServe's own batcher handles only V1 JSON, so the predictor batches V2 itself. One worker task
owns the model. It takes every request already queued (up to `max_batch_size` rows), pads them
to the longest sequence among them, runs one forward in a dedicated thread, and hands each
request its own rows back. A lone request on an idle predictor runs at once; only when several
requests are already waiting (the predictor is under load) does the worker wait up to
`max_delay_s` for the batch to fill.

Under a steady closed-loop load of C clients the batches settle at about C/2 rows: while one half
runs, the other half's next requests queue up. On a CPU that costs little (a forward of 8 rows
costs about 5 % more CPU per row than one of 16; docs/performance.md); waiting for the clients
of the last batch to come back was tried and was no better.

With `workers` > 1, that many worker tasks share the queue, each running its own forward in its
own thread and taking only its share of the rows waiting. Before each forward the batcher tells
the runtime (`before_forward`) whether that forward runs alone: no other forward running and no
request waiting. The runtime then gives a lone forward every intra-op thread (the lowest latency
for a lone request) and each of several forwards its share of them (the highest throughput: on a
small CPU two single-threaded forwards beat one forward on two threads, docs/performance.md).

Pure numpy and asyncio: the forward function is injected, so this module is tested without torch.
The batch sizes and waits are Prometheus histograms on the predictor's /metrics.

Tracing (`kserve_kit.tracing`, when on): each request gets a `predictor.queue` span, a child of
its own `predictor.infer` span, from its arrival here to the start of the forward that serves it.
One forward serves requests of several traces, so it is one `predictor.forward` span per batch:
a child of the first request's queue span, with a link to every request's queue span (the
others' traces reach it through the link), and the batch's rows, requests and length.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from prometheus_client import Histogram

from kserve_kit import tracing

# forward(input_ids [B, L], attention_mask [B, L], token_type_ids [B, L] | None) -> logits [B, C]
Forward = Callable[[np.ndarray, np.ndarray, np.ndarray | None], np.ndarray]

BATCH_ROWS = Histogram(
    "kserve_kit_predictor_batch_rows",
    "Rows in each forward pass the batcher ran",
    buckets=(1, 2, 4, 8, 12, 16, 24, 32, 64, 128, 256),
)
BATCH_WAIT = Histogram(
    "kserve_kit_predictor_batch_queue_seconds",
    "Time from a request's arrival at the batcher to the start of its forward pass",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
)


@dataclass
class _Job:
    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray | None
    future: asyncio.Future = field(repr=False)
    arrived: float = field(default_factory=time.monotonic)
    span: object = field(default=None, repr=False)  # its predictor.queue span, when tracing

    @property
    def rows(self) -> int:
        return self.input_ids.shape[0]


def pad_and_stack(jobs: list[_Job], pad_id: int) -> tuple[np.ndarray, ...]:
    """One batch from several requests: rows stacked, sequences right-padded to the longest.

    Padded positions get `pad_id` and attention 0, so they change no real token's output.
    `token_type_ids` is sent only when some request sent it (zeros elsewhere, the default).
    """
    length = max(job.input_ids.shape[1] for job in jobs)
    rows = sum(job.rows for job in jobs)
    ids = np.full((rows, length), pad_id, dtype=np.int64)
    mask = np.zeros((rows, length), dtype=np.int64)
    with_types = any(job.token_type_ids is not None for job in jobs)
    types = np.zeros((rows, length), dtype=np.int64) if with_types else None
    row = 0
    for job in jobs:
        n, width = job.input_ids.shape
        ids[row : row + n, :width] = job.input_ids
        mask[row : row + n, :width] = job.attention_mask
        if types is not None and job.token_type_ids is not None:
            types[row : row + n, :width] = job.token_type_ids
        row += n
    return ids, mask, types


class Batcher:
    """Runs `forward` for concurrent callers, merging them into batches."""

    def __init__(
        self,
        forward: Forward,
        max_batch_size: int,
        max_delay_s: float,
        pad_id: int = 0,
        workers: int = 1,
        before_forward: Callable[[bool], None] | None = None,
    ):
        """`workers` forwards may run at once, each on its own batch and its own thread.
        `before_forward(alone)` runs in that thread before each forward, `alone` saying whether
        no other forward runs or waits to run (the runtime sets its torch threads there). One
        worker is the classic batcher: torch parallelises inside each forward."""
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self._forward = forward
        self._max_rows = max_batch_size
        self._max_delay_s = max_delay_s
        self._pad_id = pad_id
        self._queue: asyncio.Queue[_Job] | None = None
        self._carry: _Job | None = None  # a job that did not fit the last batch goes first next
        self._queued_rows = 0  # rows in the queue (not counting the carry)
        self._workers: list[asyncio.Task] = []
        self._worker_count = workers
        self._running = 0  # forwards running now
        self._before_forward = before_forward
        self._executor = concurrent.futures.ThreadPoolExecutor(
            workers, thread_name_prefix="forward"
        )

    async def infer(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        token_type_ids: np.ndarray | None = None,
    ) -> np.ndarray:
        """Logits for these rows, computed alone or together with other callers' rows."""
        loop = asyncio.get_running_loop()
        if self._max_delay_s == 0:
            # Batching off: each request is its own forward, still off the event loop.
            arrived = time.monotonic()
            span = tracing.start_span("predictor.queue", {"kserve_kit.rows": len(input_ids)})
            return await self._run_forward(
                loop, [arrived], input_ids, attention_mask, token_type_ids, [span]
            )
        if not self._workers or any(worker.done() for worker in self._workers):
            for worker in self._workers:
                worker.cancel()
            self._queue = asyncio.Queue()
            self._carry = None
            self._queued_rows = 0
            self._workers = [loop.create_task(self._run()) for _ in range(self._worker_count)]
        job = _Job(input_ids, attention_mask, token_type_ids, loop.create_future())
        job.span = tracing.start_span("predictor.queue", {"kserve_kit.rows": job.rows})
        self._queue.put_nowait(job)
        self._queued_rows += job.rows
        return await job.future

    def _take(self) -> _Job:
        job = self._queue.get_nowait()
        self._queued_rows -= job.rows
        return job

    async def _collect(self) -> list[_Job]:
        """The next batch: the first waiting job, then whatever else fits. With several
        workers, a worker takes only its share of the rows waiting (rounded up), so that the
        others get the rest instead of idling beside one big forward."""
        if self._carry is not None:
            first, self._carry, under_load = self._carry, None, True
        else:
            first = await self._queue.get()
            self._queued_rows -= first.rows
            under_load = not self._queue.empty()
        limit = self._max_rows
        if self._worker_count > 1:
            waiting = first.rows + self._queued_rows
            limit = min(limit, max(first.rows, math.ceil(waiting / self._worker_count)))
        batch, rows = [first], first.rows
        deadline = time.monotonic() + self._max_delay_s
        while rows < limit:
            if not self._queue.empty():
                job = self._take()
            elif under_load and (remaining := deadline - time.monotonic()) > 0:
                try:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
                self._queued_rows -= job.rows
            else:
                break
            if rows + job.rows > limit:
                if self._carry is None:
                    self._carry = job
                else:  # another worker's leftover is already waiting: this one queues again
                    self._queue.put_nowait(job)
                    self._queued_rows += job.rows
                break
            batch.append(job)
            rows += job.rows
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            for job in batch:
                if job.future.done():  # a caller that gave up: its wait ends here
                    tracing.end_span(job.span)
            batch = [job for job in batch if not job.future.done()]
            if not batch:
                continue
            try:
                ids, mask, types = pad_and_stack(batch, self._pad_id)
                logits = await self._run_forward(
                    loop, [j.arrived for j in batch], ids, mask, types, [j.span for j in batch]
                )
            except Exception as exc:  # the forward failed: every caller in the batch learns why
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            row = 0
            for job in batch:
                if not job.future.done():
                    job.future.set_result(logits[row : row + job.rows])
                row += job.rows

    async def _run_forward(self, loop, arrived: list[float], ids, mask, types, spans) -> np.ndarray:
        """One forward in a forward thread; `arrived`: when its requests reached the batcher,
        `spans`: their queue spans (None each when tracing is off)."""
        waiting = self._carry is not None or (self._queue is not None and not self._queue.empty())
        alone = self._running == 0 and not waiting
        self._running += 1
        try:
            return await loop.run_in_executor(
                self._executor, self._forward_in_thread, arrived, alone, ids, mask, types, spans
            )
        finally:
            self._running -= 1

    def _forward_in_thread(self, arrived, alone, ids, mask, types, spans) -> np.ndarray:
        started = time.monotonic()
        for t in arrived:
            BATCH_WAIT.observe(started - t)
        BATCH_ROWS.observe(ids.shape[0])
        for span in spans:
            tracing.end_span(span)
        with tracing.batch_span("predictor.forward", spans, _forward_attributes(ids, spans, alone)):
            if self._before_forward is not None:
                self._before_forward(alone)
            return self._forward(ids, mask, types)

    def close(self) -> None:
        for worker in self._workers:
            worker.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)


def _forward_attributes(ids: np.ndarray, spans, alone: bool) -> dict | None:
    if not tracing.enabled():
        return None
    return {
        "kserve_kit.batch.rows": ids.shape[0],
        "kserve_kit.batch.requests": len(spans),
        "kserve_kit.batch.sequence_length": ids.shape[1],
        "kserve_kit.forward.alone": alone,
    }
