"""The transformer serving a decision policy: every answer names it, over REST and gRPC, and a
policy file that cannot serve stops the server at start with one line and exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

import grpc
import pytest

from kserve_kit.modeldir import ModelInfo
from kserve_kit.policy import DecisionPolicy
from tests.support import servers
from tests.support.http import grpc_infer, grpc_texts, infer_url, outputs, post, texts_body

pytestmark = pytest.mark.integration

TEXTS = ["where is my parcel?", "nice weather today"]


def test_every_answer_names_the_policy_over_rest_and_grpc(tiny_chain):
    transformer, _ = tiny_chain
    # The tiny model has no policy.json: the flags decide, as a policy with a derived version.
    expected = DecisionPolicy.from_flags(0.9, "others").version
    status, body = post(infer_url(transformer), texts_body(TEXTS))
    assert status == 200 and body["parameters"]["policy_version"] == expected, body
    code, response = grpc_infer(transformer.grpc_target, grpc_texts([t.encode() for t in TEXTS]))
    assert code == grpc.StatusCode.OK, response
    assert response.parameters["policy_version"].string_param == expected


def test_a_policy_file_decides_and_is_named(tiny_model_dir, tmp_path):
    policy = {
        "format": 1,
        "version": "strict-1",
        "model_version": ModelInfo.load(tiny_model_dir).version,
        "others_label": "unsure",
        "temperature": 1.0,
        "threshold": 0.99,
    }
    (tmp_path / "policy.json").write_text(json.dumps(policy))
    predictor = servers.predictor(tiny_model_dir, tmp_path)
    transformer = servers.transformer(
        tiny_model_dir, tmp_path, predictor, extra=["--policy_file", str(tmp_path / "policy.json")]
    )
    with servers.running(predictor, transformer):
        status, body = post(infer_url(transformer), texts_body(TEXTS))
        assert status == 200 and body["parameters"]["policy_version"] == "strict-1", body
        assert outputs(body)["label"]["data"] == ["unsure", "unsure"]  # random model, 0.99
        # A request's own threshold replaces the policy's, under the same policy's name.
        status, body = post(
            infer_url(transformer), texts_body(TEXTS, parameters={"confidence_threshold": 0.01})
        )
        assert "unsure" not in outputs(body)["label"]["data"]
        assert body["parameters"]["policy_version"] == "strict-1"


GOOD = {"format": 1, "version": "p", "others_label": "others", "temperature": 1, "threshold": 0.5}


@pytest.mark.parametrize(
    "content, key, says",
    [
        ("{not json", "", "JSON"),
        (json.dumps({**GOOD, "tresholds": 0.5}), "tresholds", "tresholds"),
        (json.dumps({**GOOD, "threshold": 1.5}), "threshold", "1.5"),
        (json.dumps({**GOOD, "temperature": 0}), "temperature", "0"),
        (json.dumps({**GOOD, "class_thresholds": {"spam": 0.5}}), "spam", "spam"),
        (json.dumps({**GOOD, "model_version": "another-model"}), "model_version", "another-model"),
    ],
    ids=["not-json", "unknown-key", "threshold", "temperature", "unknown-label", "model-version"],
)
def test_a_policy_that_cannot_serve_stops_the_transformer(
    tiny_model_dir, tmp_path, content, key, says
):
    path = tmp_path / "policy.json"
    path.write_text(content)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "transformer",
            "--model_dir",
            str(tiny_model_dir),
            "--predictor_host",
            "127.0.0.1:1",
            "--http_port",
            str(servers.free_port()),
            "--grpc_port",
            str(servers.free_port()),
            "--policy_file",
            str(path),
        ],
        cwd=servers.REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"transformer: error: {path}: ") and key in last and says in last, last
    assert "Traceback" not in result.stderr
