"""--dtype on a real model: what serves, the check against float32, and what composes with it.

bfloat16 runs on every CPU (slowly without native support), so these run anywhere; "a CPU
with native bf16" is simulated by handing the runtime that CPU's flags."""

import logging

import numpy as np
import pytest
import torch

from predictor import precision, runtime
from predictor.config import PredictorSettings

pytestmark = pytest.mark.runtime


def load(model_dir, *argv):
    return runtime.TorchRuntime.load(
        PredictorSettings.from_args(["--model_dir", str(model_dir), "--device", "cpu", *argv])
    )


def tokens(rows=5, length=24, seed=3):
    ids = np.random.default_rng(seed).integers(1000, 5000, size=(rows, length), dtype=np.int64)
    mask = np.ones_like(ids)
    mask[-1, length // 2 :] = 0
    return ids * mask, mask


def native_cpu(monkeypatch):
    monkeypatch.setattr(runtime.precision, "read_cpu_flags", lambda: frozenset({"avx512_bf16"}))
    monkeypatch.setattr(runtime, "torch_bf16_supported", lambda: True)


def test_auto_serves_bfloat16_on_a_cpu_with_native_bf16_traced_with_two_workers(
    tiny_model_dir, monkeypatch, caplog
):
    native_cpu(monkeypatch)
    with caplog.at_level(logging.INFO, logger="predictor.runtime"):
        rt = load(tiny_model_dir, "--torch_threads", "2")
    assert rt.dtype == "bfloat16"
    assert {p.dtype for p in rt.model.parameters()} == {torch.bfloat16}
    assert rt.traced is not None and rt.forward_workers == 2
    started = [r.getMessage() for r in caplog.records if r.getMessage().startswith("serving ")]
    assert len(started) == 1
    assert "bfloat16, traced" in started[0] and "2 forward workers" in started[0]
    assert "native bfloat16 (avx512_bf16)" in started[0] and "0 decisions differ" in started[0]
    ids, mask = tokens()
    reference = load(tiny_model_dir, "--dtype", "float32").forward(ids, mask)
    got = rt.forward(ids, mask)
    assert got.dtype == np.float32 and got.shape == reference.shape
    np.testing.assert_allclose(got, reference, atol=0.05)


def test_auto_is_float32_where_the_cpu_has_no_native_bf16(tiny_model_dir, monkeypatch):
    monkeypatch.setattr(runtime.precision, "read_cpu_flags", lambda: frozenset({"avx2"}))
    rt = load(tiny_model_dir)
    assert rt.dtype == "float32"
    assert {p.dtype for p in rt.model.parameters()} == {torch.float32}


def test_an_explicit_bfloat16_without_native_support_runs_and_warns(
    tiny_model_dir, monkeypatch, caplog
):
    monkeypatch.setattr(runtime.precision, "read_cpu_flags", lambda: frozenset({"avx2"}))
    with caplog.at_level(logging.WARNING, logger="predictor.runtime"):
        rt = load(tiny_model_dir, "--dtype", "bfloat16", "--compile", "none")
    assert rt.dtype == "bfloat16" and rt.traced is None
    assert any("runs slower than float32" in r.getMessage() for r in caplog.records)


def test_float32_serves_when_the_half_type_fails_its_check(tiny_model_dir, monkeypatch, caplog):
    native_cpu(monkeypatch)
    # A tolerance no rounding meets: the check must fail, and float32 must serve.
    monkeypatch.setattr(precision, "MAX_PROBABILITY_DIFF", -1.0)
    with caplog.at_level(logging.INFO, logger="predictor.runtime"):
        rt = load(tiny_model_dir)
    assert rt.dtype == "float32"
    assert {p.dtype for p in rt.model.parameters()} == {torch.float32}
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        "serving float32 instead" in m and r.levelno == logging.WARNING
        for m, r in zip(messages, caplog.records, strict=True)
    )
    assert any("bfloat16 failed its check against float32" in m for m in messages)


def test_int8_under_auto_quantizes_float32_weights(tiny_model_dir, monkeypatch):
    native_cpu(monkeypatch)
    rt = load(tiny_model_dir, "--quantize", "int8")
    assert rt.dtype == "float32"
    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in rt.model.modules())


def test_the_probe_set_reaches_the_tokenizer_and_several_lengths(tiny_model_dir):
    from kserve_kit.modeldir import ModelInfo

    batches = runtime.probe_batches(ModelInfo.load(tiny_model_dir))
    assert batches[0][0].shape[0] == len(runtime.PROBE_TEXTS)  # the texts, tokenized
    lengths = {ids.shape[1] for ids, _ in batches[1:]}
    assert lengths == {length for _, length in runtime.PROBE_SHAPES}
    assert all((mask[0] == 0).any() for _, mask in batches[1:])  # a padded row in each
