"""What --dtype means on a machine, and when a half type's answers are close enough to serve."""

import numpy as np
import pytest

from kserve_kit.policy import DecisionPolicy
from predictor import precision
from predictor.precision import Comparison, choose_dtype, compare, cpu_flags, native_bf16

pytestmark = pytest.mark.unit

LABELS = ("negative", "neutral", "positive")
POLICY = DecisionPolicy.from_flags(0.9, "others")
SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
EPYC_ROME = "processor\t: 0\nflags\t\t: fpu sse avx2 sha_ni\n"
GRAVITON3 = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"


def test_cpu_flags_are_read_from_the_first_processor_on_x86_and_arm():
    assert {"avx512_bf16", "amx_bf16"} <= cpu_flags(SAPPHIRE_RAPIDS)
    assert "bf16" in cpu_flags(GRAVITON3)
    assert cpu_flags("model name : x\n") == frozenset()


@pytest.mark.parametrize(
    "cpuinfo, torch_bf16, native, says",
    [
        (SAPPHIRE_RAPIDS, True, True, "amx_bf16, avx512_bf16"),
        (GRAVITON3, True, True, "(bf16)"),
        (EPYC_ROME, True, False, "no native bfloat16"),
        (SAPPHIRE_RAPIDS, False, False, "this torch build cannot use it"),
    ],
)
def test_native_bf16_needs_the_cpu_and_torch(cpuinfo, torch_bf16, native, says):
    got, why = native_bf16(cpu_flags(cpuinfo), torch_bf16)
    assert got is native and says in why


YES = (True, "the CPU has native bfloat16 (avx512_bf16)")
NO = (False, "this CPU has no native bfloat16")


@pytest.mark.parametrize(
    "requested, device, quantize, bf16, dtype, warns",
    [
        ("auto", "cpu", "none", YES, "bfloat16", False),
        ("auto", "cpu", "none", NO, "float32", False),
        ("auto", "cuda", "none", NO, "float16", False),
        ("auto", "cpu", "int8", YES, "float32", False),  # int8 quantizes float32 weights
        ("float32", "cpu", "none", YES, "float32", False),
        ("bfloat16", "cpu", "none", YES, "bfloat16", False),
        ("bfloat16", "cpu", "none", NO, "bfloat16", True),  # runs, slowly, and says so
        ("bfloat16", "cuda", "none", NO, "bfloat16", False),
    ],
)
def test_choose_dtype(requested, device, quantize, bf16, dtype, warns):
    choice = choose_dtype(requested, device, quantize, bf16)
    assert choice.dtype == dtype
    assert (choice.warning is not None) is warns
    if warns:
        assert "slower than float32" in choice.warning and "--dtype auto" in choice.warning


def logits_for(probabilities) -> np.ndarray:
    return np.log(np.asarray(probabilities, dtype=np.float64)).astype(np.float32)


def test_equal_answers_pass():
    batch = logits_for([[0.95, 0.03, 0.02], [0.5, 0.3, 0.2]])
    result = compare("bfloat16", [batch], [batch.copy()], POLICY, LABELS)
    assert result == Comparison("bfloat16", 2, 0.0, 0, 0) and result.passed


def test_a_decision_flipped_far_from_the_threshold_fails_the_check():
    # float32 says positive at 0.97; the half type's argmax moved to negative at 0.96.
    want = logits_for([[0.01, 0.02, 0.97]])
    got = logits_for([[0.96, 0.02, 0.02]])
    result = compare("bfloat16", [want], [got], POLICY, LABELS)
    assert result.differing == 1 and not result.passed


def test_a_flip_within_the_margin_of_the_threshold_is_excused_but_counted():
    # 0.905 against a 0.9 threshold: 0.895 in the half type answers others.
    want = logits_for([[0.905, 0.05, 0.045]])
    got = logits_for([[0.895, 0.06, 0.045]])
    result = compare("bfloat16", [want], [got], POLICY, LABELS)
    assert (result.differing, result.near_threshold) == (0, 1)
    assert result.passed
    assert result.max_probability_diff == pytest.approx(0.01, abs=1e-4)


def test_a_per_class_threshold_is_the_one_that_decides():
    policy = DecisionPolicy(
        version="t", threshold=0.9, others_label="others", class_thresholds={"positive": 0.6}
    )
    want = logits_for([[0.1, 0.295, 0.605]])  # positive, 0.005 above its own threshold
    got = logits_for([[0.1, 0.305, 0.595]])  # others
    result = compare("bfloat16", [want], [got], policy, LABELS)
    assert (result.differing, result.near_threshold) == (0, 1)


def test_probabilities_that_move_too_far_fail_even_with_equal_decisions():
    want = logits_for([[0.5, 0.3, 0.2]])
    got = logits_for(
        [[0.5 - 2 * precision.MAX_PROBABILITY_DIFF, 0.3, 0.2 + 2 * precision.MAX_PROBABILITY_DIFF]]
    )
    result = compare("bfloat16", [want], [got], POLICY, LABELS)
    assert result.differing == 0 and not result.passed
    assert "at most 0.02" in result.describe()


def test_nan_logits_fail_the_check():
    want = logits_for([[0.5, 0.3, 0.2]])
    got = np.full_like(want, np.nan)
    assert not compare("float16", [want], [got], POLICY, LABELS).passed
