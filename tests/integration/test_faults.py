"""A predictor that dies or stalls degrades the transformer clearly, and recovery needs no restart.

The stall is real: the predictor process is frozen with SIGSTOP, so requests reach a socket that
accepts them and never answers, exactly as a hung model would.
"""

import signal
import time

import pytest

from tests.support.http import get, infer_url, post, texts_body

pytestmark = pytest.mark.integration


def test_predictor_down_is_a_503_naming_it_and_recovery_needs_no_restart(own_chain):
    transformer, predictor = own_chain
    assert post(infer_url(transformer), texts_body(["before"]))[0] == 200

    predictor.signal(signal.SIGKILL)
    predictor.process.wait(10)
    status, body = post(infer_url(transformer), texts_body(["during"]))
    assert status == 503, body
    assert f"predictor at 127.0.0.1:{predictor.grpc_port} is unavailable" in body["error"]
    assert get(f"{transformer.url}/v2/health/live")[0] == 200

    transformer_pid = transformer.process.pid
    predictor.start().wait_ready()
    # The hop's gRPC channel retries the connection at most a second apart (RECONNECT_BACKOFF
    # in transformer/hop.py); allow a few of those, not gRPC's default of up to two minutes.
    deadline = time.monotonic() + 5
    while (status := post(infer_url(transformer), texts_body(["after"]))[0]) != 200:
        assert status == 503 and time.monotonic() < deadline, f"no recovery: {status}"
        time.sleep(0.1)
    assert transformer.process.pid == transformer_pid and transformer.process.poll() is None


def test_a_stalled_predictor_is_a_504_and_the_transformer_stays_healthy(own_chain):
    transformer, predictor = own_chain
    assert post(infer_url(transformer), texts_body(["connect first"]))[0] == 200
    predictor.signal(signal.SIGSTOP)
    try:
        status, body = post(infer_url(transformer), texts_body(["slow"]), timeout=30)
        assert status == 504, body
        assert "did not answer within 2 s" in body["error"]
        assert get(f"{transformer.url}/v2/health/ready")[0] == 200
    finally:
        predictor.signal(signal.SIGCONT)
    assert post(infer_url(transformer), texts_body(["awake"]))[0] == 200
