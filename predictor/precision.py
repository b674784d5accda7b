"""Which floating-point type serves, and whether its decisions can be trusted.

Pure: no torch. The runtime (`predictor.runtime`) asks `choose_dtype` what `--dtype` means on
this machine, runs the probe forwards in both types, and asks `compare` whether the half type
answers as float32 does. Why the check exists: bfloat16 keeps 8 bits of mantissa, so a
probability near a threshold can land on the other side of it; a model whose answers move
further than that (an unusual architecture, a badly scaled head) must not serve in it silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kserve_kit.policy import DecisionPolicy

# x86 flags (Linux /proc/cpuinfo "flags") and Arm features ("Features") that mean bfloat16
# matrix products run in hardware; without them oneDNN converts to float32 and back, which is
# slower than float32 alone.
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")
CPUINFO = Path("/proc/cpuinfo")
# A half type serves only while, on every probe, no probability moves by more than this from
# float32, and no decision differs except where float32's top probability lies within
# DECISION_MARGIN of the threshold that decides it (or of the runner-up's).
MAX_PROBABILITY_DIFF = 0.02
DECISION_MARGIN = 0.01


@dataclass(frozen=True)
class DtypeChoice:
    """What `--dtype` resolves to here, and the words for the start-up log."""

    dtype: str
    reason: str
    warning: str | None = None  # logged at WARNING: runs, but not as fast as it could


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The CPU's feature flags from the text of /proc/cpuinfo (first processor's)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return frozenset(value.split())
    return frozenset()


def native_bf16(flags: frozenset[str], torch_bf16: bool) -> tuple[bool, str]:
    """Whether bfloat16 runs natively: the CPU says so, and torch's oneDNN can use it."""
    found = sorted(set(NATIVE_BF16_FLAGS) & flags)
    if not found:
        return False, "this CPU has no native bfloat16 (none of " + ", ".join(
            NATIVE_BF16_FLAGS
        ) + ")"
    if not torch_bf16:
        return False, f"the CPU has {', '.join(found)}, but this torch build cannot use it"
    return True, f"the CPU has native bfloat16 ({', '.join(found)})"


def read_cpu_flags(path: Path = CPUINFO) -> frozenset[str]:
    try:
        return cpu_flags(path.read_text())
    except OSError:
        return frozenset()


def choose_dtype(
    requested: str, device_type: str, quantize: str, bf16: tuple[bool, str]
) -> DtypeChoice:
    """`--dtype` on this device: auto is float16 on CUDA, bfloat16 on a CPU with native bf16,
    float32 otherwise (and always under int8 quantization, which quantizes float32 weights)."""
    native, why = bf16
    if requested != "auto":
        if requested == "bfloat16" and device_type == "cpu" and not native:
            return DtypeChoice(
                "bfloat16",
                "asked for",
                f"--dtype bfloat16 on a CPU without native support runs slower than float32: "
                f"{why}; --dtype auto picks the faster type",
            )
        return DtypeChoice(requested, "asked for")
    if device_type == "cuda":
        return DtypeChoice("float16", "auto on CUDA")
    if quantize != "none":
        return DtypeChoice("float32", f"auto under --quantize {quantize}")
    if native:
        return DtypeChoice("bfloat16", f"auto: {why}")
    return DtypeChoice("float32", f"auto: {why}")


@dataclass(frozen=True)
class Comparison:
    """A half type's probe answers against float32's."""

    dtype: str
    rows: int
    max_probability_diff: float
    differing: int  # decisions that differ away from any threshold: the ones that count
    near_threshold: int  # decisions that differ where float32 itself was within the margin

    @property
    def passed(self) -> bool:
        return self.max_probability_diff <= MAX_PROBABILITY_DIFF and self.differing == 0

    def describe(self) -> str:
        return (
            f"{self.dtype} against float32 on {self.rows} probe rows: largest probability "
            f"difference {self.max_probability_diff:.4f} (at most {MAX_PROBABILITY_DIFF}), "
            f"{self.differing} decisions differ ({self.near_threshold} more within "
            f"{DECISION_MARGIN} of a threshold)"
        )


def compare(
    dtype: str,
    reference: Sequence[np.ndarray],
    candidate: Sequence[np.ndarray],
    policy: DecisionPolicy,
    labels: Sequence[str],
) -> Comparison:
    """Compare logits batch by batch (float32's first) under the serving policy."""
    rows = differing = near = 0
    largest = 0.0
    for want_logits, got_logits in zip(reference, candidate, strict=True):
        want = policy.decide(np.asarray(want_logits, dtype=np.float32), labels)
        got = policy.decide(np.asarray(got_logits, dtype=np.float32), labels)
        rows += len(want.labels)
        if len(want.labels):
            diff = np.abs(want.probabilities - got.probabilities).max()
            largest = max(largest, float(np.nan_to_num(diff, nan=1.0)))
        for i, (a, b) in enumerate(zip(want.labels, got.labels, strict=True)):
            if a == b:
                continue
            if _near_a_threshold(want.probabilities[i], policy, labels):
                near += 1
            else:
                differing += 1
    return Comparison(dtype, rows, largest, differing, near)


def _near_a_threshold(
    probabilities: np.ndarray, policy: DecisionPolicy, labels: Sequence[str]
) -> bool:
    order = np.argsort(probabilities)[::-1]
    top = float(probabilities[order[0]])
    second = float(probabilities[order[1]]) if len(order) > 1 else 0.0
    threshold = policy.class_thresholds.get(labels[order[0]], policy.threshold)
    return abs(top - threshold) <= DECISION_MARGIN or top - second <= DECISION_MARGIN
