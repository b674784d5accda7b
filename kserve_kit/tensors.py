"""Tensor codecs: V2 request tensors -> checked numpy arrays and Python strings, request
parameters -> Python values, and numpy arrays -> V2 responses encoded as the request asked.

Every way a tensor can disagree with the contract becomes a `BadInput` that says what was
expected and what came: a missing name, a datatype, a rank, data that does not fill its shape.
The servers' request checks (`check_texts`, `check_token_tensors`) sit here too, so that each
KServe hook reads as a few calls: read, check, compute, encode.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from kserve import InferOutput, InferRequest, InferResponse
from kserve.protocol.infer_type import RequestedOutput

from kserve_kit import contract
from kserve_kit.contract import TensorSpec
from kserve_kit.errors import BadInput, TooLarge

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


# Request parameters ------------------------------------------------------------------------

# InferParameter fields of the V2 gRPC protocol that KServe 0.21's copy of the proto lacks, so
# protobuf keeps them as unknown fields: what tritonclient sends for a Python float (double) or
# a large unsigned integer. (field number, protobuf wire type)
_GRPC_EXTRA_PARAMETERS = {(4, 1): "double_param", (5, 0): "uint64_param"}


def check_texts(texts: list[str], max_batch_size: int) -> None:
    """The transformer's request checks: at least one text, at most `max_batch_size`, none
    empty."""
    if not texts:
        raise BadInput("input 'text' holds no texts: send shape [N] with N >= 1")
    if len(texts) > max_batch_size:
        raise TooLarge(
            f"a request may hold at most {max_batch_size} texts (--max_batch_size), "
            f"got {len(texts)}"
        )
    for i, text in enumerate(texts):
        if not text.strip():
            raise BadInput(f"text {i} is empty: every text needs at least one visible character")


def check_token_tensors(
    tensors: dict[str, np.ndarray],
    vocab_size: int | None,
    max_positions: int | None,
    type_vocab_size: int | None,
    max_rows: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validate the predictor's inputs; return them as int64 arrays, or raise BadInput."""
    ids = tensors[contract.INPUT_IDS.name]
    mask = tensors[contract.ATTENTION_MASK.name]
    types = tensors.get(contract.TOKEN_TYPE_IDS.name)
    rows, length = ids.shape
    if rows == 0 or length == 0:
        raise BadInput(f"input_ids needs one row and one token at least, got {[rows, length]}")
    if rows > max_rows:
        raise TooLarge(f"a request may hold at most {max_rows} rows (--max_batch_size), got {rows}")
    if max_positions is not None and length > max_positions:
        raise BadInput(f"sequences may be at most {max_positions} tokens long, got {length}")
    for spec, other in ((contract.ATTENTION_MASK, mask), (contract.TOKEN_TYPE_IDS, types)):
        if other is not None and other.shape != ids.shape:
            raise BadInput(
                f"{spec.name} must have the shape of input_ids {list(ids.shape)}, "
                f"got {list(other.shape)}"
            )
    _check_range(contract.INPUT_IDS.name, ids, vocab_size, "the vocabulary size")
    _check_range(contract.ATTENTION_MASK.name, mask, 2, "0 or 1: an attention mask")
    if types is not None:
        _check_range(contract.TOKEN_TYPE_IDS.name, types, type_vocab_size, "the type vocabulary")
    as64 = lambda a: None if a is None else a.astype(np.int64, copy=False)  # noqa: E731
    return as64(ids), as64(mask), as64(types)


def _check_range(name: str, values: np.ndarray, upper: int | None, meaning: str) -> None:
    low = int(values.min())
    high = int(values.max())
    if low < 0 or (upper is not None and high >= upper):
        bound = f"[0, {upper})" if upper is not None else ">= 0"
        raise BadInput(
            f"{name} values must be in {bound} ({meaning}), got values from {low} to {high}"
        )


def read_parameter(parameters, name: str) -> tuple[str, object] | None:
    """A request parameter as (kind, value), or None when the request does not send it.

    The kind is what the client sent: over REST the JSON type (`number`, `string`, `boolean`,
    ...), over gRPC the InferParameter field (`double_param`, `string_param`, ...).
    """
    if not parameters or name not in parameters:
        return None
    value = parameters[name]
    if hasattr(value, "WhichOneof"):  # a gRPC InferParameter message
        which = value.WhichOneof("parameter_choice")
        if which:
            return which, getattr(value, which)
        return _grpc_extra_parameter(value.SerializeToString())
    if isinstance(value, bool):
        return "boolean", value
    if isinstance(value, (int, float)):
        return "number", value
    if isinstance(value, str):
        return "string", value
    return {dict: "object", list: "array", type(None): "null"}.get(type(value), "value"), value


def _grpc_extra_parameter(wire: bytes) -> tuple[str, object]:
    """Read a double_param or uint64_param from an InferParameter's serialized bytes."""
    pos = 0
    while pos < len(wire):
        tag, pos = _varint(wire, pos)
        field, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            value, pos = _varint(wire, pos)
        elif wire_type == 1:
            value, pos = struct.unpack_from("<d", wire, pos)[0], pos + 8
        elif wire_type == 5:
            pos += 4
            continue
        elif wire_type == 2:
            length, pos = _varint(wire, pos)
            pos += length
            continue
        else:
            break
        kind = _GRPC_EXTRA_PARAMETERS.get((field, wire_type))
        if kind:
            return kind, value
    return "unset parameter", None


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while pos < len(data):
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
    raise BadInput("a request parameter is not a valid protobuf message")


# Responses ---------------------------------------------------------------------------------

BINARY_OUTPUTS_PARAMETER = "binary_data_output"  # REST: every output as raw bytes
BINARY_OUTPUT_PARAMETER = "binary_data"  # REST: one requested output as raw bytes


@dataclass(frozen=True)
class OutputPlan:
    """Which outputs a request asked for, in order, and which of them go as raw bytes (REST)."""

    names: tuple[str, ...]
    binary: tuple[bool, ...]


def plan_outputs(payload: InferRequest, specs: Sequence[TensorSpec]) -> OutputPlan:
    """The outputs to answer: the ones the request names (all when it names none), refusing a
    name the model does not have. Over REST a request may ask for binary outputs, all at once
    (`parameters.binary_data_output`) or one by one (an output's `parameters.binary_data`);
    over gRPC the server picks the encoding."""
    available = [spec.name for spec in specs]
    rest = not payload.from_grpc
    default = _flag(payload.parameters, BINARY_OUTPUTS_PARAMETER, "request") if rest else False
    if not payload.request_outputs:
        return OutputPlan(tuple(available), (default,) * len(available))
    names, binary = [], []
    for output in payload.request_outputs:
        if output.name not in available:
            raise BadInput(
                f"unknown output {output.name!r} requested; this model's outputs are {available}"
            )
        if output.name in names:
            continue
        names.append(output.name)
        own = _flag(output.parameters, BINARY_OUTPUT_PARAMETER, f"output {output.name!r}")
        binary.append(rest and (default if own is None else own))
    return OutputPlan(tuple(names), tuple(binary))


def _flag(parameters, name: str, where: str) -> bool | None:
    found = read_parameter(parameters, name)
    if found is None:
        return False if where == "request" else None
    kind, value = found
    if kind not in ("boolean", "bool_param"):
        raise BadInput(f"{where} parameter {name!r} must be a boolean, got {kind} {value!r}")
    return value


def encode_response(
    payload: InferRequest,
    plan: OutputPlan,
    arrays: dict[str, np.ndarray],
    specs: Sequence[TensorSpec],
    *,
    model_name: str,
    model_version: str,
    grpc_binary: bool,
    parameters: dict | None = None,
    response_id: str | None = None,
) -> InferResponse:
    """A V2 response holding the planned outputs, encoded as the request asked.

    `grpc_binary`: over gRPC, send raw bytes (`raw_output_contents`) rather than typed contents.
    Raw is what Triton always answers and the only form tritonclient's gRPC `as_numpy` reads
    (KServe's own client reads both); BYTES go as a 4-byte little-endian length + the bytes.
    """
    datatypes = {spec.name: spec.datatype for spec in specs}
    outputs = []
    for name in plan.names:
        array = arrays[name]
        if payload.from_grpc:
            tensor = InferOutput(name, list(array.shape), datatypes[name])
            tensor.set_data_from_numpy(array, binary_data=grpc_binary)
            # KServe marks raw outputs with REST's `binary_data_size`, which over gRPC only
            # repeats the length of raw_output_contents[i]; Triton sends no such parameter.
            tensor.parameters = None
        else:  # to_rest encodes the array, binary or JSON, as each requested output says
            tensor = InferOutput(name, list(array.shape), datatypes[name], data=array)
        outputs.append(tensor)
    requested = None
    if not payload.from_grpc:
        requested = [
            RequestedOutput(name, {BINARY_OUTPUT_PARAMETER: binary})
            for name, binary in zip(plan.names, plan.binary, strict=True)
        ]
    return InferResponse(
        response_id=response_id or payload.id or str(uuid.uuid4()),
        model_name=model_name,
        model_version=model_version,
        infer_outputs=outputs,
        from_grpc=payload.from_grpc,
        parameters=parameters,
        requested_outputs=requested,
    )
