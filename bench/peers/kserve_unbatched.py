"""Peer 2: the same model as a plain KServe model, unbatched, the way KServe's Hugging Face
server serves encoders: texts in, the Hugging Face tokenizer in `preprocess`, one forward per
request in an `async predict` that runs on the event loop (no batching, no thread), softmax in
`postprocess`. V2 REST and gRPC from `kserve.ModelServer`.

    python -m bench.peers.kserve_unbatched --model_dir models/demo --http_port 8100 --grpc_port 8101

It does not use the kit's predictor or transformer code: it stands for what a user gets without
the kit.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as for every target of the benchmark

import numpy as np  # noqa: E402
import torch  # noqa: E402


def build_model(name: str, model_dir: str, max_length: int):
    from kserve import InferOutput, InferRequest, InferResponse, Model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    class UnbatchedEncoder(Model):
        def load(self) -> bool:
            self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
            self.model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
            self.ready = True
            return True

        def preprocess(self, payload: InferRequest, headers=None):
            texts = [
                t.decode("utf-8") if isinstance(t, bytes) else str(t)
                for t in np.asarray(payload.inputs[0].as_numpy(), dtype=object).reshape(-1)
            ]
            return self.tokenizer(
                texts, max_length=max_length, padding=True, truncation=True, return_tensors="pt"
            )

        async def predict(self, inputs, headers=None):
            with torch.no_grad():  # blocks the event loop for the whole forward, as upstream
                return self.model(**inputs, return_dict=True).logits

        def postprocess(self, logits, headers=None):
            probabilities = torch.softmax(logits, dim=-1).numpy().astype(np.float32)
            output = InferOutput("probabilities", list(probabilities.shape), "FP32")
            output.set_data_from_numpy(probabilities, binary_data=False)
            return InferResponse(
                response_id=str(uuid.uuid4()), model_name=self.name, infer_outputs=[output]
            )

    return UnbatchedEncoder(name)


def main() -> None:
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--model_dir", required=True)
    own.add_argument("--threads", type=int, default=0)
    own.add_argument("--max_length", type=int, default=128)
    args, rest = own.parse_known_args()
    sys.argv = sys.argv[:1] + rest  # the rest are KServe's flags (ports, model name)
    from kserve import ModelServer, model_server

    server_args = model_server.parser.parse_args(rest)
    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    model = build_model(server_args.model_name, args.model_dir, args.max_length)
    model.load()
    ModelServer(
        http_port=server_args.http_port,
        grpc_port=server_args.grpc_port,
        enable_latency_logging=False,
    ).start([model])


if __name__ == "__main__":
    main()
