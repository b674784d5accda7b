"""Property-based fuzzing of both servers' gRPC ModelInfer: no message gets INTERNAL or UNKNOWN.

Hypothesis builds ModelInferRequest messages near the contract (the real tensor names and
datatypes with any shape, typed contents of any kind, raw contents that may or may not match the
inputs, requested outputs, parameters of every type, model names and versions served or not)
and bytes that are no valid message at all (random, truncated or bit-flipped encodings), sent
through a channel that does not serialize. Every answer must be OK or a status that blames the
client (INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED, ...), within the deadline, with no
traceback in its details. Derandomized; KIT_FUZZ_EXAMPLES sets the count per server and kind.
"""

from __future__ import annotations

import struct
from collections import Counter

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

from kserve_kit.modeldir import ModelInfo
from tests.reliability.conftest import FUZZ_EXAMPLES

pytestmark = pytest.mark.reliability

METHOD = "/inference.GRPCInferenceService/ModelInfer"
SERVER_FAULTS = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
DATATYPES = ["BYTES", "INT64", "INT32", "FP32", "FP64", "BOOL", "UINT8", "FP16", "INT8"]
CONTENT_FIELDS = {
    "bytes_contents": st.lists(st.binary(max_size=20), max_size=6),
    "int64_contents": st.lists(st.integers(-(2**63), 2**63 - 1), max_size=12),
    "int_contents": st.lists(st.integers(-(2**31), 2**31 - 1), max_size=12),
    "uint64_contents": st.lists(st.integers(0, 2**64 - 1), max_size=6),
    "fp32_contents": st.lists(st.floats(width=32, allow_nan=True), max_size=8),
    "fp64_contents": st.lists(st.floats(allow_nan=True), max_size=8),
    "bool_contents": st.lists(st.booleans(), max_size=8),
}


def parameter_values():
    return st.one_of(
        st.builds(lambda v: pb.InferParameter(bool_param=v), st.booleans()),
        st.builds(lambda v: pb.InferParameter(int64_param=v), st.integers(-(2**63), 2**63 - 1)),
        st.builds(lambda v: pb.InferParameter(string_param=v), st.text(max_size=12)),
        st.just(pb.InferParameter()),
        # double_param (field 4) and uint64_param (field 5), which KServe's proto lacks
        st.builds(
            lambda v: pb.InferParameter.FromString(b"\x21" + v), st.binary(min_size=8, max_size=8)
        ),
        st.builds(lambda v: pb.InferParameter.FromString(bytes([0x28, v])), st.integers(0, 127)),
    )


def parameters():
    keys = st.sampled_from(["confidence_threshold", "binary_data_output", "binary_data"])
    return st.dictionaries(keys | st.text(max_size=8), parameter_values(), max_size=3)


@st.composite
def tensors(draw, names: list[str]):
    tensor = pb.ModelInferRequest.InferInputTensor(
        name=draw(st.sampled_from(names) | st.text(max_size=10)),
        datatype=draw(st.sampled_from(DATATYPES) | st.text(max_size=6)),
        shape=draw(
            st.lists(st.integers(0, 4), min_size=1, max_size=2)
            | st.lists(st.integers(-(2**62), 2**62), max_size=3)
        ),
    )
    for key, value in draw(parameters()).items():
        tensor.parameters[key].CopyFrom(value)
    if draw(st.booleans()):
        field = draw(st.sampled_from(sorted(CONTENT_FIELDS)))
        getattr(tensor.contents, field).extend(draw(CONTENT_FIELDS[field]))
    return tensor


@st.composite
def near_valid(draw, names: list[str], outputs: list[str], version: str) -> pb.ModelInferRequest:
    """A request that follows the contract but for what the draw bends: any unicode (and some
    bytes that are not UTF-8), thresholds of every type, token ids at and past their ranges,
    typed or raw contents, requested outputs."""
    request = pb.ModelInferRequest(
        model_name="text-classifier", model_version=draw(st.sampled_from(["", version]))
    )
    if names == ["text"]:
        texts = draw(
            st.lists(st.text(max_size=40).map(str.encode) | st.binary(max_size=8), max_size=6)
        )
        tensor = request.inputs.add(name="text", datatype="BYTES", shape=[len(texts)])
        tensor.contents.bytes_contents.extend(texts)
        for key, value in draw(
            st.dictionaries(st.just("confidence_threshold"), parameter_values())
        ).items():
            request.parameters[key].CopyFrom(value)
    else:
        rows, length = draw(st.integers(0, 5)), draw(st.integers(0, 8))
        raw = draw(st.booleans())
        for name in names[: draw(st.integers(2, 3))]:
            upper = 31000 if name == "input_ids" else 3
            values = draw(
                st.lists(st.integers(-2, upper), min_size=rows * length, max_size=rows * length)
            )
            tensor = request.inputs.add(name=name, datatype="INT64", shape=[rows, length])
            if raw:
                request.raw_input_contents.append(struct.pack(f"<{len(values)}q", *values))
            else:
                tensor.contents.int64_contents.extend(values)
    for name in draw(st.lists(st.sampled_from(outputs), max_size=2)):
        request.outputs.add(name=name)
    return request


@st.composite
def messages(draw, names: list[str], outputs: list[str], version: str) -> bytes:
    if draw(st.booleans()):
        return draw(near_valid(names, outputs, version)).SerializeToString()
    request = pb.ModelInferRequest(
        model_name=draw(st.sampled_from(["text-classifier"] * 4) | st.text(max_size=10)),
        model_version=draw(st.sampled_from(["", "", version]) | st.text(max_size=8)),
        id=draw(st.text(max_size=10)),
    )
    request.inputs.extend(draw(st.lists(tensors(names), max_size=3)))
    if draw(st.booleans()):
        request.raw_input_contents.extend(draw(st.lists(st.binary(max_size=64), max_size=3)))
    for key, value in draw(parameters()).items():
        request.parameters[key].CopyFrom(value)
    for name in draw(st.lists(st.sampled_from(outputs) | st.text(max_size=8), max_size=3)):
        requested = request.outputs.add(name=name)
        for key, value in draw(parameters()).items():
            requested.parameters[key].CopyFrom(value)
    return request.SerializeToString()


@st.composite
def malformed(draw, names: list[str], outputs: list[str], version: str) -> bytes:
    """Bytes that are not a ModelInferRequest: random, a valid one cut short, or bit-flipped."""
    kind = draw(st.sampled_from(["random", "truncated", "flipped"]))
    if kind == "random":
        return draw(st.binary(min_size=1, max_size=200))
    encoded = draw(messages(names, outputs, version))
    if not encoded:
        return b"\xff"
    if kind == "truncated":
        return encoded[: draw(st.integers(0, len(encoded) - 1))]
    data = bytearray(encoded)
    for _ in range(draw(st.integers(1, 4))):
        data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 7))
    return bytes(data)


def fuzz(server, strategy) -> Counter:
    codes: Counter = Counter()
    with grpc.insecure_channel(server.grpc_target) as channel:
        infer = channel.unary_unary(METHOD)  # bytes in, bytes out: no serialization

        @settings(
            max_examples=FUZZ_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(strategy)
        def check(message: bytes):
            try:
                infer(message, timeout=20)
                code, details = grpc.StatusCode.OK, ""
            except grpc.RpcError as exc:
                code, details = exc.code(), exc.details() or ""
            codes[code.name] += 1
            assert code not in SERVER_FAULTS, f"{code.name} {details[:300]} for {message[:200]!r}"
            assert code != grpc.StatusCode.DEADLINE_EXCEEDED, f"no answer for {message[:200]!r}"
            assert "Traceback" not in details and 'File "' not in details, details[:300]

        check()
    return codes


@pytest.mark.parametrize("kind", ["messages", "malformed"])
@pytest.mark.parametrize(
    "role, names, outputs",
    [
        ("transformer", ["text"], ["label", "confidence", "probabilities"]),
        ("predictor", ["input_ids", "attention_mask", "token_type_ids"], ["logits"]),
    ],
)
def test_fuzzed_grpc_messages_never_get_internal_or_unknown(
    chain, tiny_model_dir, role, names, outputs, kind
):
    transformer, predictor = chain
    server = transformer if role == "transformer" else predictor
    version = ModelInfo.load(tiny_model_dir).version
    build = messages if kind == "messages" else malformed
    codes = fuzz(server, build(names, outputs, version))
    print(f"grpc fuzz {role} {kind}: {sum(codes.values())} messages, codes {dict(codes)}")
    assert sum(codes.values()) >= FUZZ_EXAMPLES
    if kind == "messages":
        assert codes["OK"] > 0, codes  # the strategy reaches the model, not only the checks
    with grpc.insecure_channel(server.grpc_target) as channel:
        ready = channel.unary_unary(
            "/inference.GRPCInferenceService/ServerReady",
            request_serializer=pb.ServerReadyRequest.SerializeToString,
            response_deserializer=pb.ServerReadyResponse.FromString,
        )
        assert ready(pb.ServerReadyRequest(), timeout=10).ready
