"""Peer 1: the same model served by PyTriton with Triton's dynamic batcher.

What a user who picks PyTriton instead of the kit would write: one Python callable that takes a
batch of texts, tokenizes them (the same `tokenizers` file, padded to the longest text), runs the
Hugging Face model and answers probabilities; Triton (C++) owns HTTP, gRPC and the batching.

Runs in its own virtual environment (`.venv-pytriton`, bench/requirements-pytriton.txt: PyTriton
needs numpy<2, the kit numpy 2), and needs LD_LIBRARY_PATH to hold the running Python's library
directory (the benchmark sets it). Only the standard library, numpy, torch, transformers,
tokenizers and pytriton are imported: not the kit.

    .venv-pytriton/bin/python bench/peers/pytriton_server.py --model_dir models/demo \
        --http_port 8000 --grpc_port 8001 --metrics_port 8002 --threads 2
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as for every target of the benchmark

import numpy as np  # noqa: E402
import torch  # noqa: E402
from pytriton.decorators import batch  # noqa: E402
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor  # noqa: E402
from pytriton.triton import Triton, TritonConfig  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from transformers import AutoModelForSequenceClassification  # noqa: E402


def make_infer(model_dir: Path, max_length: int):
    config = json.loads((model_dir / "config.json").read_text())
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.enable_padding(pad_id=config.get("pad_token_id") or 0)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()

    def infer(text: np.ndarray) -> dict[str, np.ndarray]:
        texts = [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in text.reshape(-1)]
        encodings = tokenizer.encode_batch(texts)
        ids = torch.tensor([e.ids for e in encodings], dtype=torch.int64)
        mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.int64)
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=mask).logits
        return {"probabilities": torch.softmax(logits, dim=1).numpy().astype(np.float32)}

    for rows in (1, 32):  # the first forwards of a shape are slow
        infer(text=np.array([[b"warm up " * 20]] * rows, dtype=object))
    return batch(infer), len(config["id2label"])


def main() -> None:
    parser = argparse.ArgumentParser(description="PyTriton peer for the kit's benchmark")
    parser.add_argument("--model_dir", type=Path, required=True)
    parser.add_argument("--model_name", default="text-classifier")
    parser.add_argument("--http_port", type=int, required=True)
    parser.add_argument("--grpc_port", type=int, required=True)
    parser.add_argument("--metrics_port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--max_batch_size", type=int, default=32)
    parser.add_argument("--max_queue_delay_us", type=int, default=0)
    parser.add_argument("--max_length", type=int, default=128)
    args = parser.parse_args()

    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    infer, classes = make_infer(args.model_dir, args.max_length)
    triton_config = TritonConfig(
        http_address="127.0.0.1",
        http_port=args.http_port,
        grpc_address="127.0.0.1",
        grpc_port=args.grpc_port,
        metrics_address="127.0.0.1",
        metrics_port=args.metrics_port,
        allow_metrics=False,
        log_verbose=0,
    )
    with Triton(config=triton_config) as triton:
        triton.bind(
            model_name=args.model_name,
            infer_func=infer,
            inputs=[Tensor(name="text", dtype=bytes, shape=(1,))],
            outputs=[Tensor(name="probabilities", dtype=np.float32, shape=(classes,))],
            config=ModelConfig(
                max_batch_size=args.max_batch_size,
                batcher=DynamicBatcher(max_queue_delay_microseconds=args.max_queue_delay_us),
            ),
            strict=False,
        )
        triton.serve()


if __name__ == "__main__":
    main()
