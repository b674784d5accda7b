"""The benchmark's report: ratios are taken within each round (side by side), then the median."""

import pytest

from bench import report

pytestmark = pytest.mark.unit


def served(target, concurrency, throughput, p50=10.0, p99=20.0):
    return {
        "target": target,
        "protocol": "grpc",
        "concurrency": concurrency,
        "throughput": throughput,
        "p50_ms": p50,
        "p95_ms": p99,
        "p99_ms": p99,
        "server_cpu_ms_per_request": {"predictor": 10.0},
        "client_cpu_ms_per_request": 0.3,
        "rows_per_forward": 4.0,
        "requests": 100,
        "errors": 0,
        "first_error": None,
    }


def raw(label, batch, rows_per_s, p50=15.0):
    return {
        "target": f"raw-{label}",
        "batch": batch,
        "rows_per_s": rows_per_s,
        "forward_ms_p50": p50,
        "cpu_ms_per_row": 10.0,
    }


def run(rounds):
    return {"rounds": rounds, "model_bytes": 0, "accuracy": {}, "rss_peak_bytes": {}}


RUN_INFO = {
    "settings": {
        "mode": "quick",
        "seconds": 1.0,
        "threads": 2,
        "max_batch_size": 32,
        "max_batch_delay_ms": 2.0,
        "pytriton_delay_us": 0,
    },
    "machine": {"cpu": "test", "cpus_usable": 2, "load_average_at_end": [0, 0, 0], "gpu": "none"},
    "wall_s": 1.0,
    "started": "now",
}


def ratio(summary, name):
    return next(r for r in summary["ratios"] if r["name"].startswith(name))


def test_a_ratio_is_the_median_of_the_per_round_ratios_not_the_ratio_of_medians():
    rounds = [
        [served("chain", 16, 80), raw("fp32", 16, 100)],
        [served("chain", 16, 90), raw("fp32", 16, 100)],
        [served("chain", 16, 100), raw("fp32", 16, 125)],
    ]
    summary = report.summarize(run(rounds))
    got = ratio(summary, "chain c=16 throughput / raw batched forward")
    assert got["value"] == pytest.approx(0.8)  # per round 0.8, 0.9, 0.8; medians give 0.9
    assert got["met"] is False  # the bound is 0.85
    assert got["rounds_range"] == pytest.approx([0.8, 0.9])
    assert "| 0.80 | 0.80-0.90 | >= 0.85 | **no** |" in report.markdown(
        {**run(rounds), **RUN_INFO}, summary
    )
    assert summary["cells"]["chain/grpc/c16"]["throughput"] == 90


def test_the_two_forwards_limit_is_reported_only_when_it_was_measured():
    one = [[served("chain", 16, 90), served("predictor", 16, 100), raw("fp32", 16, 100)]]
    names = [r["name"] for r in report.summarize(run(one))["ratios"]]
    assert not any("two 1-thread forwards" in n for n in names)
    two = [one[0] + [raw("fp32x2", 16, 120)]]
    summary = report.summarize(run(two))
    assert ratio(summary, "predictor c=16 throughput / raw, two")["value"] == pytest.approx(
        100 / 120
    )
    assert ratio(summary, "chain c=16 throughput / raw, two")["value"] == pytest.approx(0.75)


def test_the_latency_target_is_a_difference_in_milliseconds():
    rounds = [[served("chain", 1, 50, p50=17.5), raw("fp32", 1, 60, p50=15.0)]]
    got = ratio(report.summarize(run(rounds)), "chain c=1 p50")
    assert got["unit"] == "ms"
    assert got["value"] == pytest.approx(2.5)
    assert got["met"] is True


def test_served_targets_are_held_to_the_raw_forward_of_the_type_the_predictor_serves():
    rounds = [[served("chain", 16, 300), raw("fp32", 16, 100), raw("bf16", 16, 400)]]
    data = {**run(rounds), "raw_reference": "bf16", "machine": {"precision": {"native_bf16": True}}}
    summary = report.summarize(data)
    chain = ratio(summary, "chain c=16 throughput / raw batched forward, bf16")
    assert chain["value"] == pytest.approx(0.75)
    speedup = ratio(summary, "bf16 raw throughput / fp32 raw")
    assert speedup["value"] == pytest.approx(4.0) and speedup["met"]
    assert "emulated" not in speedup["name"]


def test_bf16_on_a_cpu_without_native_support_is_labelled_emulated():
    rounds = [[raw("fp32", 16, 100), raw("bf16", 16, 10)]]
    data = {**run(rounds), "machine": {"precision": {"native_bf16": False}}}
    speedup = ratio(report.summarize(data), "bf16 raw throughput / fp32 raw")
    assert "not supported on this CPU" in speedup["name"] and not speedup["met"]
