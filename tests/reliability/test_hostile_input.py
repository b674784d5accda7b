"""A catalogue of crafted hostile requests, each with the status it must get.

Nothing here may answer 5xx, hang, or put a stack trace in the body. The servers run with
`--max_request_bytes 65536` so that the oversized cases stay small for the test itself.
(test_bad_input.py in tests/integration covers the ordinary contract violations.)
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

import grpc
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

from tests.support import servers
from tests.support.http import get, grpc_infer, grpc_texts, infer_url, post, texts_body

pytestmark = pytest.mark.reliability

LIMIT = 65536
INFER_PATH = "/v2/models/text-classifier/infer"


@pytest.fixture(scope="module")
def guarded(tiny_model_dir, tmp_path_factory):
    logs = tmp_path_factory.mktemp("hostile-logs")
    limit = ["--max_request_bytes", str(LIMIT)]
    predictor = servers.predictor(tiny_model_dir, logs, extra=["--max_batch_size", "8", *limit])
    transformer = servers.transformer(
        tiny_model_dir,
        logs,
        predictor,
        extra=["--max_batch_size", "8", "--max_length", "32", *limit],
    )
    with servers.running(predictor, transformer):
        yield {"transformer": transformer, "predictor": predictor}


def assert_clean(status, body, expected):
    text = body if isinstance(body, str) else json.dumps(body)
    assert status == expected, text[:300]
    assert "Traceback" not in text and 'File "' not in text, text[:300]
    assert isinstance(body, dict) and body.get("error"), text[:300]


def tokens(ids, mask, datatype="INT64", shape=None):
    shape = shape or [1, len(ids)]
    return {
        "inputs": [
            {"name": "input_ids", "datatype": datatype, "shape": shape, "data": ids},
            {"name": "attention_mask", "datatype": datatype, "shape": shape, "data": mask},
        ]
    }


def nested(depth: int, leaf: bytes) -> bytes:
    return b"[" * depth + leaf + b"]" * depth


TEXT_TENSOR = b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": %s}]%s}'
IDS_TENSOR = (
    b'{"inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [1, 1], "data": %s},'
    b' {"name": "attention_mask", "datatype": "INT64", "shape": [1, 1], "data": [1]}]}'
)

# (server, name, body (dict or bytes), content type, expected status)
CATALOGUE = [
    (
        "transformer",
        "shape-claims-1e12-texts",
        {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [10**12], "data": ["a"]}]},
        "application/json",
        400,
    ),
    (
        "transformer",
        "negative-shape",
        {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1], "data": ["a"]}]},
        "application/json",
        400,
    ),
    (
        "predictor",
        "shape-claims-1e12-tokens",
        tokens([1], [1], shape=[10**6, 10**6]),
        "application/json",
        400,
    ),
    ("predictor", "zero-rows", tokens([], [], shape=[0, 3]), "application/json", 400),
    (
        "transformer",
        "nested-json-5000-deep",
        b'{"inputs": ' + nested(5000, b"") + b"}",
        "application/json",
        400,
    ),
    (
        "transformer",
        "nested-data-3000-deep",
        TEXT_TENSOR % (nested(3000, b'"a"'), b""),
        "application/json",
        400,
    ),
    (
        "predictor",
        "nested-data-3000-deep",
        IDS_TENSOR % nested(3000, b"1"),
        "application/json",
        400,
    ),
    ("predictor", "nan-token-id", IDS_TENSOR % b"[NaN]", "application/json", 400),
    ("predictor", "infinity-token-id", IDS_TENSOR % b"[Infinity]", "application/json", 400),
    (
        "predictor",
        "token-id-beyond-int64",
        IDS_TENSOR % str([10**30]).encode(),
        "application/json",
        400,
    ),
    (
        "transformer",
        "nan-threshold",
        TEXT_TENSOR % (b'["a"]', b', "parameters": {"confidence_threshold": NaN}'),
        "application/json",
        400,
    ),
    (
        "transformer",
        "infinity-threshold",
        TEXT_TENSOR % (b'["a"]', b', "parameters": {"confidence_threshold": -Infinity}'),
        "application/json",
        400,
    ),
    ("transformer", "nan-as-text", TEXT_TENSOR % (b"[NaN]", b""), "application/json", 400),
    (
        "transformer",
        "json-as-text-plain",
        json.dumps(texts_body(["hi"])).encode(),
        "text/plain",
        400,
    ),
    ("transformer", "form-urlencoded", b"text=hi", "application/x-www-form-urlencoded", 400),
    (
        "predictor",
        "octet-stream-without-header",
        b"\x00\x01\x02\x03",
        "application/octet-stream",
        400,
    ),
    ("transformer", "not-utf8-json", b"\xff\xfe\x00{", "application/json", 400),
    ("transformer", "empty-body", b"", "application/json", 400),
    ("transformer", "json-null", b"null", "application/json", 400),
]


@pytest.mark.parametrize(
    "role, body, content_type, expected",
    [case[:1] + case[2:] for case in CATALOGUE],
    ids=[f"{case[0]}-{case[1]}" for case in CATALOGUE],
)
def test_crafted_request(guarded, role, body, content_type, expected):
    assert_clean(*post(infer_url(guarded[role]), body, content_type=content_type), expected)


def binary_post(server, header: dict, tail: bytes, claimed_length) -> tuple[int, dict]:
    head = json.dumps(header).encode()
    length = len(head) if claimed_length is None else claimed_length
    request = urllib.request.Request(
        infer_url(server),
        data=head + tail,
        headers={
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(length),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


TEXT_HEADER = {
    "inputs": [
        {"name": "text", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 6}}
    ]
}
IDS_HEADER = {
    "inputs": [
        {"name": n, "datatype": "INT64", "shape": [1, 1], "parameters": {"binary_data_size": 8}}
        for n in ("input_ids", "attention_mask")
    ]
}
ONE = (1).to_bytes(8, "little")

# Binary tensors: the JSON header's length and each BYTES element's 4-byte length prefix.
BINARY = [
    ("transformer", "honest", TEXT_HEADER, b"\x02\x00\x00\x00hi", None, 200),
    ("transformer", "header-length-beyond-body", TEXT_HEADER, b"\x02\x00\x00\x00hi", 10**9, 400),
    ("transformer", "header-length-negative", TEXT_HEADER, b"", -5, 400),
    ("transformer", "header-length-not-a-number", TEXT_HEADER, b"", "abc", 400),
    ("transformer", "header-length-cuts-the-json", TEXT_HEADER, b"", 10, 400),
    ("transformer", "element-length-claims-2GiB", TEXT_HEADER, b"\xff\xff\xff\x7fhi", None, 400),
    ("transformer", "element-length-truncated", TEXT_HEADER, b"\x02", None, 400),
    ("predictor", "honest", IDS_HEADER, ONE + ONE, None, 200),
    ("predictor", "tensor-bytes-short", IDS_HEADER, b"\x05", None, 400),
    ("predictor", "tensor-bytes-not-a-multiple-of-8", IDS_HEADER, b"\x05" * 12, None, 400),
]


@pytest.mark.parametrize(
    "role, header, tail, claimed, expected",
    [case[:1] + case[2:] for case in BINARY],
    ids=[f"{case[0]}-{case[1]}" for case in BINARY],
)
def test_binary_tensor_headers_that_lie(guarded, role, header, tail, claimed, expected):
    status, body = binary_post(guarded[role], header, tail, claimed)
    if expected == 200:
        assert status == 200, body
    else:
        assert_clean(status, body, expected)


def raw_exchange(
    server, head: bytes, body_part: bytes, timeout_s: float = 10
) -> tuple[bytes, float]:
    """Send a request head and part of its body, then read the answer; (answer, seconds)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=timeout_s) as sock:
        sock.sendall(head + body_part)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer, time.monotonic() - started


@pytest.mark.parametrize("role", ["transformer", "predictor"])
def test_oversized_declared_body_is_refused_before_it_is_read(guarded, role):
    """1 GB declared, 1 KB sent: the 413 arrives while the client still owes 999,999 KB."""
    head = (
        f"POST {INFER_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {10**9}\r\n\r\n"
    ).encode()
    answer, _ = raw_exchange(guarded[role], head, b"x" * 1024)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"--max_request_bytes" in answer and b"Traceback" not in answer
    assert get(f"{guarded[role].url}/v2/health/ready")[0] == 200


@pytest.mark.parametrize("role", ["transformer", "predictor"])
def test_oversized_streamed_body_is_cut_off_at_the_limit(guarded, role):
    """No Content-Length (chunked): counted as it arrives, refused once past the limit."""
    head = (
        f"POST {INFER_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    chunk = b"x" * 16384
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(LIMIT // len(chunk) + 1))
    answer, _ = raw_exchange(guarded[role], head, chunks)  # no final chunk: the body never ends
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"Traceback" not in answer


def test_a_body_just_under_the_limit_is_served(guarded):
    texts = ["word " * 1000] * 8  # about 40 KB of JSON
    status, body = post(infer_url(guarded["transformer"]), texts_body(texts))
    assert status == 200, body


@pytest.mark.parametrize("role", ["transformer", "predictor"])
def test_grpc_message_over_the_size_limit_is_resource_exhausted(guarded, role):
    """gRPC's own limit (KServe's --grpc_max_receive_message_length, 8 MiB by default)."""
    server = guarded[role]
    if role == "transformer":
        request = grpc_texts([b"x" * (9 * 1024 * 1024)])
    else:
        request = pb.ModelInferRequest(model_name="text-classifier")
        request.inputs.add(name="input_ids", datatype="INT64", shape=[1, 1])
        request.raw_input_contents.append(b"\x00" * (9 * 1024 * 1024))
    code, details = grpc_infer(server.grpc_target, request)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, details
    assert grpc_infer(server.grpc_target, grpc_texts([b"still fine"]))[0] in (
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,  # the predictor takes tokens, not text
    )


def test_servers_are_healthy_after_the_catalogue(guarded):
    for server in guarded.values():
        assert get(f"{server.url}/v2/health/ready")[0] == 200
    assert post(infer_url(guarded["transformer"]), texts_body(["still fine"]))[0] == 200
