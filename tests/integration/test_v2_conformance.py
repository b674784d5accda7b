"""Both servers as a third-party V2 client sees them: NVIDIA's tritonclient (HTTP and gRPC),
which nobody on this project wrote, against the real servers.

Covers what a conformant server owes such a client: the model-repository extension off unless
asked for (no anonymous unload), requested and binary outputs, a float parameter sent as a gRPC
double, model metadata with platform and versions, the versioned routes, and one log line
without a traceback for a refused request.

tritonclient's gRPC client cannot share a process with KServe (both register `inference.*`
protobuf messages): the gRPC calls run in a subprocess, `tests.support.triton_grpc`.
"""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from kserve_kit import contract
from kserve_kit.modeldir import ModelInfo
from tests.support import servers
from tests.support.triton_grpc import call_grpc

pytestmark = pytest.mark.integration

MODEL = contract.DEFAULT_MODEL_NAME
TEXTS = ["where is my parcel?", "nice weather today"]


def http_client(server) -> httpclient.InferenceServerClient:
    return httpclient.InferenceServerClient(f"127.0.0.1:{server.http_port}", network_timeout=30)


def text_input(binary: bool = True) -> httpclient.InferInput:
    tensor = httpclient.InferInput(contract.TEXT.name, [len(TEXTS)], "BYTES")
    array = np.array([t.encode() for t in TEXTS], dtype=np.object_)
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


IDS = [[101, 2054, 102], [101, 7592, 102]]


def token_inputs() -> list[httpclient.InferInput]:
    ids = np.array(IDS, dtype=np.int64)
    tensors = []
    for spec, array in ((contract.INPUT_IDS, ids), (contract.ATTENTION_MASK, np.ones_like(ids))):
        tensor = httpclient.InferInput(spec.name, list(array.shape), "INT64")
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    return tensors


def grpc_infer(**call) -> dict:
    return {"call": "infer", "texts": TEXTS, **call}


def status_of(exc: InferenceServerException) -> str:
    return str(exc.status())


@pytest.fixture(scope="module")
def chain(tiny_chain):
    return tiny_chain


# 1. The model-repository extension -------------------------------------------------------


@pytest.mark.parametrize("role", [0, 1], ids=["transformer", "predictor"])
def test_anonymous_unload_and_load_are_refused_and_the_model_keeps_serving(chain, role):
    server = chain[role]
    http = http_client(server)
    for call in (http.unload_model, http.load_model):
        with pytest.raises(InferenceServerException) as refused:
            call(MODEL)
        assert status_of(refused.value) == "403"
        assert "--enable_model_repository" in refused.value.message()
    unload, load, ready, extensions = call_grpc(
        server.grpc_target,
        {"call": "unload_model"},
        {"call": "load_model"},
        {"call": "is_model_ready"},
        {"call": "server_extensions"},
    )
    assert unload["status"] == load["status"] == "StatusCode.PERMISSION_DENIED"
    assert "--enable_model_repository" in unload["message"]
    assert ready == {"ok": True} and http.is_model_ready(MODEL) and http.is_server_ready()
    assert "model_repository_extension" not in http.get_server_metadata()["extensions"]
    assert "model_repository_extension" not in extensions["ok"]


@pytest.fixture(scope="module")
def predictor_with_repository(tiny_model_dir, tmp_path_factory):
    logs = tmp_path_factory.mktemp("logs-repository")
    server = servers.predictor(tiny_model_dir, logs, extra=["--enable_model_repository", "true"])
    with servers.running(server):
        yield server


def test_with_the_extension_on_an_unknown_model_is_404_everywhere(predictor_with_repository):
    server = predictor_with_repository
    http = http_client(server)
    assert "model_repository_extension" in http.get_server_metadata()["extensions"]
    for call in (http.load_model, http.unload_model):
        with pytest.raises(InferenceServerException) as refused:
            call("no-such-model")
        assert status_of(refused.value) == "404"
        assert "'no-such-model'" in refused.value.message()
    load, unload = call_grpc(
        server.grpc_target,
        {"call": "load_model", "model": "no-such-model"},
        {"call": "unload_model", "model": "no-such-model"},
    )
    assert load["status"] == unload["status"] == "StatusCode.NOT_FOUND"
    assert http.is_model_ready(MODEL)


# 2-3. Requested outputs, binary outputs, JSON without a Content-Type --------------------


def test_http_requested_outputs_only_those_json_and_binary(chain):
    transformer, _ = chain
    client = http_client(transformer)
    full = client.infer(MODEL, [text_input()])  # no outputs named: all, binary_data_output
    outputs = full.get_response()["outputs"]
    assert [o["name"] for o in outputs] == ["label", "confidence", "probabilities"]
    assert all("data" not in o for o in outputs)
    labels = [x.decode() for x in full.as_numpy("label")]

    asked = [
        httpclient.InferRequestedOutput("probabilities", binary_data=True),
        httpclient.InferRequestedOutput("label", binary_data=False),
    ]
    some = client.infer(MODEL, [text_input()], outputs=asked)
    outputs = some.get_response()["outputs"]
    assert [o["name"] for o in outputs] == ["probabilities", "label"]
    assert "data" not in outputs[0] and outputs[0]["parameters"]["binary_data_size"] == 4 * 2 * 3
    assert outputs[1]["data"] == labels
    np.testing.assert_allclose(some.as_numpy("probabilities"), full.as_numpy("probabilities"))


def test_http_json_request_without_content_type_is_served(chain):
    transformer, _ = chain
    asked = [httpclient.InferRequestedOutput("label", binary_data=False)]
    result = http_client(transformer).infer(MODEL, [text_input(binary=False)], outputs=asked)
    assert len(result.get_response()["outputs"][0]["data"]) == len(TEXTS)


def test_grpc_requested_outputs_only_those(chain):
    transformer, _ = chain
    (result,) = call_grpc(transformer.grpc_target, grpc_infer(outputs=["confidence"]))
    values = result["ok"]["outputs"]
    assert list(values) == ["confidence"] and len(values["confidence"]) == len(TEXTS)


def test_an_unknown_requested_output_is_refused_naming_the_outputs(chain):
    transformer, _ = chain
    with pytest.raises(InferenceServerException) as refused:
        http_client(transformer).infer(
            MODEL, [text_input()], outputs=[httpclient.InferRequestedOutput("logits")]
        )
    (grpc_refused,) = call_grpc(transformer.grpc_target, grpc_infer(outputs=["logits"]))
    assert status_of(refused.value) == "400"
    assert grpc_refused["status"] == "StatusCode.INVALID_ARGUMENT"
    for message in (refused.value.message(), grpc_refused["message"]):
        assert "'logits'" in message and "'label', 'confidence', 'probabilities'" in message


def test_predictor_answers_binary_logits_over_rest_when_asked(chain):
    _, predictor = chain
    client = http_client(predictor)
    binary = client.infer(MODEL, token_inputs())
    asked = [httpclient.InferRequestedOutput("logits", binary_data=False)]
    as_json = client.infer(MODEL, token_inputs(), outputs=asked)
    assert "data" not in binary.get_response()["outputs"][0]
    assert "data" in as_json.get_response()["outputs"][0]
    np.testing.assert_allclose(binary.as_numpy("logits"), as_json.as_numpy("logits"), atol=1e-6)
    tokens = {"input_ids": IDS, "attention_mask": [[1] * len(IDS[0])] * len(IDS)}
    (over_grpc,) = call_grpc(predictor.grpc_target, {"call": "infer", "tokens": tokens})
    np.testing.assert_allclose(over_grpc["ok"]["outputs"]["logits"], binary.as_numpy("logits"))


def test_grpc_answers_are_raw_contents_that_tritonclient_reads(chain):
    """tritonclient's gRPC `as_numpy` reads raw_output_contents only (typed contents give
    None): the transformer's label, confidence, probabilities and the predictor's logits."""
    transformer, predictor = chain
    (answer,) = call_grpc(transformer.grpc_target, grpc_infer(parameters={"x": "y"}))
    values = answer["ok"]["outputs"]
    assert answer["ok"]["raw"] == 3
    assert answer["ok"]["datatypes"] == {
        "label": "BYTES",
        "confidence": "FP32",
        "probabilities": "FP32",
    }
    labels, confidence = values["label"], np.array(values["confidence"])
    probabilities = np.array(values["probabilities"])
    assert len(labels) == len(TEXTS) and all(isinstance(label, str) for label in labels)
    assert probabilities.shape == (len(TEXTS), 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(confidence, probabilities.max(axis=1), rtol=1e-6)
    assert answer["ok"]["parameters"][contract.POLICY_VERSION_PARAMETER]
    # The same texts over REST: the same answer.
    rest = http_client(transformer).infer(MODEL, [text_input()])
    assert [b.decode() for b in rest.as_numpy("label")] == labels
    np.testing.assert_allclose(rest.as_numpy("probabilities"), probabilities, rtol=1e-5)

    tokens = {"input_ids": IDS, "attention_mask": [[1] * len(IDS[0])] * len(IDS)}
    (logits,) = call_grpc(predictor.grpc_target, {"call": "infer", "tokens": tokens})
    assert logits["ok"]["raw"] == 1
    assert np.array(logits["ok"]["outputs"]["logits"]).shape == (len(IDS), 3)


def test_grpc_answers_read_by_kserves_own_client(chain):
    """KServe's InferenceGRPCClient (what a KServe transformer in front of the kit uses) reads
    the same raw answers: BYTES labels and FP32 tensors."""
    import asyncio

    from kserve import InferInput, InferRequest
    from kserve.inference_client import InferenceGRPCClient

    transformer, _ = chain

    async def ask():
        client = InferenceGRPCClient(transformer.grpc_target, timeout=30)
        try:
            text = InferInput(contract.TEXT.name, [len(TEXTS)], "BYTES")
            text.set_data_from_numpy(np.array([t.encode() for t in TEXTS], dtype=np.object_))
            request = InferRequest(model_name=MODEL, infer_inputs=[text], request_id="kserve-1")
            return await client.infer(request)
        finally:
            await client.close()

    response = asyncio.run(ask())
    out = {o.name: o.as_numpy() for o in response.outputs}
    assert response.id == "kserve-1"
    assert out["label"].shape == (len(TEXTS),) and all(isinstance(b, bytes) for b in out["label"])
    assert out["probabilities"].dtype == np.float32 and out["probabilities"].shape == (2, 3)
    np.testing.assert_allclose(out["confidence"], out["probabilities"].max(axis=1), rtol=1e-6)


# 4. The threshold as a gRPC double --------------------------------------------------------


def test_grpc_threshold_as_double_or_string(chain):
    transformer, _ = chain
    double, string, lax = call_grpc(
        transformer.grpc_target,
        grpc_infer(parameters={"confidence_threshold": 0.999}),
        grpc_infer(parameters={"confidence_threshold": "0.999"}),
        grpc_infer(parameters={"confidence_threshold": 0.01}),
    )
    # The tiny model is random: far from 0.999 confident, always above 0.01.
    assert double["ok"]["outputs"]["label"] == ["others"] * len(TEXTS)
    assert string["ok"]["outputs"]["label"] == ["others"] * len(TEXTS)
    assert "others" not in lax["ok"]["outputs"]["label"]


def test_grpc_threshold_of_another_type_is_refused_saying_what_is_accepted(chain):
    transformer, _ = chain
    as_int, as_bool = call_grpc(
        transformer.grpc_target,
        grpc_infer(parameters={"confidence_threshold": 1}),
        grpc_infer(parameters={"confidence_threshold": True}),
    )
    for refused, kind in ((as_int, "int64_param"), (as_bool, "bool_param")):
        assert refused["status"] == "StatusCode.INVALID_ARGUMENT"
        message = refused["message"]
        assert kind in message and "double_param" in message and "string_param" in message


# 5. Metadata and versions -----------------------------------------------------------------


@pytest.mark.parametrize(
    "role, platform",
    [(0, "kserve-kit-transformer"), (1, "pytorch")],
    ids=["transformer", "predictor"],
)
def test_metadata_names_platform_and_the_served_version(chain, tiny_model_dir, role, platform):
    server = chain[role]
    version = ModelInfo.load(tiny_model_dir).version
    http = http_client(server)
    rest = http.get_model_metadata(MODEL)
    assert rest["platform"] == platform and rest["versions"] == [version]
    assert http.get_model_metadata(MODEL, model_version=version)["name"] == MODEL
    assert http.is_model_ready(MODEL, model_version=version)
    metadata, versioned, ready = call_grpc(
        server.grpc_target,
        {"call": "model_metadata"},
        {"call": "model_metadata", "model_version": version},
        {"call": "is_model_ready", "model_version": version},
    )
    assert metadata["ok"] == {"name": MODEL, "platform": platform, "versions": [version]}
    assert versioned == metadata and ready == {"ok": True}


def test_versioned_infer_serves_the_served_version_and_404s_another(chain, tiny_model_dir):
    transformer, _ = chain
    version = ModelInfo.load(tiny_model_dir).version
    http = http_client(transformer)
    served = http.infer(MODEL, [text_input()], model_version=version)
    assert len(served.as_numpy("label")) == len(TEXTS)
    assert served.get_response()["model_version"] == version
    with pytest.raises(InferenceServerException) as refused:
        http.infer(MODEL, [text_input()], model_version="v-other")
    assert status_of(refused.value) == "404" and version in refused.value.message()
    with pytest.raises(InferenceServerException) as refused:
        http.get_model_metadata(MODEL, model_version="v-other")
    assert status_of(refused.value) == "404"

    grpc_served, grpc_other, metadata_other, ready_other = call_grpc(
        transformer.grpc_target,
        grpc_infer(model_version=version),
        grpc_infer(model_version="v-other"),
        {"call": "model_metadata", "model_version": "v-other"},
        {"call": "is_model_ready", "model_version": "v-other"},
    )
    assert grpc_served["ok"]["model_version"] == version
    for refused in (grpc_other, metadata_other, ready_other):
        assert refused["status"] == "StatusCode.NOT_FOUND", refused


# 6. One log line for a refusal ----------------------------------------------------------


def test_an_unknown_model_is_404_and_logged_as_one_line(chain):
    transformer, _ = chain
    before = transformer.log_path.read_text(errors="replace")
    with pytest.raises(InferenceServerException) as refused:
        http_client(transformer).infer("no-such-model", [text_input()])
    (grpc_refused,) = call_grpc(transformer.grpc_target, grpc_infer(model="no-such-model"))
    assert status_of(refused.value) == "404"
    assert grpc_refused["status"] == "StatusCode.NOT_FOUND"
    for message in (refused.value.message(), grpc_refused["message"]):
        assert "'no-such-model'" in message and f"'{MODEL}'" in message  # says what is served
    added = transformer.log_path.read_text(errors="replace")[len(before) :]
    # The reason, once per refusal (the access log and KServe's timing lines name the path too).
    refusals = [line for line in added.splitlines() if "is not served here" in line]
    assert len(refusals) == 2, added  # one for REST, one for gRPC
    assert "Traceback" not in added and " ERROR " not in added, added
