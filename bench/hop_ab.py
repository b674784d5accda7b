"""The transformer's hop alone, single channel against balanced, side by side, one predictor:
`python -m bench.hop_ab --model_dir models/demo [--rounds 5 --seconds 3 --concurrency 16]`.

Starts one predictor and, in this process, two `PredictorClient`s to it: `pick_first` with no
retries (the hop before balancing) and `round_robin` with the retry policy (the default). Each
round runs both, in a shuffled order, as a closed loop of token requests; the table gives each
one's median throughput and the median over the rounds of the balanced/single ratio, the
number to read on a shared machine. Tokenization and the decision stay out: this is the hop's
cost, which `make bench`'s chain cells dilute with the transformer's own work.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from pathlib import Path

import numpy as np

from bench import loadgen
from bench.procs import READY_TIMEOUT_S, STOP_TIMEOUT_S, chain_servers

REPO = Path(__file__).resolve().parents[1]
MODEL_NAME = "text-classifier"


def token_request():
    from kserve import InferInput, InferRequest

    ids = np.array([[101] + [1000 + i for i in range(30)] + [102]], dtype=np.int64)
    inputs = []
    for name, array in (("input_ids", ids), ("attention_mask", np.ones_like(ids))):
        tensor = InferInput(name, list(array.shape), "INT64")
        tensor.set_data_from_numpy(array, binary_data=True)
        inputs.append(tensor)
    return InferRequest(model_name=MODEL_NAME, infer_inputs=inputs, request_id="bench")


async def run(args) -> dict[str, list[float]]:
    from transformer.balancing import RetryPolicy
    from transformer.hop import PredictorClient

    logs = args.out / "hop-ab-logs"
    logs.mkdir(parents=True, exist_ok=True)
    predictor, _ = chain_servers(args.model_dir, logs, ["--torch_threads", "1"], "-hop", cwd=REPO)
    predictor.start().wait_ready(READY_TIMEOUT_S)
    request = token_request()
    clients = {
        "single (pick_first, no retries)": PredictorClient(
            predictor.grpc_target,
            "grpc-v2",
            MODEL_NAME,
            30,
            retry=RetryPolicy(attempts=1),
            load_balancing="pick_first",
        ),
        "balanced (round_robin, retries)": PredictorClient(
            predictor.grpc_target, "grpc-v2", MODEL_NAME, 30
        ),
    }
    results: dict[str, list[float]] = {name: [] for name in clients}
    cpu: dict[str, list[float]] = {name: [] for name in clients}
    rng = random.Random(args.seed)
    try:
        for _ in range(args.rounds):
            order = list(clients.items())
            rng.shuffle(order)
            for name, client in order:

                async def call(_i, client=client):
                    await client.infer(request, None)

                await loadgen.closed_loop(call, args.concurrency, args.warmup_s, record=False)
                cpu0 = time.process_time()
                out = await loadgen.closed_loop(call, args.concurrency, args.seconds)
                used = time.process_time() - cpu0
                assert out.errors == 0, out.first_error
                results[name].append(out.throughput)
                cpu[name].append(1000 * used / max(out.requests, 1))
    finally:
        for client in clients.values():
            await client.close()
        predictor.stop(STOP_TIMEOUT_S)
    return results, cpu


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hop_ab", description=__doc__)
    parser.add_argument("--model_dir", type=Path, default=REPO / "models" / "demo")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup_s", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=20261201)
    args = parser.parse_args(argv)
    args.model_dir = args.model_dir.resolve()
    results, cpu = asyncio.run(run(args))
    (single, first), (balanced, second) = results.items()
    ratios = [b / a for a, b in zip(first, second, strict=True)]
    print(f"concurrency {args.concurrency}, {args.rounds} rounds of {args.seconds} s")
    for name, runs in results.items():
        print(
            f"{name}: {statistics.median(runs):.1f} req/s {[round(x) for x in runs]}; "
            f"client CPU {statistics.median(cpu[name]):.3f} ms/request "
            f"{[round(x, 3) for x in cpu[name]]}"
        )
    print(
        f"balanced / single throughput: median {statistics.median(ratios):.3f} "
        f"per round {[round(r, 3) for r in ratios]}"
    )


if __name__ == "__main__":
    main()
