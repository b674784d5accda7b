"""What the servers log: no line per request by default, one per refusal; with --access_log the
per-request lines; with --log_format json every line a JSON object."""

from __future__ import annotations

import json

import pytest

from tests.support import servers
from tests.support.http import infer_url, post, texts_body

pytestmark = pytest.mark.integration


def test_by_default_no_line_per_request_and_one_per_refusal(tiny_chain):
    transformer, _ = tiny_chain
    before = transformer.log_path.read_text(errors="replace")
    for _ in range(5):
        assert post(infer_url(transformer), texts_body(["hello there"]))[0] == 200
    assert post(infer_url(transformer), texts_body([" "]))[0] == 400
    added = transformer.log_path.read_text(errors="replace")[len(before) :].splitlines()
    assert not [line for line in added if "uvicorn.access" in line or "kserve.trace" in line]
    assert len([line for line in added if "-> 400 INVALID_ARGUMENT" in line]) == 1, added
    assert not [line for line in added if "Deprecat" in line], added


def test_json_logs_with_access_lines(tiny_chain, tiny_model_dir, tmp_path):
    _, predictor = tiny_chain
    transformer = servers.transformer(
        tiny_model_dir,
        tmp_path,
        predictor,
        extra=["--log_format", "json", "--access_log", "true"],
        name="json-transformer",
    )
    with servers.running(transformer):
        assert post(infer_url(transformer), texts_body(["hello there"]))[0] == 200
        assert post(infer_url(transformer), texts_body([" "]))[0] == 400
    lines = [line for line in transformer.log_path.read_text().splitlines() if line.strip()]
    entries = []
    for line in lines:
        if line.startswith("{"):
            entries.append(json.loads(line))
    # Everything the kit and KServe log once the server is made is JSON: the access line,
    # the refusal, the shutdown.
    assert any(e["logger"] == "uvicorn.access" and "/infer" in e["message"] for e in entries)
    # KServe's timing middleware stays when its lines are wanted (off, it is a pass-through)
    assert any(e["logger"] == "kserve.trace" and "infer" in e["message"] for e in entries)
    refusal = [e for e in entries if e["logger"] == "kserve_kit.serving"]
    assert len(refusal) == 1 and refusal[0]["level"] == "INFO" and "400" in refusal[0]["message"]
    assert {"time", "level", "logger", "message", "pid"} <= set(refusal[0])
    assert any("Shutting down" in e["message"] for e in entries)
