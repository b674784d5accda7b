"""The predictor serving bfloat16, through both real servers and the batch command: the same
V2 contract (FP32 logits), answers within bfloat16's rounding of float32's, and a start-up line
that says what serves. bfloat16 runs on every CPU (slowly without native bf16), so this runs
anywhere; whether `--dtype auto` picks it is tests/unit/test_precision.py's business."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.support import servers
from tests.support.http import get, infer_url, outputs, post, texts_body

pytestmark = pytest.mark.integration

TEXTS = ["good", "bad service", "fine, thanks", "the parcel never came"]


def answers(model_dir, logs, dtype: str) -> tuple[dict, str]:
    predictor = servers.predictor(
        model_dir, logs, name=f"predictor-{dtype}", extra=["--dtype", dtype]
    )
    with servers.running(predictor):
        status, meta = get(f"{predictor.url}/v2/models/text-classifier")
        assert status == 200 and meta["outputs"][0]["datatype"] == "FP32", meta
        transformer = servers.transformer(model_dir, logs, predictor, name=f"transformer-{dtype}")
        with servers.running(transformer):
            status, body = post(
                infer_url(transformer),
                texts_body(TEXTS, parameters={"confidence_threshold": 0.34}),
            )
    assert status == 200, body
    return outputs(body), predictor.log_tail(400)


def test_a_bfloat16_predictor_answers_as_float32_does_within_rounding(tiny_model_dir, tmp_path):
    half, half_log = answers(tiny_model_dir, tmp_path, "bfloat16")
    full, full_log = answers(tiny_model_dir, tmp_path, "float32")
    assert "float32, traced" in full_log
    assert "bfloat16, traced" in half_log and "0 decisions differ" in half_log
    np.testing.assert_allclose(
        half["probabilities"]["data"], full["probabilities"]["data"], atol=0.02
    )
    assert half["probabilities"]["datatype"] == "FP32"


def test_the_batch_command_scores_in_bfloat16(tiny_model_dir, tmp_path):
    rows = [{"id": str(i), "text": t} for i, t in enumerate(TEXTS)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    scored = {}
    for dtype in ("bfloat16", "float32"):
        out = tmp_path / f"{dtype}.jsonl"
        result = subprocess.run(
            [sys.executable, "-m", "offline.batch", "--model_dir", str(tiny_model_dir),
             "--input", str(tmp_path / "in.jsonl"), "--output", str(out), "--dtype", dtype,
             "--progress", "off"],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        assert f"{dtype}, " in result.stderr
        scored[dtype] = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in scored["bfloat16"]] == [r["id"] for r in scored["float32"]]
    np.testing.assert_allclose(
        [r["probabilities"] for r in scored["bfloat16"]],
        [r["probabilities"] for r in scored["float32"]],
        atol=0.02,
    )
