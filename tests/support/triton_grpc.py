"""NVIDIA's tritonclient gRPC client, run in a process of its own.

tritonclient's generated protobuf classes and KServe's both register `inference.*` in
protobuf's default descriptor pool, and one process cannot hold both ("duplicate symbol"):
the tests import KServe, so they call this module as a subprocess (`call_grpc`).

    python -m tests.support.triton_grpc HOST:PORT < calls.json > results.json

Each call is {"call": NAME, ...arguments}; each result is {"ok": value} or, for a refusal,
{"status": "StatusCode.X", "message": "..."}. Outputs are read with tritonclient's own
`InferResult.as_numpy`, which reads only `raw_output_contents`: an output it cannot read comes
back as None, so a server answering in typed contents fails the tests that read it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np


def call_grpc(target: str, *calls: dict) -> list[dict]:
    """Run `calls` against `target` with tritonclient's gRPC client, in a subprocess."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.triton_grpc", target],
        input=json.dumps(list(calls)),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def _infer(client, grpcclient, call: dict) -> dict:
    texts = call.get("texts")
    if texts is not None:
        tensor = grpcclient.InferInput("text", [len(texts)], "BYTES")
        tensor.set_data_from_numpy(np.array([t.encode() for t in texts], dtype=np.object_))
        inputs = [tensor]
    else:
        inputs = []
        datatype = call.get("token_datatype", "INT64")
        for name, rows in call["tokens"].items():
            array = np.array(rows, dtype=np.int64 if datatype == "INT64" else np.int32)
            tensor = grpcclient.InferInput(name, list(array.shape), datatype)
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
    outputs = [grpcclient.InferRequestedOutput(n) for n in call.get("outputs", [])] or None
    result = client.infer(
        call.get("model", "text-classifier"),
        inputs,
        model_version=call.get("model_version", ""),
        outputs=outputs,
        parameters=call.get("parameters"),
    )
    response = result.get_response()
    values = {}
    for output in response.outputs:
        array = result.as_numpy(output.name)
        if array is None:
            values[output.name] = None
        elif output.datatype == "BYTES":
            values[output.name] = [b.decode() for b in array.reshape(-1)]
        else:
            values[output.name] = array.tolist()
    dtypes = {o.name: o.datatype for o in response.outputs}
    shapes = {o.name: list(o.shape) for o in response.outputs}
    return {
        "outputs": values,
        "datatypes": dtypes,
        "shapes": shapes,
        "raw": len(response.raw_output_contents),
        "model_version": response.model_version,
        "parameters": {k: v.string_param for k, v in response.parameters.items()},
    }


def _run(client, grpcclient, call: dict):
    name = call["call"]
    model = call.get("model", "text-classifier")
    version = call.get("model_version", "")
    if name == "infer":
        return _infer(client, grpcclient, call)
    if name in ("load_model", "unload_model"):
        getattr(client, name)(model)
        return True
    if name == "is_model_ready":
        return client.is_model_ready(model, model_version=version)
    if name == "server_extensions":
        return list(client.get_server_metadata().extensions)
    if name == "model_metadata":
        metadata = client.get_model_metadata(model, model_version=version)
        return {
            "name": metadata.name,
            "platform": metadata.platform,
            "versions": [*metadata.versions],
        }
    raise ValueError(f"unknown call {name!r}")


def main() -> None:
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(sys.argv[1])
    results = []
    for call in json.load(sys.stdin):
        try:
            results.append({"ok": _run(client, grpcclient, call)})
        except InferenceServerException as exc:
            results.append({"status": str(exc.status()), "message": exc.message()})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
