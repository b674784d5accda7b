"""Both real servers as processes on free ports, wired as the InferenceService wires them."""

from __future__ import annotations

import pytest

from tests.support import servers


@pytest.fixture(scope="session", params=["grpc-v2", "v2"], ids=["grpc-hop", "rest-hop"])
def tiny_chain(request, tiny_model_dir, tmp_path_factory):
    """(transformer, predictor) on the tiny model, over each hop protocol."""
    logs = tmp_path_factory.mktemp(f"logs-{request.param}")
    predictor = servers.predictor(tiny_model_dir, logs, extra=["--max_batch_size", "8"])
    transformer = servers.transformer(
        tiny_model_dir,
        logs,
        predictor,
        protocol=request.param,
        extra=["--max_batch_size", "8", "--max_length", "32"],
    )
    with servers.running(predictor, transformer):
        yield transformer, predictor


@pytest.fixture(scope="session")
def demo_chain(demo_model_dir, tmp_path_factory):
    logs = tmp_path_factory.mktemp("logs-demo")
    predictor = servers.predictor(demo_model_dir, logs)
    transformer = servers.transformer(demo_model_dir, logs, predictor)
    with servers.running(predictor, transformer):
        yield transformer, predictor


@pytest.fixture
def own_chain(tiny_model_dir, tmp_path):
    """A private pair for tests that kill or pause the predictor; 2 s hop timeout."""
    predictor = servers.predictor(tiny_model_dir, tmp_path)
    transformer = servers.transformer(
        tiny_model_dir, tmp_path, predictor, extra=["--predictor_request_timeout_seconds", "2"]
    )
    with servers.running(predictor, transformer):
        yield transformer, predictor
