"""Property-based fuzzing of both servers' V2 REST infer endpoints: no input gets a 5xx.

Hypothesis generates requests near the contract (real tensor names and datatypes with wrong
shapes, data and parameters), far from it (any JSON, NaN and infinity included), raw bytes under
any content type, and binary-tensor bodies whose `Inference-Header-Content-Length` may lie.
Derandomized: a run is reproducible, and a failure names its example. KIT_FUZZ_EXAMPLES sets
the number of requests per server (200 in `make test`, 1,000 in `make chaos`).
"""

from __future__ import annotations

import http.client
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability.conftest import FUZZ_EXAMPLES
from tests.support.http import get

pytestmark = pytest.mark.reliability

DATATYPES = ["BYTES", "INT64", "INT32", "FP32", "FP64", "BOOL", "UINT8", "FP16"]
CONTENT_TYPES = [
    "application/json",
    "application/octet-stream",
    "text/plain",
    "",
    "multipart/form-data",
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=16,
)
shapes = st.lists(st.integers(min_value=-2, max_value=2**40), max_size=3) | st.lists(
    st.integers(min_value=0, max_value=4), min_size=1, max_size=2
)


def tensors(names: list[str]):
    data = (
        st.lists(st.integers(min_value=-5, max_value=40000), max_size=12)
        | st.lists(st.text(max_size=30), max_size=6)
        | st.lists(st.lists(st.integers(min_value=-1, max_value=3), max_size=4), max_size=4)
        | json_values
    )
    return st.fixed_dictionaries(
        {
            "name": st.sampled_from(names) | st.text(max_size=10),
            "datatype": st.sampled_from(DATATYPES) | st.text(max_size=6),
            "shape": shapes | json_values,
            "data": data,
        },
        optional={
            "parameters": st.dictionaries(
                st.sampled_from(["binary_data_size", "content_type"]) | st.text(max_size=8),
                json_values,
                max_size=2,
            )
        },
    )


def v2_requests(names: list[str]):
    parameters = st.dictionaries(
        st.sampled_from(["confidence_threshold", "binary_data_output"]) | st.text(max_size=8),
        json_values,
        max_size=3,
    )
    return st.fixed_dictionaries(
        {"inputs": st.lists(tensors(names), max_size=3) | json_values},
        optional={
            "id": st.text(max_size=10) | json_values,
            "parameters": parameters | json_values,
            "outputs": json_values,
        },
    )


@st.composite
def near_valid(draw, names: list[str]):
    """A request that follows the contract but for what the draw bends: unicode texts, empty
    ones, too many, thresholds anywhere; token ids and masks at and past their ranges."""
    if names == ["text"]:
        texts = draw(st.lists(st.text(max_size=60), max_size=10))
        shape = draw(st.sampled_from([[len(texts)], [len(texts), 1]]))
        request = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": shape, "data": texts}]}
        if draw(st.booleans()):
            threshold = draw(st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=5))
            request["parameters"] = {"confidence_threshold": threshold}
        return request
    rows, length = draw(st.integers(0, 9)), draw(st.integers(0, 8))
    datatype = draw(st.sampled_from(["INT64", "INT32"]))
    ids = draw(st.lists(st.integers(-2, 31000), min_size=rows * length, max_size=rows * length))
    mask = draw(st.lists(st.integers(-1, 2), min_size=rows * length, max_size=rows * length))
    inputs = [
        {"name": "input_ids", "datatype": datatype, "shape": [rows, length], "data": ids},
        {"name": "attention_mask", "datatype": datatype, "shape": [rows, length], "data": mask},
    ]
    if draw(st.booleans()):
        types = draw(st.lists(st.integers(-1, 2), min_size=rows * length, max_size=rows * length))
        inputs.append(
            {"name": "token_type_ids", "datatype": datatype, "shape": [rows, length], "data": types}
        )
    return {"inputs": inputs}


def requests_for(names: list[str]):
    """(body bytes, headers) for one request."""

    def as_json(request):
        return json.dumps(request, allow_nan=True).encode(), {"Content-Type": "application/json"}

    close = near_valid(names).map(as_json)
    structured = v2_requests(names).map(
        lambda r: (json.dumps(r, allow_nan=True).encode(), {"Content-Type": "application/json"})
    )
    raw = st.tuples(st.binary(max_size=300), st.sampled_from(CONTENT_TYPES)).map(
        lambda b: (b[0], {"Content-Type": b[1]} if b[1] else {})
    )
    binary = st.tuples(
        v2_requests(names),
        st.binary(max_size=64),
        st.integers(-5, 10**6) | st.text(alphabet="0123456789 -+xabc.", max_size=5),
        st.booleans(),
    ).map(_binary_body)
    return st.one_of(close, close, structured, raw, binary)


def _binary_body(parts):
    request, tail, claimed, honest = parts
    header = json.dumps(request, allow_nan=True).encode()
    length = str(len(header)) if honest else str(claimed)
    return header + tail, {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": length,
    }


def fuzz(server, names: list[str]) -> list[int]:
    statuses: list[int] = []
    connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30)

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )
    @given(requests_for(names))
    def check(request):
        nonlocal connection
        body, headers = request
        try:
            connection.request(
                "POST", "/v2/models/text-classifier/infer", body=body, headers=headers
            )
            response = connection.getresponse()
            status, text = response.status, response.read().decode(errors="replace")
        except (OSError, http.client.HTTPException):
            connection.close()  # the server closed it (e.g. after a 413): one more try, fresh
            connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30)
            connection.request(
                "POST", "/v2/models/text-classifier/infer", body=body, headers=headers
            )
            response = connection.getresponse()
            status, text = response.status, response.read().decode(errors="replace")
        statuses.append(status)
        assert status < 500, f"{status} {text[:300]} for {body[:300]!r} {headers}"
        assert "Traceback" not in text and 'File "' not in text, text[:300]

    try:
        check()
    finally:
        connection.close()
    return statuses


@pytest.mark.parametrize(
    "role, names",
    [("transformer", ["text"]), ("predictor", ["input_ids", "attention_mask", "token_type_ids"])],
)
def test_fuzzed_requests_never_get_a_5xx(chain, role, names):
    transformer, predictor = chain
    server = transformer if role == "transformer" else predictor
    statuses = fuzz(server, names)
    counts = {s: statuses.count(s) for s in sorted(set(statuses))}
    print(f"fuzz {role}: {len(statuses)} requests, statuses {counts}")
    assert len(statuses) >= FUZZ_EXAMPLES
    for s in (transformer, predictor):
        assert get(f"{s.url}/v2/health/ready")[0] == 200
