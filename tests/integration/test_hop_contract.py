"""The hop's contract against a real predictor: checked at start from its V2 metadata over the
hop's own protocol, a mismatch stopping the transformer with one line before any port opens."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import servers
from tests.support.http import infer_url, outputs, post, texts_body

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def predictor(tiny_model_dir, tmp_path_factory):
    server = servers.predictor(tiny_model_dir, tmp_path_factory.mktemp("hop-contract"))
    with servers.running(server):
        yield server


def start(tiny_model_dir, predictor, protocol, *flags):
    port = predictor.grpc_port if protocol == "grpc-v2" else predictor.http_port
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "transformer",
            *("--model_dir", str(tiny_model_dir)),
            *("--predictor_host", f"127.0.0.1:{port}", "--predictor_protocol", protocol),
            *("--http_port", str(servers.free_port()), "--grpc_port", str(servers.free_port())),
            *flags,
        ],
        cwd=servers.REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("protocol", ["grpc-v2", "v2"])
@pytest.mark.parametrize(
    "flags, says",
    [
        (["--predictor_input_ids_name", "ids"], "--predictor_input_ids_name 'ids'"),
        (["--predictor_output_name", "scores"], "outputs ['logits']"),
        (["--predictor_input_datatype", "INT32"], "wants 'input_ids' as INT64"),
        (["--predictor_model_name", "no-such-model"], "does not serve it"),
    ],
    ids=["input-name", "output-name", "datatype", "model-name"],
)
def test_a_mismatched_contract_stops_the_transformer_at_start(
    tiny_model_dir, predictor, protocol, flags, says
):
    result = start(tiny_model_dir, predictor, protocol, *flags)
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("transformer: error: --predictor_") and says in last, last
    assert "Traceback" not in result.stderr


def test_an_unreachable_predictor_is_not_checked_and_says_so(tiny_model_dir, tmp_path):
    """The predictor may start after the transformer (one InferenceService, two pods): the
    transformer serves, and its readiness follows the predictor's as before."""
    absent = servers.Server("absent", [], servers.free_port(), servers.free_port(), tmp_path / "a")
    transformer = servers.transformer(
        tiny_model_dir,
        tmp_path,
        absent,
        extra=["--predictor_metadata_timeout_seconds", "0.5"],
    )
    with servers.running(transformer):
        assert "the hop's contract is not checked" in transformer.log_path.read_text()
        status, body = post(infer_url(transformer), texts_body(["hello"]))
        assert status == 503, body


def test_token_type_ids_sent_to_a_predictor_that_takes_them(tiny_model_dir, predictor, tmp_path):
    plain = servers.transformer(tiny_model_dir, tmp_path, predictor, name="plain")
    typed = servers.transformer(
        tiny_model_dir,
        tmp_path,
        predictor,
        extra=["--predictor_token_type_ids", "true"],
        name="typed",
    )
    with servers.running(plain, typed):
        answers = [post(infer_url(t), texts_body(["same text"]))[1] for t in (plain, typed)]
        assert "matches the predictor" in typed.log_path.read_text()
    # All-zero type ids are what BERT assumes without them: the same probabilities.
    first, second = (outputs(a)["probabilities"]["data"] for a in answers)
    assert first == pytest.approx(second, abs=1e-6)
