import numpy as np
import pytest
from kserve import InferInput, InferRequest

from kserve_kit import contract
from kserve_kit.errors import BadInput
from kserve_kit.tensors import read_tensor, read_texts

pytestmark = pytest.mark.unit


def rest_request(*inputs: dict) -> InferRequest:
    """An InferRequest as KServe builds it from a REST JSON body."""
    return InferRequest(
        model_name="m",
        infer_inputs=[
            InferInput(i["name"], i["shape"], i["datatype"], data=i["data"]) for i in inputs
        ],
    )


def grpc_request(name: str, array: np.ndarray, datatype: str) -> InferRequest:
    """The same, round-tripped through the gRPC message with binary (raw) contents."""
    tensor = InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=True)
    return InferRequest.from_grpc(InferRequest(model_name="m", infer_inputs=[tensor]).to_grpc())


def test_texts_from_rest_json():
    req = rest_request({"name": "text", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]})
    assert read_texts(req, contract.TEXT) == ["a", "b"]


def test_texts_of_shape_n_by_1():
    req = rest_request({"name": "text", "shape": [2, 1], "datatype": "BYTES", "data": ["a", "b"]})
    assert read_texts(req, contract.TEXT) == ["a", "b"]


def test_texts_from_grpc_bytes_are_decoded():
    array = np.array(["héllo".encode(), b"world"], dtype=np.object_)
    assert read_texts(grpc_request("text", array, "BYTES"), contract.TEXT) == ["héllo", "world"]


def test_texts_that_are_not_utf8_are_refused():
    array = np.array([b"ok", b"\xff\xfe bad"], dtype=np.object_)
    with pytest.raises(BadInput, match="text 1 is not valid UTF-8"):
        read_texts(grpc_request("text", array, "BYTES"), contract.TEXT)


@pytest.mark.parametrize(
    "tensor, message",
    [
        (
            {"name": "words", "shape": [1], "datatype": "BYTES", "data": ["a"]},
            "missing input tensor 'text'.*got inputs \\['words'\\]",
        ),
        (
            {"name": "text", "shape": [1], "datatype": "INT64", "data": [1]},
            "datatype BYTES, got INT64",
        ),
        (
            {"name": "text", "shape": [1, 2], "datatype": "BYTES", "data": ["a", "b"]},
            "shape \\[N\\] or \\[N, 1\\], got \\[1, 2\\]",
        ),
        (
            {"name": "text", "shape": [3], "datatype": "BYTES", "data": ["a", "b"]},
            "needs 3 texts, got 2|does not match|cannot read",
        ),
    ],
)
def test_bad_text_tensors_say_what_was_expected(tensor, message):
    with pytest.raises(BadInput, match=message):
        read_texts(rest_request(tensor), contract.TEXT)


def test_int32_token_ids_are_accepted():
    req = rest_request({"name": "input_ids", "shape": [1, 2], "datatype": "INT32", "data": [5, 6]})
    array = read_tensor(req, contract.INPUT_IDS)
    assert array.shape == (1, 2) and array.tolist() == [[5, 6]]


def test_token_ids_from_grpc_raw_contents():
    ids = np.array([[101, 7, 102]], dtype=np.int64)
    np.testing.assert_array_equal(
        read_tensor(grpc_request("input_ids", ids, "INT64"), contract.INPUT_IDS), ids
    )


@pytest.mark.parametrize(
    "tensor, message",
    [
        (
            {"name": "input_ids", "shape": [1, 2], "datatype": "FP32", "data": [1.0, 2.0]},
            "INT64 or INT32, got FP32",
        ),
        (
            {"name": "input_ids", "shape": [2], "datatype": "INT64", "data": [1, 2]},
            "rank 2, got \\[2\\]",
        ),
        (
            {"name": "input_ids", "shape": [1, 3], "datatype": "INT64", "data": [1, 2]},
            "does not match shape \\[1, 3\\]",
        ),
        (
            {"name": "input_ids", "shape": [1, 2], "datatype": "INT64", "data": [1, 2.5]},
            "must hold integers, got non-integer numbers",
        ),
        (
            {"name": "input_ids", "shape": [1, 2], "datatype": "INT64", "data": [1, "x"]},
            "must hold integers, got strings",
        ),
        (
            {"name": "input_ids", "shape": [1, -2], "datatype": "INT64", "data": [1, 2]},
            "rank 2, got \\[1, -2\\]",
        ),
    ],
)
def test_bad_token_tensors_say_what_was_expected(tensor, message):
    with pytest.raises(BadInput, match=message):
        read_tensor(rest_request(tensor), contract.INPUT_IDS)
