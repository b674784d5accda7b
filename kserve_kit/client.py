"""A small V2 client for the transformer: print label and confidence for texts.

python -m kserve_kit.client "I was charged twice"              # REST, localhost:8080
python -m kserve_kit.client --grpc localhost:8081 "where is my parcel?"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass

from kserve_kit import contract


@dataclass(frozen=True)
class Answer:
    text: str
    label: str
    confidence: float
    probabilities: list[float]


def v2_request(texts: list[str], threshold: float | None = None) -> dict:
    """The V2 JSON body the transformer expects."""
    body: dict = {
        "inputs": [
            {
                "name": contract.TEXT.name,
                "datatype": contract.TEXT.datatype,
                "shape": [len(texts)],
                "data": texts,
            }
        ]
    }
    if threshold is not None:
        body["parameters"] = {contract.THRESHOLD_PARAMETER: threshold}
    return body


def answers_from_json(texts: list[str], response: dict) -> list[Answer]:
    outputs = {o["name"]: o for o in response["outputs"]}
    n_classes = outputs[contract.PROBABILITIES.name]["shape"][1]
    flat = outputs[contract.PROBABILITIES.name]["data"]
    return [
        Answer(
            text=text,
            label=outputs[contract.LABEL.name]["data"][i],
            confidence=outputs[contract.CONFIDENCE.name]["data"][i],
            probabilities=flat[i * n_classes : (i + 1) * n_classes],
        )
        for i, text in enumerate(texts)
    ]


def classify_rest(
    url: str,
    texts: list[str],
    threshold: float | None = None,
    model_name: str = contract.DEFAULT_MODEL_NAME,
    timeout_s: float = 30,
) -> list[Answer]:
    request = urllib.request.Request(
        f"{url.rstrip('/')}/v2/models/{model_name}/infer",
        data=json.dumps(v2_request(texts, threshold)).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return answers_from_json(texts, json.load(response))


async def classify_grpc(
    target: str,
    texts: list[str],
    threshold: float | None = None,
    model_name: str = contract.DEFAULT_MODEL_NAME,
) -> list[Answer]:
    import numpy as np

    from kserve_kit.cli import import_model_server

    import_model_server()  # before kserve parses this command's arguments as its own
    from kserve import InferInput, InferRequest
    from kserve.inference_client import InferenceGRPCClient

    tensor = InferInput(contract.TEXT.name, [len(texts)], contract.TEXT.datatype)
    tensor.set_data_from_numpy(np.array([t.encode() for t in texts], dtype=np.object_))
    # KServe's gRPC client cannot send a double_param (its copy of the proto lacks one); the
    # transformer takes the threshold as a string_param as well.
    parameters = {contract.THRESHOLD_PARAMETER: str(threshold)} if threshold is not None else None
    request = InferRequest(model_name=model_name, infer_inputs=[tensor], parameters=parameters)
    client = InferenceGRPCClient(target, timeout=30, retries=0)
    try:
        response = await client.infer(request)
    finally:
        await client.close()
    outputs = {o.name: o.as_numpy() for o in response.outputs}
    return [
        Answer(
            text=text,
            label=_text(outputs[contract.LABEL.name][i]),
            confidence=float(outputs[contract.CONFIDENCE.name][i]),
            probabilities=outputs[contract.PROBABILITIES.name][i].tolist(),
        )
        for i, text in enumerate(texts)
    ]


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Classify texts through the kit's transformer")
    parser.add_argument("texts", nargs="+", help="texts to classify")
    parser.add_argument("--url", default="http://localhost:8080", help="transformer REST base URL")
    parser.add_argument("--grpc", metavar="HOST:PORT", help="use gRPC at this address instead")
    parser.add_argument("--threshold", type=float, help="override the confidence threshold")
    parser.add_argument("--model_name", default=contract.DEFAULT_MODEL_NAME)
    args = parser.parse_args(argv)
    logging.getLogger("kserve").setLevel(logging.CRITICAL)  # its client logs every error twice
    try:
        if args.grpc:
            answers = asyncio.run(
                classify_grpc(args.grpc, args.texts, args.threshold, args.model_name)
            )
        else:
            answers = classify_rest(args.url, args.texts, args.threshold, args.model_name)
    except urllib.error.HTTPError as exc:
        sys.exit(f"HTTP {exc.code}: {exc.read().decode(errors='replace')}")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        sys.exit(
            f"nothing answers at {args.url} ({reason}): start the servers with `make serve`, "
            "or point --url at a running transformer"
        )
    except Exception as exc:  # grpc.RpcError: keep the grpc import lazy
        if not hasattr(exc, "code"):
            raise
        sys.exit(f"gRPC {exc.code().name} from {args.grpc}: {exc.details()}")
    for answer in answers:
        print(f"{answer.label:<14} {answer.confidence:.3f}  {answer.text}")


if __name__ == "__main__":
    main()
