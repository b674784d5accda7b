"""The happy path through both real servers, over the gRPC and the REST hop."""

import numpy as np
import pytest

from tests.support.http import (
    get,
    grpc_arrays,
    grpc_infer,
    grpc_texts,
    infer_url,
    outputs,
    post,
    texts_body,
)

pytestmark = pytest.mark.integration

TINY_LABELS = {"negative", "neutral", "positive"}


def test_rest_answers_label_confidence_and_probabilities(tiny_chain):
    transformer, _ = tiny_chain
    status, body = post(infer_url(transformer), texts_body(["good", "bad", "fine"], id="req-1"))
    assert status == 200, body
    assert body["id"] == "req-1"
    assert body["model_version"].startswith("tiny-")
    out = outputs(body)
    assert (out["label"]["datatype"], out["label"]["shape"]) == ("BYTES", [3])
    assert (out["confidence"]["datatype"], out["confidence"]["shape"]) == ("FP32", [3])
    assert (out["probabilities"]["datatype"], out["probabilities"]["shape"]) == ("FP32", [3, 3])
    probabilities = np.array(out["probabilities"]["data"]).reshape(3, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(out["confidence"]["data"], probabilities.max(axis=1), rtol=1e-6)


def test_threshold_decides_between_label_and_others(tiny_chain):
    transformer, _ = tiny_chain
    # The random tiny model is never sure: at the default 0.9 it refuses to guess...
    _, body = post(infer_url(transformer), texts_body(["good", "bad"]))
    assert outputs(body)["label"]["data"] == ["others", "others"]
    # ...and a request that lowers the threshold gets the top class.
    _, body = post(
        infer_url(transformer),
        texts_body(["good", "bad"], parameters={"confidence_threshold": 0.01}),
    )
    out = outputs(body)
    assert set(out["label"]["data"]) <= TINY_LABELS


def test_texts_of_shape_n_by_1_and_texts_longer_than_max_length(tiny_chain):
    transformer, _ = tiny_chain
    body = {
        "inputs": [
            {"name": "text", "datatype": "BYTES", "shape": [2, 1], "data": ["ok", "word " * 2000]}
        ]
    }
    status, answer = post(infer_url(transformer), body)
    assert status == 200, answer
    assert outputs(answer)["label"]["shape"] == [2]


def test_grpc_through_the_transformer(tiny_chain):
    transformer, _ = tiny_chain
    code, response = grpc_infer(
        transformer.grpc_target,
        grpc_texts([b"good", "caf\u00e9".encode()], confidence_threshold=0.01),
    )
    assert code.name == "OK", response
    out = grpc_arrays(response)
    assert list(out) == ["label", "confidence", "probabilities"]
    # Raw contents only, one per output, as Triton answers: what tritonclient can read.
    assert len(response.raw_output_contents) == 3
    assert not any(o.HasField("contents") for o in response.outputs)
    labels = out["label"].tolist()
    assert len(labels) == 2 and set(labels) <= TINY_LABELS
    assert out["probabilities"].shape == (2, 3)
    np.testing.assert_allclose(out["confidence"], out["probabilities"].max(axis=1), rtol=1e-6)
    assert response.model_version.startswith("tiny-")


def test_grpc_calls_leave_no_per_call_line_in_either_log(tiny_chain):
    """KServe logs `grpc method: ...` for every gRPC call; the kit drops that line (it costs
    CPU per request and says nothing), and keeps the rest of the log."""
    transformer, predictor = tiny_chain
    for _ in range(3):
        code, _ = grpc_infer(transformer.grpc_target, grpc_texts([b"log check"]))
        assert code.name == "OK"
    for server in (transformer, predictor):
        log = server.log_path.read_text(errors="replace")
        assert "Registering model" in log  # KServe's own INFO lines still arrive
        assert "grpc method:" not in log
    # what the runtime decided at load is in the predictor's log, in KServe's format
    loaded = [line for line in predictor.log_path.read_text().splitlines() if " serving " in line]
    assert loaded and "predictor.runtime INFO" in loaded[0]
    assert ": float32, traced, " in loaded[0] and "forward workers" in loaded[0]
    assert "(dtype: asked for)" in loaded[0]  # the tests' predictors pin --dtype float32


def test_rest_and_grpc_agree(tiny_chain):
    transformer, _ = tiny_chain
    _, body = post(infer_url(transformer), texts_body(["same text"]))
    _, response = grpc_infer(transformer.grpc_target, grpc_texts([b"same text"]))
    rest = outputs(body)["probabilities"]["data"]
    np.testing.assert_allclose(rest, grpc_arrays(response)["probabilities"].reshape(-1), rtol=1e-5)


def test_metadata_describes_the_contract(tiny_chain):
    transformer, predictor = tiny_chain
    status, meta = get(f"{transformer.url}/v2/models/text-classifier")
    assert status == 200
    assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert [o["name"] for o in meta["outputs"]] == ["label", "confidence", "probabilities"]
    status, meta = get(f"{predictor.url}/v2/models/text-classifier")
    assert [i["name"] for i in meta["inputs"]] == ["input_ids", "attention_mask", "token_type_ids"]
    assert meta["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 3]}]


def test_predictor_exports_its_inflight_gauge(tiny_chain):
    _, predictor = tiny_chain
    status, text = get(f"{predictor.url}/metrics")
    assert status == 200
    assert 'kserve_kit_predictor_inflight_requests{model_name="text-classifier"}' in text


def test_two_forward_workers_serve_the_same_answers(tiny_model_dir, tmp_path):
    """--forward_workers 2 runs two forwards at once (the default on a CPU with 2 threads or
    more); answers must be those of one forward at a time."""
    from tests.support import servers

    predictor = servers.predictor(
        tiny_model_dir, tmp_path, extra=["--forward_workers", "2", "--torch_threads", "2"]
    )
    texts = [f"text number {i}" for i in range(6)]
    with servers.running(predictor):
        transformer = servers.transformer(tiny_model_dir, tmp_path, predictor)
        with servers.running(transformer):
            status, body = post(infer_url(transformer), texts_body(texts))
    assert status == 200, body
    reference = servers.predictor(
        tiny_model_dir, tmp_path, name="reference", extra=["--forward_workers", "1"]
    )
    with servers.running(reference):
        ref_transformer = servers.transformer(tiny_model_dir, tmp_path, reference, name="ref-t")
        with servers.running(ref_transformer):
            _, ref_body = post(infer_url(ref_transformer), texts_body(texts))
    np.testing.assert_allclose(
        outputs(body)["probabilities"]["data"],
        outputs(ref_body)["probabilities"]["data"],
        atol=1e-5,
    )
