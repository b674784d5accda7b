"""The predictor's CPU settings: threads from the cgroup, OpenMP wait policy, int8 quantization."""

import gc
import os
import subprocess
import sys

import numpy as np
import pytest

from predictor.config import PredictorSettings

pytestmark = pytest.mark.runtime

torch = pytest.importorskip("torch", reason="the runtime needs the predictor extra")

from kserve_kit.errors import ModelUnfit  # noqa: E402
from predictor import runtime  # noqa: E402


@pytest.mark.parametrize(
    "files, limit",
    [
        ({"cpu.max": "200000 100000\n"}, 2.0),
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 0.5),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
    ],
    ids=["v2-two", "v2-fraction", "v2-unlimited", "v1-half", "v1-unlimited", "none"],
)
def test_cgroup_cpu_limit_reads_v2_then_v1(tmp_path, files, limit):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert runtime.cgroup_cpu_limit(tmp_path) == limit


def test_available_cpus_is_the_affinity_bounded_by_the_quota_rounded_up(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(64)))
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert runtime.available_cpus(tmp_path) == 2  # 1.5 CPUs of quota on a 64-CPU node
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert runtime.available_cpus(tmp_path) == 64
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1})
    (tmp_path / "cpu.max").write_text("800000 100000\n")
    assert runtime.available_cpus(tmp_path) == 2  # a cpuset smaller than the quota wins


def test_configure_threads_uses_the_request_else_the_available_cpus(monkeypatch):
    monkeypatch.setattr(runtime, "available_cpus", lambda: 3)
    before = torch.get_num_threads()
    try:
        assert runtime.configure_threads(0) == 3
        assert torch.get_num_threads() == 3
        assert runtime.configure_threads(1) == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(
    "env, expected",
    [({}, "PASSIVE"), ({"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE")],
    ids=["unset-becomes-passive", "an-explicit-setting-is-kept"],
)
def test_the_runtime_makes_openmp_threads_sleep_unless_told_otherwise(env, expected):
    clean = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    code = (
        "import sys; sys.argv = sys.argv[:1]; import predictor.runtime, os; "
        "print(os.environ['OMP_WAIT_POLICY'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert out.stdout.strip() == expected


def test_int8_is_refused_on_a_gpu_with_a_clear_reason(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(ModelUnfit, match="--quantize int8 .* runs on the CPU only"):
        runtime.resolve_device("auto", "float32", "int8")
    assert runtime.resolve_device("cpu", "float32", "int8").type == "cpu"


def test_the_quantize_flag_defaults_to_none():
    assert PredictorSettings.from_args([]).quantize == "none"
    assert PredictorSettings.from_args(["--quantize", "int8", "--device", "cpu"]).quantize == "int8"


def test_int8_quantizes_every_linear_layer_and_keeps_the_answers(tiny_model_dir):
    float_runtime = runtime.TorchRuntime.load(
        PredictorSettings.from_args(
            ["--model_dir", str(tiny_model_dir), "--device", "cpu", "--dtype", "float32"]
        )
    )
    int8_runtime = runtime.TorchRuntime.load(
        PredictorSettings.from_args(
            ["--model_dir", str(tiny_model_dir), "--device", "cpu", "--quantize", "int8"]
        )
    )
    modules = list(int8_runtime.model.modules())
    assert not any(type(m) is torch.nn.Linear for m in modules)
    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in modules)
    rng = np.random.default_rng(5)
    ids = rng.integers(1000, 5000, size=(6, 20), dtype=np.int64)
    mask = np.ones_like(ids)
    expected = float_runtime.forward(ids, mask)
    got = int8_runtime.forward(ids, mask)
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=0.1)


def test_warm_up_runs_one_row_at_every_length_and_a_full_batch_at_the_short_ones(tiny_model_dir):
    rt = runtime.TorchRuntime.load(
        PredictorSettings.from_args(
            ["--model_dir", str(tiny_model_dir), "--device", "cpu", "--dtype", "float32"]
        )
    )
    shapes = []
    real_forward = rt.forward
    rt.forward = lambda ids, mask, types=None: shapes.append(ids.shape) or real_forward(ids, mask)
    try:
        rt.warm_up(8)
        assert shapes == [(1, 16), (1, 64), (1, 128), (8, 16), (8, 64)]
        # what loading made is out of the collector's reach: full collections stay short
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_a_lone_forward_gets_every_thread_and_concurrent_ones_their_share(tiny_model_dir):
    rt = runtime.TorchRuntime.load(
        PredictorSettings.from_args(
            ["--model_dir", str(tiny_model_dir), "--device", "cpu", "--torch_threads", "4"]
        )
    )
    assert rt.forward_workers == 2  # auto, on a CPU with 4 threads and a traced model
    seen = []
    before_forward = rt.thread_plan(2)

    def in_thread():
        for alone in (False, True, False):
            before_forward(alone)
            seen.append(torch.get_num_threads())

    import threading

    before = torch.get_num_threads()
    thread = threading.Thread(target=in_thread)
    try:
        thread.start()
        thread.join()
    finally:
        torch.set_num_threads(before)
    assert seen == [2, 4, 2]


@pytest.mark.parametrize(
    "requested, device, threads, traced, workers",
    [
        (0, "cpu", 2, True, 2),
        (0, "cpu", 8, True, 2),
        (0, "cpu", 2, False, 1),
        (0, "cpu", 1, True, 1),
        (0, "cuda", 8, True, 1),
        (3, "cpu", 8, False, 3),
    ],
)
def test_forward_workers_auto_is_two_for_a_traced_model_on_a_cpu(
    requested, device, threads, traced, workers
):
    got = runtime.resolve_forward_workers(requested, torch.device(device), threads, traced)
    assert got == workers


def test_the_traced_model_serves_the_eager_model_s_logits_at_every_shape(tiny_model_dir):
    """--compile trace (the default): one TorchScript graph, checked against the eager model
    at start; here it must pass that check and then agree at shapes it never saw."""
    config = PredictorSettings.from_args(
        ["--model_dir", str(tiny_model_dir), "--device", "cpu", "--dtype", "float32"]
    )
    assert config.compile == "trace"
    rt = runtime.TorchRuntime.load(config)
    assert rt.traced is not None
    eager = runtime.TorchRuntime.load(
        PredictorSettings.from_args(
            ["--model_dir", str(tiny_model_dir), "--device", "cpu", "--compile", "none"]
            + ["--dtype", "float32"]
        )
    )
    assert eager.traced is None
    rng = np.random.default_rng(7)
    for rows, length in ((1, 2), (4, 33), (9, 100)):
        ids = rng.integers(3, 90, size=(rows, length))
        mask = np.ones_like(ids)
        mask[-1, length // 3 :] = 0  # one padded row
        np.testing.assert_allclose(rt.forward(ids, mask), eager.forward(ids, mask), atol=1e-5)
    # token_type_ids are not in the traced graph: the eager model answers those requests
    types = np.zeros_like(ids)
    np.testing.assert_allclose(
        rt.forward(ids, mask, types), eager.forward(ids, mask, types), atol=1e-5
    )


class _ShapeDependent(torch.nn.Module):
    """A model whose Python code branches on the batch size: a trace records one branch only."""

    class Out:
        def __init__(self, logits):
            self.logits = logits

    def forward(self, input_ids, attention_mask):
        x = (input_ids * attention_mask).float().sum(dim=1, keepdim=True)
        if input_ids.shape[0] > 2:  # the trace, made on 2 rows, never takes this branch
            x = -x
        return self.Out(torch.cat([x, x + 1], dim=1))


def test_a_trace_that_differs_from_the_eager_model_is_not_served(caplog):
    with caplog.at_level("WARNING", logger="predictor.runtime"):
        assert runtime.trace_model(_ShapeDependent(), torch.device("cpu"), 100) is None
    assert "differs from the eager one" in caplog.text


def test_a_model_the_tracer_cannot_follow_is_served_eager(caplog):
    class Untraceable(torch.nn.Module):
        def forward(self, input_ids, attention_mask):
            raise RuntimeError("unsupported op")

    with caplog.at_level("WARNING", logger="predictor.runtime"):
        assert runtime.trace_model(Untraceable(), torch.device("cpu"), 100) is None
    assert "cannot be traced" in caplog.text
