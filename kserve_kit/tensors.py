"""Tensor codecs: V2 request tensors -> checked numpy arrays and Python strings.

Every way a tensor can disagree with the contract becomes a `BadInput` that says what was
expected and what came: a missing name, a datatype, a rank, data that does not fill its shape.
"""

from __future__ import annotations

import numpy as np
from kserve import InferRequest

from kserve_kit.contract import TensorSpec
from kserve_kit.errors import BadInput

# numpy's dtype kinds that JSON numbers may arrive as, per V2 datatype.
_JSON_KINDS = {"INT64": "iu", "INT32": "iu", "FP32": "iuf"}
_KIND_NAMES = {
    "INT64": "integers",
    "INT32": "integers",
    "FP32": "numbers",
    "f": "non-integer numbers",
    "U": "strings",
    "O": "mixed or nested values",
    "b": "booleans",
}


def find_input(payload: InferRequest, spec: TensorSpec):
    for tensor in payload.inputs:
        if tensor.name == spec.name:
            return tensor
    names = [t.name for t in payload.inputs]
    raise BadInput(
        f"missing input tensor {spec.name!r} ({'/'.join(spec.datatypes)}); got inputs {names}"
    )


def read_tensor(payload: InferRequest, spec: TensorSpec) -> np.ndarray:
    """The named input as a numpy array of the contract's rank."""
    tensor = find_input(payload, spec)
    if tensor.datatype not in spec.datatypes:
        raise BadInput(
            f"input {spec.name!r} must have datatype {' or '.join(spec.datatypes)}, "
            f"got {tensor.datatype}"
        )
    shape = list(tensor.shape)
    if len(shape) != spec.rank or any(not isinstance(d, int) or d < 0 for d in shape):
        raise BadInput(f"input {spec.name!r} must have a shape of rank {spec.rank}, got {shape}")
    if not payload.from_grpc and isinstance(tensor.data, list) and tensor.data:
        # JSON: check the kind before numpy casts (an empty list has none to check)
        try:
            kind = np.asarray(tensor.data).dtype.kind
        except ValueError:  # ragged nesting
            kind = "O"
        if kind not in _JSON_KINDS[tensor.datatype]:
            raise BadInput(
                f"input {spec.name!r} ({tensor.datatype}) must hold {_KIND_NAMES[tensor.datatype]}"
                f", got {_KIND_NAMES.get(kind, 'other values')}"
            )
    try:
        array = tensor.as_numpy()
    except Exception as exc:  # KServe raises several types for data that does not fit
        raise BadInput(f"input {spec.name!r}: data does not match shape {shape}: {exc}") from None
    if list(array.shape) != shape:
        raise BadInput(
            f"input {spec.name!r}: data has {array.size} elements, shape {shape} needs "
            f"{int(np.prod(shape))}"
        )
    return array


def read_texts(payload: InferRequest, spec: TensorSpec) -> list[str]:
    """A BYTES tensor of shape [N] or [N, 1] as N strings.

    REST JSON delivers `str`, gRPC delivers `bytes`; bytes must be UTF-8.
    """
    tensor = find_input(payload, spec)
    if tensor.datatype not in spec.datatypes:
        raise BadInput(f"input {spec.name!r} must have datatype BYTES, got {tensor.datatype}")
    shape = list(tensor.shape)
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or shape[0] < 0:
        raise BadInput(f"input {spec.name!r} must have shape [N] or [N, 1], got {shape}")
    data = _bytes_elements(tensor)
    if len(data) != shape[0]:
        raise BadInput(
            f"input {spec.name!r}: shape {shape} needs {shape[0]} texts, got {len(data)}"
        )
    texts = []
    for i, item in enumerate(data):
        if isinstance(item, bytes):
            try:
                item = item.decode("utf-8")
            except UnicodeDecodeError as exc:
                reason = f"{exc.reason} at byte {exc.start}"
                raise BadInput(f"text {i} is not valid UTF-8: {reason}") from None
        if not isinstance(item, str):
            raise BadInput(f"text {i} must be a string, got {type(item).__name__}")
        texts.append(item)
    return texts


def _bytes_elements(tensor) -> list:
    """The elements of a BYTES tensor, flat, whether they came as JSON or as raw gRPC bytes."""
    try:
        array = tensor.as_numpy()
    except Exception as exc:
        raise BadInput(f"input {tensor.name!r}: cannot read BYTES data: {exc}") from None
    return list(np.asarray(array, dtype=object).reshape(-1))
