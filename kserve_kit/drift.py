"""Drift of the decisions against a reference: the population stability index (PSI) of the
label shares and of the confidence histogram of a sliding window of recent decisions.

Pure numpy and json. `make calibrate` writes the reference (`drift-reference.json`, beside the
policy) from the decisions of its data under the fitted policy; the transformer keeps a window
of its latest decisions (`DriftWindow`) and exports one PSI per dimension.

    PSI = sum over bins of (actual - expected) * ln(actual / expected)

with both shares floored at `EPSILON` so that an empty bin counts as rare, not infinite. Read
as usual: below 0.1 little change, 0.1-0.2 a moderate shift, above 0.2 a large one.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FILE_NAME = "drift-reference.json"
FORMAT = 1
EPSILON = 1e-4
# Confidence bins: equal widths over [0, 1]; the last bin holds 1.0.
CONFIDENCE_BINS = 10


def psi(expected: Sequence[float], actual: Sequence[float], epsilon: float = EPSILON) -> float:
    """The population stability index of `actual` shares against `expected` shares."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape or e.ndim != 1:
        raise ValueError(f"expected two share vectors of one length, got {e.shape} and {a.shape}")
    e = np.maximum(e / e.sum() if e.sum() else e, epsilon)
    a = np.maximum(a / a.sum() if a.sum() else a, epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def confidence_bin(confidence: np.ndarray, bins: int = CONFIDENCE_BINS) -> np.ndarray:
    """The bin index of each confidence in [0, 1]: equal widths, 1.0 in the last bin."""
    return np.clip((np.asarray(confidence, dtype=np.float64) * bins).astype(np.int64), 0, bins - 1)


@dataclass(frozen=True)
class Reference:
    """The distribution the window is compared with: label shares (the model's labels then the
    others label) and confidence-bin shares."""

    labels: tuple[str, ...]
    label_shares: tuple[float, ...]
    confidence_shares: tuple[float, ...]
    rows: int

    @classmethod
    def from_decisions(
        cls, labels: Sequence[str], answered: Sequence[str], confidence
    ) -> Reference:
        index = {label: i for i, label in enumerate(labels)}
        counts = np.bincount([index[a] for a in answered], minlength=len(labels))
        bins = np.bincount(confidence_bin(confidence), minlength=CONFIDENCE_BINS)
        total = max(len(answered), 1)
        return cls(
            labels=tuple(labels),
            label_shares=tuple(float(c) / total for c in counts),
            confidence_shares=tuple(float(b) / total for b in bins),
            rows=len(answered),
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT,
                "labels": list(self.labels),
                "label_shares": list(self.label_shares),
                "confidence_bins": CONFIDENCE_BINS,
                "confidence_shares": list(self.confidence_shares),
                "rows": self.rows,
            },
            indent=2,
        )

    @classmethod
    def load(cls, path: str | Path, labels: Sequence[str]) -> Reference:
        """Read a reference written by `to_json`, for a model answering `labels` (its
        id2label then the others label). Raises ValueError with a one-line reason."""
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
            if raw.get("format") != FORMAT or raw.get("confidence_bins") != CONFIDENCE_BINS:
                raise ValueError(f"format {FORMAT} with {CONFIDENCE_BINS} confidence bins")
            reference = cls(
                labels=tuple(raw["labels"]),
                label_shares=tuple(float(x) for x in raw["label_shares"]),
                confidence_shares=tuple(float(x) for x in raw["confidence_shares"]),
                rows=int(raw["rows"]),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}: not a drift reference: {exc}") from None
        if reference.labels != tuple(labels):
            raise ValueError(
                f"{path}: labels: expected {list(labels)}, got {list(reference.labels)}"
            )
        if len(reference.label_shares) != len(labels) or len(reference.confidence_shares) != (
            CONFIDENCE_BINS
        ):
            raise ValueError(f"{path}: the shares do not match the labels and bins")
        return reference


class DriftWindow:
    """The last `size` decisions, counted by label and by confidence bin as they come, so a
    drift score costs the few bins, not the window."""

    def __init__(self, reference: Reference, size: int):
        if size < 1:
            raise ValueError(f"a drift window holds at least 1 decision, got {size}")
        self.reference = reference
        self.size = size
        self._index = {label: i for i, label in enumerate(reference.labels)}
        self._window: deque[tuple[int, int]] = deque()
        self._labels = np.zeros(len(reference.labels), dtype=np.int64)
        self._bins = np.zeros(CONFIDENCE_BINS, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._window)

    def add(self, answered: Sequence[str], confidence) -> None:
        for label, b in zip(answered, confidence_bin(confidence), strict=True):
            item = (self._index[label], int(b))
            self._window.append(item)
            self._labels[item[0]] += 1
            self._bins[item[1]] += 1
            if len(self._window) > self.size:
                old_label, old_bin = self._window.popleft()
                self._labels[old_label] -= 1
                self._bins[old_bin] -= 1

    def scores(self) -> dict[str, float]:
        """PSI per dimension (`label`, `confidence`); 0 while the window is empty."""
        if not self._window:
            return {"label": 0.0, "confidence": 0.0}
        return {
            "label": psi(self.reference.label_shares, self._labels),
            "confidence": psi(self.reference.confidence_shares, self._bins),
        }
