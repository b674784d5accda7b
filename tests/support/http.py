"""Plain HTTP and gRPC calls for the tests: status and JSON body, nothing hidden."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import grpc
import numpy as np
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

MODEL = "text-classifier"


def post(url: str, body, content_type: str = "application/json", timeout: float = 30):
    """POST `body` (a dict, or raw bytes) and return (status, parsed JSON or text)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, _parse(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, _parse(exc.read())


def get(url: str, timeout: float = 10):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, _parse(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, _parse(exc.read())


def _parse(raw: bytes):
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def infer_url(server, model: str = MODEL) -> str:
    return f"{server.url}/v2/models/{model}/infer"


def texts_body(texts, **extra) -> dict:
    return {
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}],
        **extra,
    }


def outputs(body: dict) -> dict:
    return {o["name"]: o for o in body["outputs"]}


def grpc_infer(
    target: str, request: pb.ModelInferRequest, timeout: float = 30, metadata: tuple = ()
):
    """One ModelInfer call (with `metadata`: (key, value) pairs); returns (status code,
    response or details)."""

    async def call():
        async with grpc.aio.insecure_channel(target) as channel:
            try:
                response = await pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
                    request, timeout=timeout, metadata=metadata or None
                )
                return grpc.StatusCode.OK, response
            except grpc.aio.AioRpcError as exc:
                return exc.code(), exc.details()

    return asyncio.run(call())


def grpc_arrays(response: pb.ModelInferResponse) -> dict:
    """{output name: numpy array} of a ModelInfer answer, read as KServe's own gRPC client reads
    it (raw contents or typed); BYTES elements as str."""
    from kserve import InferResponse

    arrays = {}
    for output in InferResponse.from_grpc(response).outputs:
        array = output.as_numpy()
        if output.datatype == "BYTES":
            array = np.array([b.decode() if isinstance(b, bytes) else b for b in array.flat])
        arrays[output.name] = array
    return arrays


def grpc_texts(texts: list[bytes], model: str = MODEL, **parameters) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model)
    tensor = request.inputs.add(name="text", datatype="BYTES", shape=[len(texts)])
    tensor.contents.bytes_contents.extend(texts)
    for key, value in parameters.items():
        request.parameters[key].string_param = str(value)
    return request
