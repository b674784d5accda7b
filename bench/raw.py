"""The physical limit: the predictor's own torch forward, called directly, batch after batch.

    python -m bench.raw --model_dir models/demo --threads 2 --batches 1,16,32 --seconds 3
    python -m bench.raw --model_dir models/demo --quantize int8 --serve   # for bench/__main__

Runs in its own process with the settings of a served predictor (it loads the model through
`predictor.runtime.TorchRuntime`: same threads, same OpenMP policy, same forward). One-shot, it
prints one JSON object. With --serve it keeps the model loaded and answers one JSON line per
command line on stdin, so the benchmark can interleave its measurements with the servers':
`{"cmd": "forward", "batch": 16, "seconds": 2}` or `{"cmd": "accuracy"}` (the demo's held-out
split, tokenized as the transformer does). `"parallel": 2` runs two forwards at once, each in its
own thread on its share of the threads: the layout of a predictor with two forward workers under
load, and this CPU's best raw throughput.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

from bench.inputs import make_texts, tokenize
from predictor.config import COMPILE_MODES, DTYPES, PredictorSettings
from predictor.runtime import TorchRuntime

MAX_FORWARDS = 100_000  # a bound on every timing loop, besides its duration


def measure(runtime: TorchRuntime, batches: list, seconds: float, parallel: int = 1) -> dict:
    """`parallel` threads forwarding the prepared batches in turn for `seconds`, each with
    threads/parallel intra-op threads (one thread: all of them): per-forward times, and rows/s
    of all the threads together."""
    import torch

    share = max(1, runtime.threads // parallel)
    times: list[float] = []
    rows = [0] * parallel
    lock = threading.Lock()
    start = threading.Barrier(parallel + 1)

    def loop(k: int) -> None:
        torch.set_num_threads(share)
        for ids, mask in batches[:2]:  # this thread's first calls of this shape are not timed
            runtime.forward(ids, mask)
        start.wait()
        begun = time.perf_counter()
        for i in range(MAX_FORWARDS):
            ids, mask = batches[(i + k) % len(batches)]
            t0 = time.perf_counter()
            runtime.forward(ids, mask)
            t1 = time.perf_counter()
            with lock:
                times.append(t1 - t0)
            rows[k] += ids.shape[0]
            if t1 - begun >= seconds:
                break

    threads = [threading.Thread(target=loop, args=(k,)) for k in range(parallel)]
    for t in threads:
        t.start()
    start.wait()
    started, cpu_started = time.perf_counter(), time.process_time()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    return {
        "forwards": len(times),
        "rows": sum(rows),
        "rows_per_s": sum(rows) / elapsed,
        "forward_ms_p50": 1000 * statistics.median(times),
        "cpu_ms_per_row": 1000 * cpu / sum(rows),
        "parallel": parallel,
    }


def prepared(model_dir: Path, batch: int, texts: list[str]) -> list:
    """Batches of `batch` consecutive texts, each padded to its own longest text."""
    out = []
    for start in range(0, len(texts) - batch + 1, batch):
        out.append(tokenize(model_dir, texts[start : start + batch]))
    return out


def logits_of(runtime: TorchRuntime, model_dir: Path, texts: list[str]) -> np.ndarray:
    """Logits of `texts`, tokenized as the transformer does, 16 texts per forward."""
    from kserve_kit.modeldir import ModelInfo
    from kserve_kit.tokenization import TextEncoder

    encoder = TextEncoder(ModelInfo.load(model_dir), max_length=128)
    chunks = []
    for start in range(0, len(texts), 16):
        encoded = encoder.encode(texts[start : start + 16])
        chunks.append(runtime.forward(encoded.input_ids, encoded.attention_mask))
    return np.concatenate(chunks)


def heldout_accuracy(runtime: TorchRuntime, model_dir: Path) -> dict:
    """Top-1 accuracy on the demo's held-out split, texts tokenized as the transformer does."""
    from demo.build import load_examples, split
    from kserve_kit.modeldir import ModelInfo

    labels = ModelInfo.load(model_dir).labels
    _, heldout = split(load_examples())
    predicted = logits_of(runtime, model_dir, [text for text, _ in heldout]).argmax(axis=1)
    correct = sum(labels[p] == label for p, (_, label) in zip(predicted, heldout, strict=True))
    return {"examples": len(heldout), "correct": int(correct), "accuracy": correct / len(heldout)}


def serve(runtime: TorchRuntime, model_dir: Path) -> None:
    """Answer commands from stdin until it closes (the benchmark's worker mode)."""
    texts = make_texts(model_dir)
    cache: dict[int, list] = {}
    print(
        json.dumps({"ready": True, "threads": runtime.threads, "dtype": runtime.dtype}), flush=True
    )
    for line in sys.stdin:
        command = json.loads(line)
        if command["cmd"] == "forward":
            batch = int(command["batch"])
            if batch not in cache:
                cache[batch] = prepared(model_dir, batch, texts)
            parallel = int(command.get("parallel", 1))
            answer = measure(runtime, cache[batch], float(command["seconds"]), parallel)
        elif command["cmd"] == "accuracy":
            answer = heldout_accuracy(runtime, model_dir)
        else:
            answer = {"error": f"unknown command {command['cmd']!r}"}
        print(json.dumps(answer), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--quantize", choices=("none", "int8"), default="none")
    parser.add_argument("--dtype", choices=DTYPES, default="auto")  # as the servers
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--compile", choices=COMPILE_MODES, default="trace")
    parser.add_argument("--batches", default="1,16,32")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--serve", action="store_true", help="answer commands on stdin")
    args = parser.parse_args(argv)

    config = PredictorSettings.from_args(
        [
            "--model_dir",
            str(args.model_dir),
            "--device",
            args.device,
            "--dtype",
            args.dtype,
            "--torch_threads",
            str(args.threads),
            "--quantize",
            args.quantize,
            "--compile",
            args.compile,
        ]
    )
    runtime = TorchRuntime.load(config)
    if args.serve:
        serve(runtime, args.model_dir)
        return
    texts = make_texts(args.model_dir)
    result = {
        "threads": runtime.threads,
        "quantize": args.quantize,
        "dtype": runtime.dtype,
        "batches": {},
    }
    for batch in (int(b) for b in args.batches.split(",")):
        result["batches"][str(batch)] = measure(
            runtime, prepared(args.model_dir, batch, texts), args.seconds
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
