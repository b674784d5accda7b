"""Every bad request gets a 4xx that says what was expected; none gets a 500 or a traceback."""

import json

import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

from tests.support.http import get, grpc_infer, grpc_texts, infer_url, post, texts_body

pytestmark = pytest.mark.integration


def assert_refused(status, body, expected_status, message):
    assert status == expected_status, body
    text = json.dumps(body)
    assert "Traceback" not in text
    assert message in body["error"], body


@pytest.mark.parametrize(
    "body, status, message",
    [
        (
            {"inputs": [{"name": "words", "datatype": "BYTES", "shape": [1], "data": ["x"]}]},
            400,
            "missing input tensor 'text'",
        ),
        (
            {"inputs": [{"name": "text", "datatype": "INT64", "shape": [1], "data": [3]}]},
            400,
            "datatype BYTES, got INT64",
        ),
        (
            {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [0], "data": []}]},
            400,
            "holds no texts",
        ),
        (texts_body(["fine", ""]), 400, "text 1 is empty"),
        (texts_body(["x"] * 9), 413, "at most 8 texts (--max_batch_size), got 9"),
        (
            texts_body(["x"], parameters={"confidence_threshold": 1.5}),
            400,
            "must be in (0, 1), got 1.5",
        ),
        (
            texts_body(["x"], parameters={"confidence_threshold": "high"}),
            400,
            "must be a number in (0, 1)",
        ),
        (
            {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [3], "data": ["a"]}]},
            400,
            "text",
        ),
        ({"inputs": 5}, 400, "not a V2 inference request"),
        ({}, 400, "not a V2 inference request"),
    ],
    ids=[
        "no-text",
        "wrong-datatype",
        "empty-batch",
        "empty-string",
        "over-batch-limit",
        "threshold-out-of-range",
        "threshold-not-a-number",
        "shape-mismatch",
        "inputs-not-a-list",
        "no-inputs",
    ],
)
def test_transformer_refuses_bad_requests(tiny_chain, body, status, message):
    transformer, _ = tiny_chain
    assert_refused(*post(infer_url(transformer), body), status, message)


def test_malformed_json_is_a_400(tiny_chain):
    transformer, _ = tiny_chain
    status, body = post(infer_url(transformer), b'{"inputs": [{"name": "te')
    assert_refused(status, body, 400, "not a V2 inference request")


def test_unknown_model_is_a_404(tiny_chain):
    transformer, _ = tiny_chain
    status, body = post(infer_url(transformer, model="no-such-model"), texts_body(["x"]))
    assert_refused(status, body, 404, "no-such-model")


def test_non_utf8_bytes_over_grpc(tiny_chain):
    transformer, _ = tiny_chain
    code, details = grpc_infer(transformer.grpc_target, grpc_texts([b"ok", b"\xc3\x28"]))
    assert code.name == "INVALID_ARGUMENT"
    assert "text 1 is not valid UTF-8" in details


def test_bad_threshold_over_grpc(tiny_chain):
    transformer, _ = tiny_chain
    code, details = grpc_infer(
        transformer.grpc_target, grpc_texts([b"ok"], confidence_threshold="0")
    )
    assert code.name == "INVALID_ARGUMENT" and "confidence_threshold" in details


def tokens(ids, mask=None, dtype="INT64", mask_shape=None):
    shape = [1, len(ids)]
    return {
        "inputs": [
            {"name": "input_ids", "datatype": dtype, "shape": shape, "data": ids},
            {
                "name": "attention_mask",
                "datatype": dtype,
                "shape": mask_shape or shape,
                "data": mask or [1] * len(ids),
            },
        ]
    }


@pytest.mark.parametrize(
    "body, message",
    [
        (
            {
                "inputs": [
                    {"name": "attention_mask", "datatype": "INT64", "shape": [1, 1], "data": [1]}
                ]
            },
            "missing input tensor 'input_ids'",
        ),
        (tokens([101, 102], dtype="FP32"), "INT64 or INT32, got FP32"),
        (
            tokens([101, 7, 102], mask=[1, 1], mask_shape=[1, 2]),
            "attention_mask must have the shape of input_ids [1, 3], got [1, 2]",
        ),
        (tokens([101, 30522, 102]), "input_ids values must be in [0, 30522)"),
        (tokens([101, -4, 102]), "got values from -4 to 102"),
        (tokens([101, 102], mask=[1, 7]), "0 or 1"),
    ],
    ids=[
        "missing-tensor",
        "wrong-datatype",
        "shapes-disagree",
        "id-outside-vocab",
        "negative-id",
        "mask-not-binary",
    ],
)
def test_predictor_refuses_bad_tensors(tiny_chain, body, message):
    _, predictor = tiny_chain
    assert_refused(*post(infer_url(predictor), body), 400, message)


def test_predictor_refuses_out_of_vocab_ids_over_grpc(tiny_chain):
    _, predictor = tiny_chain
    request = pb.ModelInferRequest(model_name="text-classifier")
    for name in ("input_ids", "attention_mask"):
        tensor = request.inputs.add(name=name, datatype="INT64", shape=[1, 2])
        tensor.contents.int64_contents.extend([101, 99999] if name == "input_ids" else [1, 1])
    code, details = grpc_infer(predictor.grpc_target, request)
    assert code.name == "INVALID_ARGUMENT" and "vocabulary" in details


def test_servers_stay_healthy_after_bad_input(tiny_chain):
    transformer, predictor = tiny_chain
    for server in (transformer, predictor):
        assert get(f"{server.url}/v2/health/ready")[0] == 200
    assert post(infer_url(transformer), texts_body(["still fine"]))[0] == 200
