"""The business logic after the model: probabilities, and when to refuse to guess.

Pure numpy: no kserve, no torch. The transformer and the batch pipeline both call `decide`
(through `kserve_kit.policy.DecisionPolicy.decide`, which holds its arguments as data).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from kserve_kit.contract import THRESHOLD_PARAMETER


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of a `[N, C]` array, stable for any finite logits.

    Subtracting the row maximum keeps `exp` from overflowing; the result is float32.
    """
    x = np.asarray(logits, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected logits of shape [N, C], got shape {list(x.shape)}")
    shifted = x - x.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def validate_threshold(value: object) -> float:
    """Return `value` as a float strictly between 0 and 1, or raise ValueError saying why."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(
            f"confidence_threshold must be a number in (0, 1), got {type(value).__name__}"
        )
    try:
        threshold = float(value)
    except ValueError:
        raise ValueError(
            f"confidence_threshold must be a number in (0, 1), got {value!r}"
        ) from None
    if not math.isfinite(threshold) or not 0.0 < threshold < 1.0:
        raise ValueError(f"confidence_threshold must be in (0, 1), got {value!r}")
    return threshold


# How a request may send its threshold: a JSON number or string over REST, a double or a string
# over gRPC (the kinds `kserve_kit.tensors.read_parameter` reports).
THRESHOLD_KINDS = ("number", "string", "double_param", "string_param")


def requested_threshold(sent: tuple[str, object] | None, allow_override: bool) -> float | None:
    """A request's own threshold from its `confidence_threshold` parameter, as (kind, value),
    or None when it sent none (the policy's thresholds apply). Raises ValueError saying why one
    is refused: the operator fixed the threshold, or it is not a number in (0, 1)."""
    if sent is None:
        return None
    if not allow_override:
        raise ValueError(
            f"this server does not accept a {THRESHOLD_PARAMETER} parameter "
            "(--allow_threshold_override false); its threshold is fixed"
        )
    kind, value = sent
    if kind not in THRESHOLD_KINDS:
        raise ValueError(
            f"parameter {THRESHOLD_PARAMETER} must be a number in (0, 1), sent as "
            f"{' or '.join(THRESHOLD_KINDS)}; got {kind} {value!r}"
        )
    try:
        return validate_threshold(value)
    except ValueError as exc:
        raise ValueError(f"parameter {exc}") from None


@dataclass(frozen=True)
class Decisions:
    """What the serving layer answers for a batch of N texts over C classes."""

    labels: list[str]
    confidence: np.ndarray  # float32 [N], the top probability
    probabilities: np.ndarray  # float32 [N, C]


def decide(
    logits: np.ndarray,
    id2label: Mapping[int, str] | Sequence[str],
    threshold: float,
    others_label: str,
    *,
    temperature: float = 1.0,
    class_thresholds: Mapping[str, float] | None = None,
) -> Decisions:
    """Turn logits into labels: the top class when its probability reaches its threshold,
    otherwise `others_label`.

    `temperature` divides the logits before the softmax (calibration: above 1 softens the
    probabilities, below 1 sharpens them; 1 leaves them as they are). The threshold of a row is
    `class_thresholds[label of its top class]` when the mapping names that label, else
    `threshold`. The probabilities and confidence returned are the scaled ones.

    A probability exactly equal to the threshold keeps its label. Ties between classes go to
    the lowest class index (numpy's argmax), so the answer is deterministic.
    """
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    x = np.asarray(logits, dtype=np.float64)
    probabilities = softmax(x if temperature == 1.0 else x / temperature)
    n_classes = probabilities.shape[1]
    if len(id2label) != n_classes:
        raise ValueError(
            f"the model gave {n_classes} logits per row but has {len(id2label)} labels"
        )
    top = probabilities.argmax(axis=1)
    confidence = probabilities[np.arange(len(top)), top]
    # Compare in float32, the precision the confidence is reported in, so that a reported
    # confidence equal to the threshold is seen as equal.
    if class_thresholds:
        per_class = np.array(
            [class_thresholds.get(id2label[k], threshold) for k in range(n_classes)],
            dtype=np.float32,
        )
        confident = confidence >= per_class[top]
    else:
        confident = confidence >= np.float32(threshold)
    labels = [
        id2label[int(k)] if ok else others_label for k, ok in zip(top, confident, strict=True)
    ]
    return Decisions(labels=labels, confidence=confidence, probabilities=probabilities)
